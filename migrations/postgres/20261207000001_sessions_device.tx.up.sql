-- What a person sees of their signed-in devices: the platform and app
-- version the app named at sign-in or its last refresh (NULL when it named
-- none or a malformed one), and why a session ended (token_reuse,
-- signed_out, ended_by_user; revoked_at is when). Expand-only: the previous
-- release neither reads nor writes them.
ALTER TABLE sessions ADD COLUMN platform text;

--bun:split

ALTER TABLE sessions ADD COLUMN app_version text;

--bun:split

ALTER TABLE sessions ADD COLUMN ended_reason text;
