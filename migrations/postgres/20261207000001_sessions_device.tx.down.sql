ALTER TABLE sessions DROP COLUMN ended_reason;

--bun:split

ALTER TABLE sessions DROP COLUMN app_version;

--bun:split

ALTER TABLE sessions DROP COLUMN platform;
