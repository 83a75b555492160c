-- Use after logout or revocation: users and apps with at least {min_attempts} attempts
-- on dead sessions, and how long the sessions had been dead.
SELECT user_id, app, count() AS attempts, uniqExact(session_id) AS sessions,
       round(quantileExact(0.5)(dead_for_ms) / 60000, 1) AS median_min_dead,
       round(max(dead_for_ms) / 60000, 1) AS max_min_dead,
       max(occurred_at) AS last_attempt
FROM decisions
WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
  AND reason = 'revoked'
  AND ({app:String} = '' OR app = {app:String})
  AND ({action:String} = '' OR action = {action:String})
GROUP BY user_id, app
HAVING attempts >= {min_attempts:UInt32}
ORDER BY attempts DESC, user_id, app
LIMIT {limit:UInt32}
