ALTER TABLE sessions DROP COLUMN grace_token;
