-- Users with the most blocked attempts since {since}, and their commonest cause.
SELECT user_id, count() AS blocked, topK(1)(reason)[1] AS top_reason
FROM blocked_attempts
WHERE occurred_at >= {since:DateTime64(3, 'UTC')}
GROUP BY user_id
ORDER BY blocked DESC, user_id
LIMIT {limit:UInt32}
