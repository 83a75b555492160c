-- Blocked attempts over time, by reason (a stacked chart), from the counts.
-- Buckets of {bucket} seconds (60 or more).
SELECT toStartOfInterval(minute, toIntervalSecond({bucket:UInt32})) AS time, reason,
       sum(intents) AS blocked
FROM intent_counts(from = {from:DateTime64(3, 'UTC')}, to = {to:DateTime64(3, 'UTC')},
                   step = {bucket:UInt32})
WHERE verdict != 'allow'
  AND ({app:String} = '' OR app = {app:String})
  AND ({action:String} = '' OR action = {action:String})
GROUP BY time, reason
ORDER BY time, reason
