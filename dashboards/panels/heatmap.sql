-- Blocked attempts by hour of the week (UTC): 1 = Monday.
SELECT toDayOfWeek(occurred_at) AS weekday, toHour(occurred_at) AS hour, count() AS blocked
FROM decisions
WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
  AND verdict != 'allow'
  AND ({app:String} = '' OR app = {app:String})
  AND ({action:String} = '' OR action = {action:String})
GROUP BY weekday, hour
ORDER BY weekday, hour
