-- The retention sweep deletes sessions that expired or were revoked and
-- one-time codes past their expiry; these indexes let it find them without
-- reading the whole table. Expand-only: the previous release ignores them.
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

--bun:split

CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

--bun:split

CREATE INDEX otp_challenges_expires_at_idx ON otp_challenges (expires_at);
