-- The ips with the most blocked attempts, with their commonest cause. The top ones
-- are found by counting alone; the rest is worked out for those only.
WITH top AS (
    SELECT ip
    FROM decisions
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
      AND verdict != 'allow' AND ip != ''
      AND ({app:String} = '' OR app = {app:String})
      AND ({action:String} = '' OR action = {action:String})
    GROUP BY ip
    ORDER BY count() DESC, ip
    LIMIT {limit:UInt32}
)
SELECT ip AS ip, count() AS blocked, uniq(session_id) AS sessions,
       topK(1)(reason)[1] AS top_reason, max(occurred_at) AS last_blocked
FROM decisions
WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
  AND verdict != 'allow' AND ip IN top
  AND ({app:String} = '' OR app = {app:String})
  AND ({action:String} = '' OR action = {action:String})
GROUP BY ip
ORDER BY blocked DESC, ip
