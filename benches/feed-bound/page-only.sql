\set u random(1, 100000)
SELECT r.*, CAST(CASE WHEN EXISTS (SELECT 1 FROM bound.likes l WHERE l.post_id = r.post_id AND l.user_id = r.user_id) THEN 1 ELSE 0 END AS BIGINT) AS liked
FROM bound.page_rows r WHERE r.user_id = 'u' || lpad(:u::text, 35, '0') AND (r.created_at, r.post_id) < (9000000000000, '')
ORDER BY r.created_at DESC, r.post_id DESC LIMIT 21;
