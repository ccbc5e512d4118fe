-- Accounts: one per E.164 phone number.
CREATE TABLE users (
    id         text PRIMARY KEY,
    phone      text NOT NULL UNIQUE,
    created_at timestamp NOT NULL
);

--bun:split

-- One row per signed-in device. token_hash is the SHA-256 of the current
-- refresh token; parent_hash the one it replaced, answered with the current
-- pair for a few seconds after a rotation (mobile retry races).
CREATE TABLE sessions (
    id           text PRIMARY KEY,
    user_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   blob NOT NULL UNIQUE,
    parent_hash  blob UNIQUE,
    rotated_at   timestamp,
    created_at   timestamp NOT NULL,
    last_used_at timestamp NOT NULL,
    expires_at   timestamp NOT NULL,
    revoked_at   timestamp
);

--bun:split

CREATE INDEX sessions_user_id_idx ON sessions (user_id);

--bun:split

-- The live one-time code of a phone; a new request replaces it. Only the
-- HMAC of the code is kept.
CREATE TABLE otp_challenges (
    phone      text PRIMARY KEY,
    code_hash  blob NOT NULL,
    attempts   integer NOT NULL DEFAULT 0,
    expires_at timestamp NOT NULL,
    created_at timestamp NOT NULL
);

--bun:split

CREATE TABLE moods (
    id          text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    score       integer NOT NULL CHECK (score BETWEEN 1 AND 10),
    label       text,
    note        text,
    tags        text NOT NULL DEFAULT '[]',
    recorded_at timestamp NOT NULL,
    created_at  timestamp NOT NULL,
    updated_at  timestamp NOT NULL
);

--bun:split

-- Serves the newest-first keyset pagination of one user's moods.
CREATE INDEX moods_user_recorded_idx ON moods (user_id, recorded_at DESC, id DESC);

--bun:split

-- Remembers POST /api/moods Idempotency-Key values for 24 h.
CREATE TABLE idempotency_keys (
    user_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key          text NOT NULL,
    request_hash blob NOT NULL,
    mood_id      text NOT NULL,
    created_at   timestamp NOT NULL,
    PRIMARY KEY (user_id, key)
);

--bun:split

CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
