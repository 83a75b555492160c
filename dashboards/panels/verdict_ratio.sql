-- Allowed, denied and stepped-up intents by app and action, and the share blocked.
SELECT app, action,
       sumIf(intents, verdict = 'allow') AS allowed,
       sumIf(intents, verdict = 'deny') AS denied,
       sumIf(intents, verdict = 'step_up') AS stepped_up,
       round((denied + stepped_up) / sum(intents), 4) AS blocked_share
FROM intent_counts(from = {from:DateTime64(3, 'UTC')}, to = {to:DateTime64(3, 'UTC')},
                   step = 3600)
WHERE ({app:String} = '' OR app = {app:String})
  AND ({action:String} = '' OR action = {action:String})
GROUP BY app, action
ORDER BY denied + stepped_up DESC, app, action
LIMIT {limit:UInt32}
