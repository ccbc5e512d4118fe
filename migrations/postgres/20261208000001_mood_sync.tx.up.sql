-- Offline-first sync. Every mood carries a version (its ETag; If-Match
-- compares it) and change_seq, its place in the user's change feed
-- (GET /api/moods/changes). Moods written before this migration keep
-- change_seq 0 and come first in the feed, ordered by id.
ALTER TABLE moods ADD COLUMN version bigint NOT NULL DEFAULT 1;

--bun:split

ALTER TABLE moods ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;

--bun:split

-- Serves the change feed of one user: (change_seq, id) after a cursor.
CREATE INDEX moods_user_change_idx ON moods (user_id, change_seq, id);

--bun:split

-- The per-user change counter. Every write of a user's moods increments
-- seq first, holding the row's lock until it commits, so the user's
-- changes commit in the order of their numbers and a reader that has seen
-- number n has seen every number below it. purged_seq is the highest
-- number of a tombstone the retention sweep deleted: a cursor below it
-- may have missed a deletion.
CREATE TABLE mood_sync (
    user_id    uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    purged_seq bigint NOT NULL DEFAULT 0
);

--bun:split

-- A deleted mood, as the change feed reports it, for SYNC_TOMBSTONE_DAYS.
CREATE TABLE mood_tombstones (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    id         uuid NOT NULL,
    change_seq bigint NOT NULL,
    deleted_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, id)
);

--bun:split

CREATE INDEX mood_tombstones_user_change_idx ON mood_tombstones (user_id, change_seq, id);

--bun:split

-- The retention sweep's range.
CREATE INDEX mood_tombstones_deleted_at_idx ON mood_tombstones (deleted_at);
