-- Keycast compatibility: the built-in policies as Keycast defines them, a handle for silent
-- re-authorization, and OAuth codes that carry a bring-your-own-key registration until token exchange.

UPDATE policies SET display_name = 'Social', description = 'Post notes, reactions, and private messages.',
  permissions = '{"allowed_kinds": [0, 1, 3, 4, 7, 44, 1059, 9735, 22242], "encrypt": true, "decrypt": true}'
  WHERE slug = 'social';
UPDATE policies SET display_name = 'Read only', description = 'Read private messages and authenticate to relays. Posts, reacts and sends nothing.',
  permissions = '{"allowed_kinds": [22242], "encrypt": false, "decrypt": true}'
  WHERE slug = 'readonly';
INSERT INTO policies (slug, display_name, description, permissions) VALUES
  ('wallet', 'Wallet', 'Sign zap requests and authenticate to relays. No posts, no private messages.',
   '{"allowed_kinds": [9734, 22242], "encrypt": false, "decrypt": false}')
  ON CONFLICT (slug) DO UPDATE SET display_name = EXCLUDED.display_name, description = EXCLUDED.description,
    permissions = EXCLUDED.permissions;

-- The handle an app sends back to skip consent; only its SHA-256 is kept.
ALTER TABLE authorizations
  ADD COLUMN handle_hash bytea UNIQUE,
  ADD COLUMN handle_expires_at timestamptz;
-- One live authorization per user, app and redirect origin: re-consent updates it.
CREATE INDEX authorizations_app ON authorizations (user_id, client_id, redirect_origin) WHERE revoked_at IS NULL;

-- A code issued by the bring-your-own-key registration has no user yet: the account is created at token
-- exchange, with the key the app's verifier carries, which must match byok_pubkey.
ALTER TABLE oauth_codes
  ALTER COLUMN user_id DROP NOT NULL,
  ADD COLUMN byok_pubkey char(64),
  ADD COLUMN pending_email text,
  ADD COLUMN pending_password_hash text,
  ADD CONSTRAINT oauth_codes_owner CHECK (
    user_id IS NOT NULL OR (byok_pubkey IS NOT NULL AND pending_email IS NOT NULL AND pending_password_hash IS NOT NULL));

-- An app that polls (GET /api/oauth/poll?state=) names its code by the OAuth state it sent; only the
-- state's SHA-256 is kept, and only on codes bound to a PKCE challenge.
ALTER TABLE oauth_codes ADD COLUMN poll_state_hash bytea;
CREATE INDEX oauth_codes_poll ON oauth_codes (poll_state_hash) WHERE poll_state_hash IS NOT NULL AND used_at IS NULL;
