DROP INDEX otp_challenges_expires_at_idx;

--bun:split

DROP INDEX sessions_revoked_at_idx;

--bun:split

DROP INDEX sessions_expires_at_idx;
