-- The blocked attempts themselves, with their full evidence: the drill-down. Any of
-- user, ip, device, session and reason narrows it ('' matches all).
SELECT occurred_at, decided_at, intent_id, session_id, user_id, app, action, resource,
       channel, ip, device_id, verdict, reason, detail, session_age_ms, idle_ms,
       reauth_age_ms, dead_for_ms, policy_version
FROM decisions
WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
  AND verdict != 'allow'
  AND ({app:String} = '' OR app = {app:String})
  AND ({action:String} = '' OR action = {action:String})
  AND ({user:String} = '' OR user_id = {user:String})
  AND ({ip:String} = '' OR ip = {ip:String})
  AND ({device:String} = '' OR device_id = {device:String})
  AND ({session:String} = '' OR session_id = {session:String})
  AND ({reason:String} = '' OR reason = {reason:String})
ORDER BY occurred_at DESC, intent_id
LIMIT {limit:UInt32}
