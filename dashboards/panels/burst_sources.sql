-- Credential or cookie stuffing: one IP, or one /24 (/64 for IPv6), with at least
-- {min_attempts} blocked attempts across at least {min_users} users within
-- {window} seconds.
SELECT source, scope, window_start, attempts, users, sessions, reasons
FROM (
    SELECT source, scope,
           toStartOfInterval(occurred_at, toIntervalSecond({window:UInt32})) AS window_start,
           count() AS attempts, uniqExact(user_id) AS users, uniqExact(session_id) AS sessions,
           arrayStringConcat(topK(3)(reason), ', ') AS reasons
    FROM decisions FINAL
    ARRAY JOIN
        [ip, if(isIPv4String(ip),
                concat(IPv4NumToString(bitAnd(IPv4StringToNumOrDefault(ip), 4294967040)), '/24'),
                concat(IPv6NumToString(tupleElement(IPv6CIDRToRange(toIPv6OrDefault(ip), 64), 1)), '/64'))
        ] AS source,
        ['ip', 'subnet'] AS scope
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
      AND verdict != 'allow' AND ip != ''
      AND ({app:String} = '' OR app = {app:String})
      AND ({action:String} = '' OR action = {action:String})
    GROUP BY source, scope, window_start
)
WHERE attempts >= {min_attempts:UInt32} AND users >= {min_users:UInt32}
ORDER BY users DESC, attempts DESC, source
LIMIT {limit:UInt32}
