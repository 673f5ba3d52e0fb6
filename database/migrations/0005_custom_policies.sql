-- Custom policies: rows of `policies` with an owner (a user here; a team's FK is added by 0006) and a
-- generated slug. Built-ins keep no owner and are visible to all. The extra rights (per-NIP encryption,
-- content size, lifetime, uses) live in `permissions` as optional fields, so existing rows stay valid.
ALTER TABLE policies
  ADD COLUMN owner_user_id uuid REFERENCES users (id) ON DELETE CASCADE,
  ADD COLUMN owner_team_id uuid,
  ADD COLUMN created_at timestamptz NOT NULL DEFAULT now(),
  ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX policies_owner_user ON policies (owner_user_id) WHERE owner_user_id IS NOT NULL;
CREATE INDEX policies_owner_team ON policies (owner_team_id) WHERE owner_team_id IS NOT NULL;
-- Editing a policy finds the authorizations that use it, to evict them from every cache.
CREATE INDEX authorizations_policy ON authorizations (policy_slug);
