-- doublelock's ClickHouse schema. The same statements run on chdb and on a server.
-- Idempotent on intent_id: a replayed intent replaces its row instead of doubling it
-- (the key includes only values a replay repeats); read with FINAL. The session is
-- in the key too, so an intent_id reused on another session cannot erase a blocked
-- attempt from the record.

CREATE TABLE IF NOT EXISTS decisions
(
    intent_id        String,
    session_id       String,
    user_id          String,
    action           LowCardinality(String),
    resource         String,
    app              LowCardinality(String),
    channel          LowCardinality(String),
    ip               String,
    device_id        String,
    verdict          LowCardinality(String),
    reason           LowCardinality(String),
    occurred_at      DateTime64(3, 'UTC'),
    decided_at       DateTime64(3, 'UTC'),
    valid_until      DateTime64(3, 'UTC'),
    policy_version   LowCardinality(String),
    session_age_ms   Nullable(Int64),
    idle_ms          Nullable(Int64),
    reauth_age_ms    Nullable(Int64),
    detail           String,
    source_partition UInt16,
    source_offset    Int64,
    dead_for_ms      Nullable(Int64),
    -- The source's network (/24, or /64 for IPv6), for the burst detector; computed
    -- once, at insert.
    subnet           String MATERIALIZED if(isIPv4String(ip),
        concat(IPv4NumToString(bitAnd(IPv4StringToNumOrDefault(ip), 4294967040)), '/24'),
        if(isIPv6String(ip),
           concat(IPv6NumToString(tupleElement(IPv6CIDRToRange(toIPv6OrDefault(ip), 64), 1)), '/64'),
           '')),
    -- The drill-downs filter by these: skip the granules that cannot match.
    INDEX user_idx user_id TYPE bloom_filter GRANULARITY 4,
    INDEX session_idx session_id TYPE bloom_filter GRANULARITY 4,
    INDEX ip_idx ip TYPE bloom_filter GRANULARITY 4,
    INDEX device_idx device_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(decided_at)
PARTITION BY toYYYYMMDD(occurred_at)
ORDER BY (toStartOfHour(occurred_at), intent_id, session_id);

-- Stores made by 0.1 get what was added since.
ALTER TABLE decisions ADD COLUMN IF NOT EXISTS dead_for_ms Nullable(Int64);
ALTER TABLE decisions ADD COLUMN IF NOT EXISTS subnet String MATERIALIZED if(isIPv4String(ip),
        concat(IPv4NumToString(bitAnd(IPv4StringToNumOrDefault(ip), 4294967040)), '/24'),
        if(isIPv6String(ip),
           concat(IPv6NumToString(tupleElement(IPv6CIDRToRange(toIPv6OrDefault(ip), 64), 1)), '/64'),
           ''));
ALTER TABLE decisions ADD INDEX IF NOT EXISTS user_idx user_id TYPE bloom_filter GRANULARITY 4;
ALTER TABLE decisions ADD INDEX IF NOT EXISTS session_idx session_id TYPE bloom_filter GRANULARITY 4;
ALTER TABLE decisions ADD INDEX IF NOT EXISTS ip_idx ip TYPE bloom_filter GRANULARITY 4;
ALTER TABLE decisions ADD INDEX IF NOT EXISTS device_idx device_id TYPE bloom_filter GRANULARITY 4;

-- Per-minute counts for the time-series panels, so that they read a small table.
-- Exact: the store inserts a decision once (Store.insert_decisions leaves out the
-- rows it holds already), so a redelivery is not counted again.
CREATE TABLE IF NOT EXISTS decisions_by_minute
(
    minute   DateTime('UTC'),
    app      LowCardinality(String),
    action   LowCardinality(String),
    channel  LowCardinality(String),
    verdict  LowCardinality(String),
    reason   LowCardinality(String),
    intents  UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMMDD(minute)
ORDER BY (minute, app, action, channel, verdict, reason);

CREATE MATERIALIZED VIEW IF NOT EXISTS decisions_by_minute_mv TO decisions_by_minute AS
SELECT toStartOfMinute(occurred_at) AS minute, app, action, channel, verdict, reason,
       count() AS intents
FROM decisions
GROUP BY minute, app, action, channel, verdict, reason;

-- The same counts per hour, for long ranges: a month is 720 rows a combination, not
-- 43,200.
CREATE TABLE IF NOT EXISTS decisions_by_hour
(
    hour     DateTime('UTC'),
    app      LowCardinality(String),
    action   LowCardinality(String),
    channel  LowCardinality(String),
    verdict  LowCardinality(String),
    reason   LowCardinality(String),
    intents  UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, app, action, channel, verdict, reason);

CREATE MATERIALIZED VIEW IF NOT EXISTS decisions_by_hour_mv TO decisions_by_hour AS
SELECT toStartOfHour(occurred_at) AS hour, app, action, channel, verdict, reason,
       count() AS intents
FROM decisions
GROUP BY hour, app, action, channel, verdict, reason;

-- The counts of a range [from, to), exact to the millisecond, each read from the
-- smallest table that has it: the hours wholly inside the range from decisions_by_hour,
-- the other whole minutes from decisions_by_minute, and the parts of a minute at the
-- ends from the decisions themselves (two minutes of rows at most). `step` is the
-- coarsest time the caller groups by (seconds): hours are used only when it is a whole
-- number of them, so a 5-minute bucket is never handed a whole hour. A row is reported
-- at the start of its minute, or of its hour.
CREATE OR REPLACE VIEW intent_counts AS
WITH {from:DateTime64(3, 'UTC')} AS range_start,
     {to:DateTime64(3, 'UTC')} AS range_end,
     toStartOfMinute(range_start + toIntervalMillisecond(59999)) AS minutes_start,
     toStartOfMinute(range_end) AS minutes_end,
     toStartOfHour(minutes_start + toIntervalSecond(3599)) AS hours_start,
     if({step:UInt32} % 3600 = 0, toStartOfHour(minutes_end), hours_start) AS hours_end
SELECT hour AS minute, app, action, channel, verdict, reason, intents
FROM decisions_by_hour
WHERE hour >= hours_start AND hour < hours_end
UNION ALL
SELECT minute, app, action, channel, verdict, reason, intents
FROM decisions_by_minute
WHERE minute >= minutes_start AND minute < minutes_end
  AND NOT (minute >= hours_start AND minute < hours_end)
UNION ALL
SELECT toDateTime(toStartOfMinute(occurred_at), 'UTC') AS minute, app, action, channel,
       verdict, reason, count() AS intents
FROM decisions
WHERE (occurred_at >= range_start AND occurred_at < least(minutes_start, range_end))
   OR (occurred_at >= greatest(minutes_end, minutes_start) AND occurred_at < range_end)
GROUP BY minute, app, action, channel, verdict, reason;

-- The one-off fills done to this store (Store.migrate), so that each is done once, and
-- done again if it was cut off.
CREATE TABLE IF NOT EXISTS migrations
(
    name     String,
    done_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(done_at)
ORDER BY name;

-- Every blocked attempt, with its cause: what pattern analysis reads.
CREATE VIEW IF NOT EXISTS blocked_attempts AS
SELECT * FROM decisions FINAL WHERE verdict != 'allow';

-- Input that could not be used; the record itself is on the deadletter topic.
CREATE TABLE IF NOT EXISTS rejections
(
    source_topic  LowCardinality(String),
    partition     UInt16,
    offset        Int64,
    kind          LowCardinality(String),
    error         String,
    payload_bytes UInt32,
    rejected_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(rejected_at)
PARTITION BY toYYYYMMDD(rejected_at)
ORDER BY (source_topic, partition, offset);

-- Alerts published, so that each goes out once per detector, subject and window, across
-- restarts too.
CREATE TABLE IF NOT EXISTS alerts
(
    alert_id     String,
    detector     LowCardinality(String),
    subject      String,
    window_start DateTime64(3, 'UTC'),
    detected_at  DateTime64(3, 'UTC'),
    summary      String
)
ENGINE = ReplacingMergeTree(detected_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY alert_id;
