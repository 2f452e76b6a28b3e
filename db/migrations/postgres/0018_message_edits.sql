-- When the sender last edited the message's text (within the edit window);
-- NULL: as sent. An unsent message is deleted, not marked.
ALTER TABLE messages ADD COLUMN edited_at BIGINT;
