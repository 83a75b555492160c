-- Source IPs with the most blocked attempts since {since}, across how many users.
SELECT if(ip = '', '(undecodable)', ip) AS source_ip, count() AS blocked, uniqExact(user_id) AS users, topK(1)(reason)[1] AS top_reason
FROM blocked_attempts
WHERE occurred_at >= {since:DateTime64(3, 'UTC')}
GROUP BY source_ip
ORDER BY blocked DESC, source_ip
LIMIT {limit:UInt32}
