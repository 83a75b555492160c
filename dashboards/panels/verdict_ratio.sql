-- Allowed, denied and stepped-up intents by app and action, and the share blocked.
SELECT app, action,
       sumIf(intents, verdict = 'allow') AS allowed,
       sumIf(intents, verdict = 'deny') AS denied,
       sumIf(intents, verdict = 'step_up') AS stepped_up,
       round((denied + stepped_up) / sum(intents), 4) AS blocked_share
FROM decisions_by_minute
WHERE minute >= toStartOfMinute({from:DateTime64(3, 'UTC')})
  AND minute < {to:DateTime64(3, 'UTC')}
  AND ({app:String} = '' OR app = {app:String})
  AND ({action:String} = '' OR action = {action:String})
GROUP BY app, action
ORDER BY denied + stepped_up DESC, app, action
LIMIT {limit:UInt32}
