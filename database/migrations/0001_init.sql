-- Keyfarm's first schema: accounts, encrypted keys, policies, authorizations, OAuth and activity.

CREATE TABLE users (
  id            uuid PRIMARY KEY,
  email         text NOT NULL,
  password_hash text NOT NULL,
  pubkey        char(64) NOT NULL UNIQUE,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

-- Every Nostr secret we hold, sealed by envelope encryption: AES-256-GCM under its own DEK, the DEK
-- wrapped by the KEK named in kek_id. The AAD binds the ciphertext to (owner_kind, owner_id).
CREATE TABLE keys (
  id          uuid PRIMARY KEY,
  owner_kind  text NOT NULL CHECK (owner_kind IN ('user', 'bunker')),
  owner_id    uuid NOT NULL,
  pubkey      char(64) NOT NULL,
  ciphertext  bytea NOT NULL,
  nonce       bytea NOT NULL,
  wrapped_dek bytea NOT NULL,
  kek_id      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (owner_kind, owner_id)
);
CREATE INDEX keys_kek_id ON keys (kek_id);

ALTER TABLE users ADD COLUMN key_id uuid REFERENCES keys (id);

CREATE TABLE sessions (
  token_hash  bytea PRIMARY KEY,
  user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  revoked_at  timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE policies (
  slug         text PRIMARY KEY,
  display_name text NOT NULL,
  description  text NOT NULL,
  permissions  jsonb NOT NULL
);

CREATE TABLE authorizations (
  id               uuid PRIMARY KEY,
  user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  application_name text NOT NULL,
  policy_slug      text NOT NULL REFERENCES policies (slug),
  bunker_pubkey    char(64) NOT NULL UNIQUE,
  bunker_key_id    uuid NOT NULL REFERENCES keys (id),
  secret_hash      bytea NOT NULL,
  client_pubkey    char(64),
  client_id        text,
  redirect_origin  text,
  relays           text[] NOT NULL DEFAULT '{}',
  expires_at       timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  last_activity    timestamptz,
  activity_count   bigint NOT NULL DEFAULT 0,
  revoked_at       timestamptz
);
CREATE INDEX authorizations_user ON authorizations (user_id);

CREATE TABLE oauth_codes (
  code_hash             bytea PRIMARY KEY,
  user_id               uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  client_id             text NOT NULL,
  redirect_uri          text NOT NULL,
  policy_slug           text NOT NULL REFERENCES policies (slug),
  code_challenge        text,
  code_challenge_method text,
  expires_at            timestamptz NOT NULL,
  used_at               timestamptz,
  created_at            timestamptz NOT NULL DEFAULT now()
);

-- Access and refresh tokens of one authorization; a family is one chain of refresh rotations.
CREATE TABLE oauth_tokens (
  access_hash       bytea PRIMARY KEY,
  refresh_hash      bytea NOT NULL UNIQUE,
  authorization_id  uuid NOT NULL REFERENCES authorizations (id) ON DELETE CASCADE,
  family_id         uuid NOT NULL,
  access_expires_at timestamptz NOT NULL,
  refresh_expires_at timestamptz NOT NULL,
  rotated_at        timestamptz,
  revoked_at        timestamptz,
  created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX oauth_tokens_authorization ON oauth_tokens (authorization_id);
CREATE INDEX oauth_tokens_family ON oauth_tokens (family_id);

CREATE TABLE signing_activity (
  id               bigserial PRIMARY KEY,
  authorization_id uuid NOT NULL REFERENCES authorizations (id) ON DELETE CASCADE,
  method           text NOT NULL,
  kind             integer,
  event_id         char(64),
  door             text NOT NULL CHECK (door IN ('http', 'nip46')),
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX signing_activity_authorization ON signing_activity (authorization_id, created_at DESC);

-- The four built-in policies. A policy denies what it does not allow.
INSERT INTO policies (slug, display_name, description, permissions) VALUES
  ('social', 'Social', 'Post notes, react, repost, follow and update the profile. No private messages.',
   '{"allowed_kinds": [0, 1, 3, 5, 6, 7, 16, 1111, 9734, 10000, 10001, 10002, 22242, 24242, 27235, 30023, 30024], "encrypt": false, "decrypt": false}'),
  ('readonly', 'Read only', 'Read the public key and authenticate to relays. Signs nothing else, reads no messages.',
   '{"allowed_kinds": [22242], "encrypt": false, "decrypt": false}'),
  ('messaging', 'Messaging', 'Send and read private messages (NIP-04, NIP-17/NIP-44) and authenticate to relays.',
   '{"allowed_kinds": [4, 13, 14, 15, 1059, 10050, 22242], "encrypt": true, "decrypt": true}'),
  ('full', 'Full access', 'Sign any event and encrypt or decrypt any message.',
   '{"allowed_kinds": "all", "encrypt": true, "decrypt": true}');
