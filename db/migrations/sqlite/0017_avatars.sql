-- The current avatar: its variants live at avatars/{user_id}/{version}/{size}.jpg
-- (64, 256 and 512 px squares, re-encoded without metadata); NULL: none.
-- A new avatar is a new version, so a URL handed out never shows another picture.
ALTER TABLE users ADD COLUMN avatar_version BIGINT;
