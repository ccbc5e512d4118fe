DROP TABLE mood_tombstones;

--bun:split

DROP TABLE mood_sync;

--bun:split

DROP INDEX moods_user_change_idx;

--bun:split

ALTER TABLE moods DROP COLUMN change_seq;

--bun:split

ALTER TABLE moods DROP COLUMN version;
