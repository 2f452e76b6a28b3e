-- Follows of fan-in authors (users.fan_in, 0023) are marked, so the feed
-- finds the few fan-in authors a viewer follows from this small partial
-- index instead of probing the user row of every account they follow.
-- A follow takes the followee's mark when it is made; an author becoming
-- fan-in marks the follows it has (effects::timelines).
ALTER TABLE follows ADD COLUMN fan_in BIGINT NOT NULL DEFAULT 0;
UPDATE follows SET fan_in = 1 WHERE followee_id IN (SELECT id FROM users WHERE fan_in = 1);
CREATE INDEX follows_fan_in ON follows(follower_id, followee_id) WHERE fan_in = 1;
