-- The actions with the most blocked attempts, with their commonest cause. The top ones
-- are found by counting alone; the rest is worked out for those only.
WITH top AS (
    SELECT action
    FROM decisions
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
      AND verdict != 'allow' AND action != ''
      AND ({app:String} = '' OR app = {app:String})
      AND ({action:String} = '' OR action = {action:String})
    GROUP BY action
    ORDER BY count() DESC, action
    LIMIT {limit:UInt32}
)
SELECT action AS action, count() AS blocked, uniq(session_id) AS sessions,
       topK(1)(reason)[1] AS top_reason, max(occurred_at) AS last_blocked
FROM decisions
WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
  AND verdict != 'allow' AND action IN top
  AND ({app:String} = '' OR app = {app:String})
  AND ({action:String} = '' OR action = {action:String})
GROUP BY action
ORDER BY blocked DESC, action
