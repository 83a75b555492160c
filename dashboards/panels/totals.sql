-- Intents in the range by verdict: the dashboard's headline figures.
SELECT sum(intents) AS all_intents,
       sumIf(intents, verdict = 'allow') AS allowed,
       sumIf(intents, verdict = 'deny') AS denied,
       sumIf(intents, verdict = 'step_up') AS stepped_up,
       round(if(all_intents = 0, 0, (denied + stepped_up) / all_intents), 4) AS blocked_share
FROM intent_counts(from = {from:DateTime64(3, 'UTC')}, to = {to:DateTime64(3, 'UTC')},
                   step = 3600)
WHERE ({app:String} = '' OR app = {app:String})
  AND ({action:String} = '' OR action = {action:String})
