-- Approval per request: a request a policy with `ask` does not allow waits here for its user's decision
-- (the page at /approve/<id>), and "approve always for this kind" adds the kind to the authorization's
-- own grants, consulted beside its policy on both doors.

ALTER TABLE authorizations ADD COLUMN granted_kinds integer[] NOT NULL DEFAULT '{}';

CREATE TABLE approvals (
  -- 192 random bits, base64url: the page's address; the page also checks the signed-in user.
  id               text PRIMARY KEY,
  authorization_id uuid NOT NULL REFERENCES authorizations (id) ON DELETE CASCADE,
  user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  door             text NOT NULL CHECK (door IN ('http', 'nip46')),
  method           text NOT NULL,
  kind             integer,
  -- What the page shows (kind, content, counterparty), sealed under the farm payload key for this id.
  summary          text NOT NULL,
  -- NIP-46: the request event as it came (its content is encrypted to the bunker key), answered once decided.
  request_event    jsonb,
  -- HTTP: a keyed hash of the call, so the app's retry of the same call finds its approval.
  request_hash     bytea,
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'denied')),
  created_at       timestamptz NOT NULL DEFAULT now(),
  -- Pending: until the decision may be made. Approved: until the request may run.
  expires_at       timestamptz NOT NULL,
  decided_at       timestamptz,
  -- NIP-46: a relay-ingest took the decided request to answer it (exactly one does).
  dispatched_at    timestamptz,
  -- The approved (or denied) request was answered; an approval is used once.
  consumed_at      timestamptz
);
CREATE INDEX approvals_user ON approvals (user_id, created_at DESC);
CREATE INDEX approvals_authorization_hash ON approvals (authorization_id, request_hash);
