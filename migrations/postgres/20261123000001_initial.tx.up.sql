-- Accounts: one per E.164 phone number.
CREATE TABLE users (
    id         uuid PRIMARY KEY,
    phone      text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL
);

--bun:split

-- One row per signed-in device. token_hash is the SHA-256 of the current
-- refresh token; parent_hash the one it replaced, answered with the current
-- pair for a few seconds after a rotation (mobile retry races).
CREATE TABLE sessions (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   bytea NOT NULL UNIQUE,
    parent_hash  bytea UNIQUE,
    rotated_at   timestamptz,
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);

--bun:split

CREATE INDEX sessions_user_id_idx ON sessions (user_id);

--bun:split

-- The live one-time code of a phone; a new request replaces it. Only the
-- HMAC of the code is kept.
CREATE TABLE otp_challenges (
    phone      text PRIMARY KEY,
    code_hash  bytea NOT NULL,
    attempts   integer NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL
);

--bun:split

CREATE TABLE moods (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    score       smallint NOT NULL CHECK (score BETWEEN 1 AND 10),
    label       text,
    note        text,
    tags        jsonb NOT NULL DEFAULT '[]',
    recorded_at timestamptz NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

--bun:split

-- Serves the newest-first keyset pagination of one user's moods.
CREATE INDEX moods_user_recorded_idx ON moods (user_id, recorded_at DESC, id DESC);

--bun:split

-- Remembers POST /api/moods Idempotency-Key values for 24 h.
CREATE TABLE idempotency_keys (
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    mood_id      uuid NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);

--bun:split

CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
