-- Email verification and password reset: whether (and when) the account's current address was confirmed,
-- and the one-time tokens mailed for either. Only a token's SHA-256 is kept.

ALTER TABLE users ADD COLUMN email_verified_at timestamptz;

CREATE TABLE email_tokens (
  token_hash bytea PRIMARY KEY,
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  purpose    text NOT NULL CHECK (purpose IN ('verify', 'reset')),
  -- The address the token was mailed to: a verification confirms this address and no later one.
  email      text NOT NULL,
  expires_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
-- A newer token of a purpose replaces the user's older ones; a use deletes the row.
CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);
