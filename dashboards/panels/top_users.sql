-- The users with the most blocked attempts, with their commonest cause. The top ones
-- are found by counting alone; the rest is worked out for those only.
WITH top AS (
    SELECT user_id
    FROM decisions
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
      AND verdict != 'allow' AND user_id != ''
      AND ({app:String} = '' OR app = {app:String})
      AND ({action:String} = '' OR action = {action:String})
    GROUP BY user_id
    ORDER BY count() DESC, user_id
    LIMIT {limit:UInt32}
)
SELECT user_id AS user, count() AS blocked, uniq(session_id) AS sessions,
       topK(1)(reason)[1] AS top_reason, max(occurred_at) AS last_blocked
FROM decisions
WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
  AND verdict != 'allow' AND user_id IN top
  AND ({app:String} = '' OR app = {app:String})
  AND ({action:String} = '' OR action = {action:String})
GROUP BY user_id
ORDER BY blocked DESC, user
