-- Home timelines, written on post (fan-out on write): a row per follower of
-- the author, and the author, for each new post, so the feed walks one
-- user's rows instead of merging every followed author's posts.
-- A user's timeline is complete from its floor on: it holds every post of
-- an author they follow at or above (timeline_floor_at, timeline_floor_id),
-- in (created_at, id) order, and no row below it. Fan-out writes the newest
-- posts, a follow backfills the followee's posts above the floor, and
-- trimming to the newest N raises the floor; the feed reads what is below
-- the floor by the merge over followed authors. Accounts that exist now have
-- no timeline yet: their floor is now. New accounts start at 0 (complete).
-- Rows stay while a post is hidden by a moderator or its media is not
-- ready: the feed filters those per row, so a restore needs no rewrite.
-- `author_id` lets an unfollow or a block remove an author's rows.
CREATE TABLE timelines (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    post_id    TEXT NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
    author_id  TEXT NOT NULL,
    PRIMARY KEY (user_id, created_at, post_id) INCLUDE (author_id)
);
CREATE INDEX timelines_post ON timelines(post_id);
-- The floor (above).
ALTER TABLE users ADD COLUMN timeline_floor_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN timeline_floor_id TEXT NOT NULL DEFAULT '';
UPDATE users SET timeline_floor_at = CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT);

-- Authors with very many followers are read at feed time (fan-in) instead:
-- `users.fan_in` is 1 once an author had more followers than the fan-out
-- limit when posting (and stays 1), `posts.fan_in` is 1 for each post of
-- theirs that was not written into timelines.
ALTER TABLE users ADD COLUMN fan_in BIGINT NOT NULL DEFAULT 0;
ALTER TABLE posts ADD COLUMN fan_in BIGINT NOT NULL DEFAULT 0;
CREATE INDEX posts_fan_in ON posts(author_id, created_at, id) WHERE fan_in = 1;

-- Private accounts, for the audience rule (rules::audience): PostgreSQL
-- hashes "authors that are private" once per list query, and without this
-- reads every user to do it (33 ms at 100 000 users, benches/feed-scale.sh).
CREATE INDEX users_private ON users(id) WHERE is_private = 1;
