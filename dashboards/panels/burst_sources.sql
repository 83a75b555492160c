-- Credential or cookie stuffing: one IP, or one /24 (/64 for IPv6), with at least
-- {min_attempts} blocked attempts across at least {min_users} users within
-- {window} seconds. Sources are counted first (a number each); only those with
-- enough attempts get their users counted, so memory follows the bursts, not the IPs.
WITH candidates AS (
    SELECT source, scope, window_start
    FROM (
        SELECT ip AS source, 'ip' AS scope,
               toStartOfInterval(occurred_at, toIntervalSecond({window:UInt32})) AS window_start,
               count() AS attempts
        FROM decisions
        WHERE occurred_at >= {from:DateTime64(3, 'UTC')}
          AND occurred_at < {to:DateTime64(3, 'UTC')}
          AND verdict != 'allow' AND ip != ''
          AND ({app:String} = '' OR app = {app:String})
          AND ({action:String} = '' OR action = {action:String})
        GROUP BY source, window_start
        HAVING attempts >= {min_attempts:UInt32}
        UNION ALL
        SELECT subnet AS source, 'subnet' AS scope,
               toStartOfInterval(occurred_at, toIntervalSecond({window:UInt32})) AS window_start,
               count() AS attempts
        FROM decisions
        WHERE occurred_at >= {from:DateTime64(3, 'UTC')}
          AND occurred_at < {to:DateTime64(3, 'UTC')}
          AND verdict != 'allow' AND subnet != ''
          AND ({app:String} = '' OR app = {app:String})
          AND ({action:String} = '' OR action = {action:String})
        GROUP BY source, window_start
        HAVING attempts >= {min_attempts:UInt32}
    )
)
SELECT source, scope,
       toStartOfInterval(occurred_at, toIntervalSecond({window:UInt32})) AS window_start,
       count() AS attempts, uniq(user_id) AS users, uniq(session_id) AS sessions,
       arrayStringConcat(topK(3)(reason), ', ') AS reasons
FROM decisions
ARRAY JOIN [ip, subnet] AS source, ['ip', 'subnet'] AS scope
WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
  AND verdict != 'allow'
  AND ({app:String} = '' OR app = {app:String})
  AND ({action:String} = '' OR action = {action:String})
  AND (source, scope, window_start) IN candidates
GROUP BY source, scope, window_start
HAVING users >= {min_users:UInt32}
ORDER BY users DESC, attempts DESC, source
LIMIT {limit:UInt32}
