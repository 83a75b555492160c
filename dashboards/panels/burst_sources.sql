-- Credential or cookie stuffing: one IP, or one /24 (/64 for IPv6), with at least
-- {min_attempts} blocked attempts across at least {min_users} users within
-- {window} seconds. Each attempt counts for its IP and for its network. Windows are
-- counted first, keyed by numbers (a hash of the source and its scope, so that an `ip`
-- that reads like a network is still an IP; the window's start), the cheapest grouping
-- there is; only those with enough attempts get their users counted, so memory follows
-- the bursts, not the addresses.
WITH attempts AS (
    SELECT place.1 AS source, place.2 AS scope, cityHash64(source, scope) AS source_key,
           toStartOfInterval(occurred_at, toIntervalSecond({window:UInt32})) AS window_start,
           user_id, session_id, reason
    FROM decisions
    ARRAY JOIN [(ip, 'ip'), (subnet, 'subnet')] AS place
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
      AND verdict != 'allow' AND place.1 != ''
      AND ({app:String} = '' OR app = {app:String})
      AND ({action:String} = '' OR action = {action:String})
), candidates AS (
    SELECT source_key, window_start
    FROM attempts
    GROUP BY source_key, window_start
    HAVING count() >= {min_attempts:UInt32}
)
SELECT source, scope, window_start, count() AS attempts, uniq(user_id) AS users,
       uniq(session_id) AS sessions, arrayStringConcat(topK(3)(reason), ', ') AS reasons
FROM attempts
WHERE (source_key, window_start) IN candidates
GROUP BY source, scope, window_start
HAVING users >= {min_users:UInt32}
ORDER BY users DESC, attempts DESC, source
LIMIT {limit:UInt32}
