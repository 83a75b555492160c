-- Actions most often blocked since {since}.
SELECT action, count() AS blocked, topK(1)(reason)[1] AS top_reason
FROM blocked_attempts
WHERE occurred_at >= {since:DateTime64(3, 'UTC')}
GROUP BY action
ORDER BY blocked DESC, action
LIMIT {limit:UInt32}
