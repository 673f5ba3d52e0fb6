-- Teams: people who share keys. A team has members (admin or member), invites mailed to an address (only
-- the token's SHA-256 is kept), and keys of its own, sealed like users' keys (rows of `keys` with
-- owner_kind 'team', AAD naming the team). An authorization may sign with a team key instead of its
-- user's own key.

CREATE TABLE teams (
  id         uuid PRIMARY KEY,
  name       text NOT NULL,
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE team_members (
  team_id    uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role       text NOT NULL CHECK (role IN ('admin', 'member')),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members (user_id);

CREATE TABLE team_invites (
  token_hash bytea PRIMARY KEY,
  team_id    uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
  email      text NOT NULL,
  role       text NOT NULL CHECK (role IN ('admin', 'member')),
  invited_by uuid REFERENCES users (id) ON DELETE SET NULL,
  expires_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
-- A newer invite of an address to a team replaces the older one; accepting deletes the row.
CREATE UNIQUE INDEX team_invites_email ON team_invites (team_id, lower(email));

ALTER TABLE keys DROP CONSTRAINT IF EXISTS keys_owner_kind_check;
ALTER TABLE keys ADD CONSTRAINT keys_owner_kind_check CHECK (owner_kind IN ('user', 'bunker', 'team'));
-- (owner_kind, owner_id) is unique for users and bunkers; a team holds several keys, each named.
ALTER TABLE keys DROP CONSTRAINT IF EXISTS keys_owner_kind_owner_id_key;
CREATE UNIQUE INDEX keys_one_per_user_or_bunker ON keys (owner_kind, owner_id) WHERE owner_kind <> 'team';
CREATE INDEX keys_team ON keys (owner_id) WHERE owner_kind = 'team';
ALTER TABLE keys ADD COLUMN name text;

-- The key an authorization signs with when it is not its user's own (NULL: the user's key).
ALTER TABLE authorizations ADD COLUMN signing_key_id uuid REFERENCES keys (id);
CREATE INDEX authorizations_signing_key ON authorizations (signing_key_id) WHERE signing_key_id IS NOT NULL;

-- Custom policies may belong to a team (0005 adds the columns without the team's foreign key; a database
-- migrated without 0005 gets them here).
ALTER TABLE policies ADD COLUMN IF NOT EXISTS owner_user_id uuid REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE policies ADD COLUMN IF NOT EXISTS owner_team_id uuid;
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'policies_owner_team_fk') THEN
    ALTER TABLE policies ADD CONSTRAINT policies_owner_team_fk
      FOREIGN KEY (owner_team_id) REFERENCES teams (id) ON DELETE CASCADE;
  END IF;
END $$;
