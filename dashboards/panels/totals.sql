-- Intents in the range by verdict: the dashboard's headline figures.
SELECT sum(n) AS intents,
       sumIf(n, verdict = 'allow') AS allowed,
       sumIf(n, verdict = 'deny') AS denied,
       sumIf(n, verdict = 'step_up') AS stepped_up,
       round(if(intents = 0, 0, (denied + stepped_up) / intents), 4) AS blocked_share
FROM (
    SELECT verdict, sum(intents) AS n
    FROM decisions_by_minute
    WHERE minute >= toStartOfMinute({from:DateTime64(3, 'UTC')})
      AND minute < {to:DateTime64(3, 'UTC')}
      AND ({app:String} = '' OR app = {app:String})
      AND ({action:String} = '' OR action = {action:String})
    GROUP BY minute, app, action, channel, verdict, reason
)
