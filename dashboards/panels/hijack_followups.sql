-- A context mismatch, then attempts on other sessions of the same user from the same
-- address or device within {follow} seconds of it: several of the user's sessions in
-- one (stolen) hand. From each user's first mismatch in the range.
SELECT m.user_id AS user_id, m.session_id AS mismatched_session, m.ip AS from_ip,
       m.first_at AS mismatch_at, count() AS followups,
       uniqExact(d.session_id) AS other_sessions,
       arrayStringConcat(arraySlice(arraySort(groupUniqArray(d.session_id)), 1, 5), ', ')
           AS sessions
FROM (
    SELECT user_id, argMin(session_id, occurred_at) AS session_id,
           argMin(ip, occurred_at) AS ip, argMin(device_id, occurred_at) AS device_id,
           min(occurred_at) AS first_at
    FROM decisions
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
      AND reason = 'context_mismatch' AND user_id != ''
      AND ({app:String} = '' OR app = {app:String})
      AND ({action:String} = '' OR action = {action:String})
    GROUP BY user_id
) AS m
INNER JOIN (
    SELECT user_id, session_id, ip, device_id, occurred_at
    FROM decisions
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')}
      AND occurred_at < {to:DateTime64(3, 'UTC')} + toIntervalSecond({follow:UInt32})
) AS d ON d.user_id = m.user_id
WHERE d.session_id != m.session_id
  AND (d.ip = m.ip OR d.device_id = m.device_id)  -- the same hands, not the user's own
  AND d.occurred_at > m.first_at
  AND d.occurred_at <= m.first_at + toIntervalSecond({follow:UInt32})
GROUP BY user_id, mismatched_session, from_ip, mismatch_at
ORDER BY other_sessions DESC, followups DESC, user_id
LIMIT {limit:UInt32}
