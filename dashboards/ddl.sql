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
    source_offset    Int64
)
ENGINE = ReplacingMergeTree(decided_at)
PARTITION BY toYYYYMMDD(occurred_at)
ORDER BY (toStartOfHour(occurred_at), intent_id, session_id);

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
