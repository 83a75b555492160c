-- The stale-tab habit: users and apps with at least {min_repeats} expired_idle blocks,
-- and how long past the idle timeout the attempts came.
SELECT user_id, app, count() AS blocks,
       round(quantileExact(0.5)(dead_for_ms) / 60000, 1) AS median_min_past,
       round(max(dead_for_ms) / 60000, 1) AS max_min_past
FROM decisions
WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
  AND reason = 'expired_idle'
  AND ({app:String} = '' OR app = {app:String})
  AND ({action:String} = '' OR action = {action:String})
GROUP BY user_id, app
HAVING blocks >= {min_repeats:UInt32}
ORDER BY blocks DESC, user_id, app
LIMIT {limit:UInt32}
