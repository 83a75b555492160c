-- The devices with the most blocked attempts, with their commonest cause. The top ones
-- are found by counting alone; the rest is worked out for those only.
WITH top AS (
    SELECT device_id
    FROM decisions
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
      AND verdict != 'allow' AND device_id != ''
      AND ({app:String} = '' OR app = {app:String})
      AND ({action:String} = '' OR action = {action:String})
    GROUP BY device_id
    ORDER BY count() DESC, device_id
    LIMIT {limit:UInt32}
)
SELECT device_id AS device, count() AS blocked, uniq(session_id) AS sessions,
       topK(1)(reason)[1] AS top_reason, max(occurred_at) AS last_blocked
FROM decisions
WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
  AND verdict != 'allow' AND device_id IN top
  AND ({app:String} = '' OR app = {app:String})
  AND ({action:String} = '' OR action = {action:String})
GROUP BY device_id
ORDER BY blocked DESC, device
