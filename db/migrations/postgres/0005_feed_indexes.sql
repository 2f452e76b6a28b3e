-- Indexes that keep a feed page cheap at 10 000 users / 100 000 posts
-- (benches/feed-load.sh; numbers in docs/LOAD.md).
--
-- The feed walks each followed author's newest posts. Carrying media_id in the
-- author index makes that walk index-only; it replaces posts_author_time,
-- whose columns are its prefix, so profiles keep using it.
CREATE INDEX posts_author_feed ON posts(author_id, created_at, id) INCLUDE (media_id);
DROP INDEX posts_author_time;

-- A followed author's post is shown once its media is 'ready'. Asking "is this
-- media NOT ready?" of this small index (uploads in flight, failures) is a
-- probe of a few pages, instead of reading every candidate's media row.
CREATE INDEX media_not_ready ON media(id) WHERE state <> 'ready';
