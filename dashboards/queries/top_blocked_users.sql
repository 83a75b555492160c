-- Users with the most blocked attempts since {since}, and their commonest cause.
SELECT if(user_id = '', '(undecodable)', user_id) AS user, count() AS blocked, topK(1)(reason)[1] AS top_reason
FROM blocked_attempts
WHERE occurred_at >= {since:DateTime64(3, 'UTC')}
GROUP BY user
ORDER BY blocked DESC, user
LIMIT {limit:UInt32}
