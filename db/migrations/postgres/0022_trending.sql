-- Trending explore. A post's trend_key is the time (Unix ms) at which a
-- post with one unit of engagement would be as hot as this one: with a
-- score that halves every H, key = t + H * log2(score at t). Ordering by it
-- orders by the decayed score at any moment, so the order is kept up to
-- date by each like, comment or play (effects::trending) and never computed
-- per request. A post starts at its creation time (a score of one); posts
-- from before this migration start there too, their earlier engagement not
-- counted.
ALTER TABLE posts ADD COLUMN trend_key BIGINT NOT NULL DEFAULT 0;
UPDATE posts SET trend_key = created_at;
-- Explore's trending walk, newest key first.
CREATE INDEX posts_trending ON posts(trend_key, id);
