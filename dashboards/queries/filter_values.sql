-- The apps and actions seen in the range, for the dashboard's filters.
SELECT kind, value
FROM (
    SELECT DISTINCT 'app' AS kind, app AS value FROM decisions_by_minute
    WHERE minute >= toStartOfMinute({from:DateTime64(3, 'UTC')}) AND minute < {to:DateTime64(3, 'UTC')}
    UNION ALL
    SELECT DISTINCT 'action' AS kind, action AS value FROM decisions_by_minute
    WHERE minute >= toStartOfMinute({from:DateTime64(3, 'UTC')}) AND minute < {to:DateTime64(3, 'UTC')}
)
WHERE value != ''
ORDER BY kind, value
