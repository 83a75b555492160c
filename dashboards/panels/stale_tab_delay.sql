-- How long past the idle timeout expired_idle attempts came: a distribution.
SELECT multiIf(dead_for_ms < 60000, '< 1 min', dead_for_ms < 300000, '1-5 min',
               dead_for_ms < 1800000, '5-30 min', dead_for_ms < 7200000, '30 min-2 h',
               dead_for_ms < 28800000, '2-8 h', '≥ 8 h') AS past_timeout,
       count() AS blocks, min(dead_for_ms) AS bucket_order
FROM decisions
WHERE occurred_at >= {from:DateTime64(3, 'UTC')} AND occurred_at < {to:DateTime64(3, 'UTC')}
  AND reason = 'expired_idle' AND dead_for_ms IS NOT NULL
  AND ({app:String} = '' OR app = {app:String})
  AND ({action:String} = '' OR action = {action:String})
GROUP BY past_timeout
ORDER BY bucket_order
