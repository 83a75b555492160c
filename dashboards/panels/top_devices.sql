-- The devices with the most blocked attempts, with their commonest cause.
SELECT device_id AS device, count() AS blocked, uniq(session_id) AS sessions,
       topK(1)(reason)[1] AS top_reason, max(occurred_at) AS last_blocked
FROM decisions
WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
  AND verdict != 'allow' AND device_id != ''
  AND ({app:String} = '' OR app = {app:String})
  AND ({action:String} = '' OR action = {action:String})
GROUP BY device_id
ORDER BY blocked DESC, device
LIMIT {limit:UInt32}
