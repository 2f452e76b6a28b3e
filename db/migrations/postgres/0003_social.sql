-- Posts, their tags, follows and likes: what feeds are built from.
-- Ids are time-ordered UUIDv7 text; times are Unix milliseconds.
-- Every feed page is a keyset scan of one of the (…, created_at, id) indexes below.
CREATE TABLE posts (
    id            TEXT PRIMARY KEY,
    author_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- One post per media; the post is visible to others once media.state is 'ready'.
    media_id      TEXT NOT NULL UNIQUE REFERENCES media(id) ON DELETE CASCADE,
    caption       TEXT NOT NULL DEFAULT '',
    -- The normalized tags as a JSON array, for rendering without a join.
    tags          TEXT NOT NULL DEFAULT '[]',
    -- Counters kept by the like and comment routes, so a feed page needs no aggregate.
    like_count    BIGINT NOT NULL DEFAULT 0,
    comment_count BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);
CREATE INDEX posts_author_time ON posts(author_id, created_at, id);
CREATE INDEX posts_time ON posts(created_at, id);

CREATE TABLE post_tags (
    tag        TEXT NOT NULL,
    post_id    TEXT NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
    -- The post's created_at, copied so explore-by-tag pages come from this index alone.
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tag, created_at, post_id)
);
CREATE INDEX post_tags_post ON post_tags(post_id);

CREATE TABLE follows (
    follower_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    followee_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
);
CREATE INDEX follows_followee ON follows(followee_id, created_at);

CREATE TABLE likes (
    post_id    TEXT NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (post_id, user_id)
);
CREATE INDEX likes_user ON likes(user_id, created_at);
