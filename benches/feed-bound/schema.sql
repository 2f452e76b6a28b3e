-- benches/feed-bound.sh: the cheapest feed page PostgreSQL could serve.
-- Every field a feed item shows is copied into the viewer's own rows
-- (page_rows: no post, author or media row is read; counts as of the
-- copy), 25 rows for each of 100 000 viewers, ids as long as Sori's; a
-- session table to look the bearer token up in; likes for `liked_by_me`.
SET search_path = bound;
CREATE TABLE sessions (token_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, expires_at BIGINT NOT NULL);
CREATE TABLE page_rows (
  user_id TEXT NOT NULL, created_at BIGINT NOT NULL, post_id TEXT NOT NULL,
  author_id TEXT NOT NULL, handle TEXT NOT NULL, display_name TEXT NOT NULL, avatar_version BIGINT,
  caption TEXT NOT NULL, tags TEXT NOT NULL, visibility TEXT NOT NULL, edited_at BIGINT,
  media_id TEXT NOT NULL, state TEXT NOT NULL, duration_ms BIGINT, bars TEXT, output_prefix TEXT,
  like_count BIGINT NOT NULL, comment_count BIGINT NOT NULL, play_count BIGINT NOT NULL, trend_key DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (user_id, created_at, post_id));
CREATE TABLE likes (post_id TEXT NOT NULL, user_id TEXT NOT NULL, created_at BIGINT NOT NULL, PRIMARY KEY (post_id, user_id));
INSERT INTO sessions SELECT md5('t' || u), 'u' || lpad(u::text, 35, '0'), 9e15::bigint FROM generate_series(1, 100000) u;
INSERT INTO page_rows
SELECT 'u' || lpad(u::text, 35, '0'), 1700000000000 + (u * 7919 + r * 104729) % 100000000, 'p' || lpad((u * 40 + r)::text, 35, '0'),
       'a' || lpad(((u * 31 + r) % 5000)::text, 35, '0'), 'handle' || r, 'Display Name ' || r, 3,
       'a caption of a voice post, about this long #tag', '["tag"]', 'public', NULL,
       'm' || lpad((u * 40 + r)::text, 35, '0'), 'ready', 12345,
       '[' || repeat('0.42,', 63) || '0.42]', 'media/m' || lpad((u * 40 + r)::text, 35, '0') || '/out/1',
       r, r, r * 3, r * 1.5
FROM generate_series(1, 100000) u, generate_series(1, 25) r;
INSERT INTO likes SELECT 'p' || lpad((u * 40 + r)::text, 35, '0'), 'u' || lpad(((u * 13 + r) % 100000 + 1)::text, 35, '0'), 0
FROM generate_series(1, 100000) u, generate_series(1, 10) r ON CONFLICT DO NOTHING;
VACUUM ANALYZE sessions, page_rows, likes;
