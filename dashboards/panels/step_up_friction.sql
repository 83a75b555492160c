-- Step-up friction per action: how often a step-up is asked, and how often an allowed
-- retry on the same session follows within {retry_window} seconds (the policy annoys people)
-- rather than nothing (it stopped someone).
SELECT s.action AS action, count() AS step_ups,
       countIf(a.occurred_at > s.occurred_at
               AND a.occurred_at <= s.occurred_at + toIntervalSecond({retry_window:UInt32})) AS retried,
       round(retried / step_ups, 4) AS retried_share,
       any(t.intents) AS intents, round(step_ups / any(t.intents), 4) AS step_up_rate
FROM (
    SELECT session_id, action, occurred_at
    FROM decisions
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
      AND reason = 'reauth_required'
      AND ({app:String} = '' OR app = {app:String})
      AND ({action:String} = '' OR action = {action:String})
) AS s
ASOF LEFT JOIN (
    SELECT session_id, action, occurred_at
    FROM decisions
    WHERE occurred_at >= {from:DateTime64(3, 'UTC')}
      AND occurred_at < {to:DateTime64(3, 'UTC')} + toIntervalSecond({retry_window:UInt32})
      AND verdict = 'allow'
) AS a ON a.session_id = s.session_id AND a.action = s.action AND a.occurred_at > s.occurred_at
LEFT JOIN (
    SELECT action, sum(intents) AS intents
    FROM intent_counts(from = {from:DateTime64(3, 'UTC')}, to = {to:DateTime64(3, 'UTC')},
                       step = 3600)
    WHERE ({app:String} = '' OR app = {app:String})
    GROUP BY action
) AS t ON t.action = s.action
GROUP BY action
ORDER BY step_ups DESC, action
LIMIT {limit:UInt32}
