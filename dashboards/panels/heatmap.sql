-- Blocked attempts by hour of the week (UTC): 1 = Monday. From the counts.
SELECT toDayOfWeek(minute) AS weekday, toHour(minute) AS hour, sum(intents) AS blocked
FROM intent_counts(from = {from:DateTime64(3, 'UTC')}, to = {to:DateTime64(3, 'UTC')},
                   step = 3600)
WHERE verdict != 'allow'
  AND ({app:String} = '' OR app = {app:String})
  AND ({action:String} = '' OR action = {action:String})
GROUP BY weekday, hour
ORDER BY weekday, hour
