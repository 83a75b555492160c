-- Credential or cookie stuffing: one IP, or one /24 (/64 for IPv6), with at least
-- {min_attempts} blocked attempts across at least {min_users} users within
-- {window} seconds. Counted per address first, then summed up per network.
WITH per_ip AS (
    SELECT ip, any(subnet) AS net,
           toStartOfInterval(occurred_at, toIntervalSecond({window:UInt32})) AS window_start,
           count() AS attempts, uniqState(user_id) AS users, uniqState(session_id) AS sessions,
           topKState(3)(reason) AS reasons
    FROM decisions FINAL
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
      AND verdict != 'allow' AND ip != ''
      AND ({app:String} = '' OR app = {app:String})
      AND ({action:String} = '' OR action = {action:String})
    GROUP BY ip, window_start
)
SELECT source, scope, window_start, attempts, users, sessions, reasons
FROM (
    SELECT ip AS source, 'ip' AS scope, window_start, attempts,
           uniqMerge(users) AS users, uniqMerge(sessions) AS sessions,
           arrayStringConcat(topKMerge(3)(reasons), ', ') AS reasons
    FROM per_ip
    GROUP BY ip, window_start, attempts
    UNION ALL
    SELECT net AS source, 'subnet' AS scope, window_start, sum(attempts) AS attempts,
           uniqMerge(users) AS users, uniqMerge(sessions) AS sessions,
           arrayStringConcat(topKMerge(3)(reasons), ', ') AS reasons
    FROM per_ip
    WHERE net != ''
    GROUP BY net, window_start
)
WHERE attempts >= {min_attempts:UInt32} AND users >= {min_users:UInt32}
ORDER BY users DESC, attempts DESC, source
LIMIT {limit:UInt32}
