-- Decisions by verdict and reason since {since}.
SELECT verdict, reason, count() AS decisions
FROM decisions FINAL
WHERE occurred_at >= {since:DateTime64(3, 'UTC')}
GROUP BY verdict, reason
ORDER BY decisions DESC, verdict, reason
