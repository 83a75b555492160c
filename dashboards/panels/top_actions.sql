-- The actions with the most blocked attempts: how they were refused, their commonest
-- cause, and the share of the action's intents refused. From the counts.
SELECT action, sum(by_reason) AS blocked, sum(by_reason_denied) AS denied,
       sum(by_reason_stepped_up) AS stepped_up,
       argMax(reason, (by_reason, reason)) AS top_reason,
       round(blocked / sum(by_reason_all), 4) AS blocked_share
FROM (
    SELECT action, reason, sumIf(intents, verdict != 'allow') AS by_reason,
           sumIf(intents, verdict = 'deny') AS by_reason_denied,
           sumIf(intents, verdict = 'step_up') AS by_reason_stepped_up,
           sum(intents) AS by_reason_all
    FROM intent_counts(from = {from:DateTime64(3, 'UTC')}, to = {to:DateTime64(3, 'UTC')},
                       step = 3600)
    WHERE action != ''
      AND ({app:String} = '' OR app = {app:String})
      AND ({action:String} = '' OR action = {action:String})
    GROUP BY action, reason
)
GROUP BY action
HAVING blocked > 0
ORDER BY blocked DESC, action
LIMIT {limit:UInt32}
