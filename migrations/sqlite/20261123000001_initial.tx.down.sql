DROP TABLE IF EXISTS idempotency_keys;

--bun:split

DROP TABLE IF EXISTS moods;

--bun:split

DROP TABLE IF EXISTS otp_challenges;

--bun:split

DROP TABLE IF EXISTS sessions;

--bun:split

DROP TABLE IF EXISTS users;
