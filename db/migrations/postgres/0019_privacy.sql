-- Who hears a post: everyone signed in, the author's followers, or only the
-- author. Changeable (PATCH /v1/posts/{id}); a caption edit sets edited_at.
ALTER TABLE posts ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public'
    CHECK (visibility IN ('public', 'followers', 'private'));
ALTER TABLE posts ADD COLUMN edited_at BIGINT;
-- The visibility a new post gets when its request names none.
ALTER TABLE users ADD COLUMN default_visibility TEXT NOT NULL DEFAULT 'public'
    CHECK (default_visibility IN ('public', 'followers', 'private'));

-- The feed's id walk stays index-only: the index carries visibility too (see 0007).
DROP INDEX posts_author_feed;
CREATE INDEX posts_author_feed ON posts(author_id, created_at, id) INCLUDE (media_id, hidden_at, visibility);

-- A mute hides the muted user's posts from the muter's feed and explore and
-- their notifications from the muter; the muted user is not told. until:
-- Unix milliseconds when it lapses, NULL for good.
CREATE TABLE mutes (
    muter_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    muted_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    until      BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (muter_id, muted_id)
);
CREATE INDEX mutes_muted ON mutes(muted_id);
-- The caller's lists of blocks and mutes, newest first.
CREATE INDEX mutes_list ON mutes(muter_id, created_at, muted_id);
CREATE INDEX blocks_list ON blocks(blocker_id, created_at, blocked_id);

-- A caption's mention is told once per post, however often it is edited.
CREATE UNIQUE INDEX notifications_one_caption_mention ON notifications(user_id, actor_id, post_id)
    WHERE kind = 'mention' AND comment_id IS NULL;

-- Whether chat partners see the user online and when last seen (1) or not (0).
ALTER TABLE users ADD COLUMN show_presence BIGINT NOT NULL DEFAULT 1;

-- A private account (1) approves its followers: a follow becomes a request,
-- and its posts reach followers only, public ones too.
ALTER TABLE users ADD COLUMN is_private BIGINT NOT NULL DEFAULT 0;
CREATE TABLE follow_requests (
    requester_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    target_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (requester_id, target_id)
);
-- The account's list of requests, newest first.
CREATE INDEX follow_requests_target ON follow_requests(target_id, created_at, requester_id);
-- A request is told once, however often it is cancelled and made again.
CREATE UNIQUE INDEX notifications_one_follow_request ON notifications(user_id, actor_id)
    WHERE kind = 'follow_request';
