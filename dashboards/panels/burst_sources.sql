-- Credential or cookie stuffing: one IP, or one /24 (/64 for IPv6), with at least
-- {min_attempts} blocked attempts across at least {min_users} users within
-- {window} seconds. Windows are counted first, keyed by numbers (a hash of the source,
-- the window's start), the cheapest grouping there is; only the windows with enough
-- attempts get their users counted, so memory follows the bursts, not the addresses.
WITH ip_windows AS (
    SELECT cityHash64(ip) AS source_key,
           toStartOfInterval(occurred_at, toIntervalSecond({window:UInt32})) AS window_start
    FROM decisions
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
      AND verdict != 'allow' AND ip != ''
      AND ({app:String} = '' OR app = {app:String})
      AND ({action:String} = '' OR action = {action:String})
    GROUP BY source_key, window_start
    HAVING count() >= {min_attempts:UInt32}
), subnet_windows AS (
    SELECT cityHash64(subnet) AS source_key,
           toStartOfInterval(occurred_at, toIntervalSecond({window:UInt32})) AS window_start
    FROM decisions
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
      AND verdict != 'allow' AND subnet != ''
      AND ({app:String} = '' OR app = {app:String})
      AND ({action:String} = '' OR action = {action:String})
    GROUP BY source_key, window_start
    HAVING count() >= {min_attempts:UInt32}
)
SELECT source, scope, window_start, count() AS attempts, uniq(user_id) AS users,
       uniq(session_id) AS sessions, arrayStringConcat(topK(3)(reason), ', ') AS reasons
FROM (
    SELECT ip AS source, 'ip' AS scope, user_id, session_id, reason,
           toStartOfInterval(occurred_at, toIntervalSecond({window:UInt32})) AS window_start
    FROM decisions
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
      AND verdict != 'allow'
      AND ({app:String} = '' OR app = {app:String})
      AND ({action:String} = '' OR action = {action:String})
      AND (cityHash64(ip), window_start) IN ip_windows
    UNION ALL
    SELECT subnet AS source, 'subnet' AS scope, user_id, session_id, reason,
           toStartOfInterval(occurred_at, toIntervalSecond({window:UInt32})) AS window_start
    FROM decisions
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
      AND verdict != 'allow'
      AND ({app:String} = '' OR app = {app:String})
      AND ({action:String} = '' OR action = {action:String})
      AND (cityHash64(subnet), window_start) IN subnet_windows
)
GROUP BY source, scope, window_start
HAVING users >= {min_users:UInt32}
ORDER BY users DESC, attempts DESC, source
LIMIT {limit:UInt32}
