-- Blocked attempts over time, by reason (a stacked chart); from the per-minute counts.
-- Buckets of {bucket} seconds (60 or more).
SELECT toStartOfInterval(minute, toIntervalSecond({bucket:UInt32})) AS time, reason,
       sum(intents) AS blocked
FROM decisions_by_minute
WHERE minute >= toStartOfMinute({from:DateTime64(3, 'UTC')})
  AND minute < {to:DateTime64(3, 'UTC')}
  AND verdict != 'allow'
  AND ({app:String} = '' OR app = {app:String})
  AND ({action:String} = '' OR action = {action:String})
GROUP BY time, reason
ORDER BY time, reason
