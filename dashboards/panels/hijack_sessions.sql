-- Hijack signals: one session seen from several IPs or devices (all its intents, allowed
-- or not), with how many were refused for a context mismatch.
SELECT session_id, user_id, uniq(ip) AS ips, uniq(device_id) AS devices,
       countIf(reason = 'context_mismatch') AS mismatches, count() AS intents,
       arrayStringConcat(arraySlice(arraySort(groupUniqArray(ip)), 1, 4), ', ') AS seen_ips,
       min(occurred_at) AS first_seen, max(occurred_at) AS last_seen
FROM decisions
WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
  AND session_id != ''
  AND ({app:String} = '' OR app = {app:String})
  AND ({action:String} = '' OR action = {action:String})
GROUP BY session_id, user_id
HAVING ips > 1 OR devices > 1
ORDER BY mismatches DESC, ips + devices DESC, session_id
LIMIT {limit:UInt32}
