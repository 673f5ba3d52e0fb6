-- The farm payload key: one AES-256 key that seals request and result content while it passes through
-- Redis (shared/farm/payload-seal.ts). Sealed like a user's key: AES-256-GCM under its own DEK, the DEK
-- wrapped by the KEK named in kek_id; the AAD names the row. Made by the first process to start, read by
-- every api, relay-ingest and workers process at start; KEK rotation re-wraps it with the keys.
CREATE TABLE payload_keys (
  id          text PRIMARY KEY,
  ciphertext  bytea NOT NULL,
  nonce       bytea NOT NULL,
  wrapped_dek bytea NOT NULL,
  kek_id      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
