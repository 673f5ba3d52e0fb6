-- The uses each authorization has taken of its policy's `max_uses`. A limit lives where the farm's
-- durable state does: Redis may lose its last second of writes (a crash past its last fsync, a failover to
-- a replica that had not caught up), and a count kept there would start again.

CREATE TABLE authorization_uses (
  authorization_id uuid PRIMARY KEY REFERENCES authorizations (id) ON DELETE CASCADE,
  taken            integer NOT NULL CHECK (taken >= 0)
);

-- Counts kept in Redis before this are not readable here: an authorization under a limited policy starts
-- from its recorded calls that count as uses (activity is written at least once, so this errs high).
INSERT INTO authorization_uses (authorization_id, taken)
SELECT a.id, LEAST(count(s.id), 2147483647)
FROM authorizations a
JOIN policies p ON p.slug = a.policy_slug
JOIN signing_activity s ON s.authorization_id = a.id AND s.method NOT IN ('ping', 'get_public_key')
WHERE p.permissions ? 'max_uses'
GROUP BY a.id;
