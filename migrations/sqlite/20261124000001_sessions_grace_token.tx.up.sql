-- The current refresh token, sealed (AES-GCM, key derived from SECRET_KEY),
-- so a client retrying with the parent within the grace window after a
-- rotation gets the same pair again. Only its hash would not be enough:
-- the retrying client needs the token itself.
ALTER TABLE sessions ADD COLUMN grace_token blob;
