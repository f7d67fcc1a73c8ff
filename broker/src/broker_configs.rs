//! What DescribeConfigs reports for a BROKER resource: this broker's
//! settings under Kafka's names, with Kafka's defaults, plus the broker-wide
//! defaults of every topic config. None can be changed at runtime here
//! (no dynamic broker configs), so all are read-only.

use crate::config::Config;
use crate::topic_config::{self, SOURCE_DEFAULT, SOURCE_STATIC_BROKER};

/// Kafka's DescribeConfigs types for broker settings.
const BOOLEAN: i8 = 1;
const STRING: i8 = 2;
const INT: i8 = 3;
const SHORT: i8 = 4;
const LONG: i8 = 5;

pub struct BrokerConfigEntry {
    pub name: &'static str,
    pub value: Option<String>,
    /// STATIC_BROKER_CONFIG when set away from Kafka's default, else DEFAULT_CONFIG.
    pub source: i8,
    pub config_type: i8,
    pub doc: &'static str,
}

fn entry(
    name: &'static str,
    value: Option<String>,
    kafka_default: Option<&str>,
    config_type: i8,
    doc: &'static str,
) -> BrokerConfigEntry {
    let source = if value.as_deref() == kafka_default { SOURCE_DEFAULT } else { SOURCE_STATIC_BROKER };
    BrokerConfigEntry { name, value, source, config_type, doc }
}

/// Every broker config reported, sorted by name.
pub fn entries(config: &Config) -> Vec<BrokerConfigEntry> {
    let s = |v: &dyn ToString| Some(v.to_string());
    let listener = format!("PLAINTEXT://{}", config.listen);
    let advertised = format!("PLAINTEXT://{}:{}", config.advertised_host, config.advertised_port);
    let groups = &config.groups;
    let mut all = vec![
        entry("node.id", s(&config.node_id), None, INT, "This node's id in the cluster."),
        entry("broker.id", s(&config.node_id), Some("-1"), INT, "This broker's id (the same as node.id)."),
        entry("listeners", Some(listener), Some("PLAINTEXT://:9092"), STRING, "Address clients connect to."),
        entry("advertised.listeners", Some(advertised), None, STRING, "Address clients are told to use."),
        entry("log.dirs", s(&config.data_dir.display()), None, STRING, "Directory holding the partition logs."),
        entry("broker.rack", config.rack.clone(), None, STRING, "This broker's rack; replicas are spread over racks."),
        entry("num.partitions", s(&config.num_partitions), Some("1"), INT, "Partitions of an auto-created topic."),
        entry(
            "default.replication.factor",
            s(&config.default_replication_factor),
            Some("1"),
            INT,
            "Replicas of an auto-created topic.",
        ),
        entry(
            "auto.create.topics.enable",
            s(&config.auto_create_topics),
            Some("true"),
            BOOLEAN,
            "Create a topic when a client asks for it in Metadata.",
        ),
        entry(
            "log.retention.check.interval.ms",
            s(&config.retention_check_interval.as_millis()),
            Some("300000"),
            LONG,
            "How often retention is applied.",
        ),
        entry(
            "log.cleaner.backoff.ms",
            s(&config.log_cleaner_backoff.as_millis()),
            Some("15000"),
            LONG,
            "How long the log cleaner rests between passes.",
        ),
        entry(
            "group.initial.rebalance.delay.ms",
            s(&groups.initial_rebalance_delay.as_millis()),
            Some("3000"),
            INT,
            "How long the first rebalance of an empty group waits for more members.",
        ),
        entry(
            "group.min.session.timeout.ms",
            s(&groups.min_session_timeout_ms),
            Some("6000"),
            INT,
            "Shortest session timeout a group member may ask for.",
        ),
        entry(
            "group.max.session.timeout.ms",
            s(&groups.max_session_timeout_ms),
            Some("1800000"),
            INT,
            "Longest session timeout a group member may ask for.",
        ),
        entry(
            "offsets.retention.minutes",
            s(&(groups.offsets_retention_ms / 60_000)),
            Some("10080"),
            INT,
            "How long an empty group's committed offsets are kept.",
        ),
        entry(
            "broker.session.timeout.ms",
            s(&config.broker_session_timeout.as_millis()),
            Some("9000"),
            INT,
            "A broker not heard from for this long is fenced.",
        ),
        entry(
            "replica.lag.time.max.ms",
            s(&config.replica_lag_time_max.as_millis()),
            Some("30000"),
            LONG,
            "A follower behind for this long leaves the ISR.",
        ),
        entry(
            "socket.request.max.bytes",
            s(&config.max_request_bytes),
            Some("104857600"),
            INT,
            "Largest request accepted.",
        ),
        entry("offsets.topic.num.partitions", s(&50), Some("50"), INT, "Partitions of __consumer_offsets."),
        entry("offsets.topic.replication.factor", s(&3), Some("3"), SHORT, "Replicas of __consumer_offsets."),
        entry(
            "offsets.topic.segment.bytes",
            s(&crate::broker::INTERNAL_SEGMENT_BYTES),
            Some("104857600"),
            INT,
            "Segment size of __consumer_offsets.",
        ),
        entry("transaction.state.log.num.partitions", s(&50), Some("50"), INT, "Partitions of __transaction_state."),
        entry("transaction.state.log.replication.factor", s(&3), Some("3"), SHORT, "Replicas of __transaction_state."),
        entry("transaction.state.log.min.isr", s(&2), Some("2"), INT, "min.insync.replicas of __transaction_state."),
        entry(
            "transaction.state.log.segment.bytes",
            s(&crate::broker::INTERNAL_SEGMENT_BYTES),
            Some("104857600"),
            INT,
            "Segment size of __transaction_state.",
        ),
        entry(
            "transaction.max.timeout.ms",
            s(&crate::txn::MAX_TIMEOUT_MS),
            Some("900000"),
            INT,
            "Longest transaction timeout a producer may ask for.",
        ),
        entry(
            "transactional.id.expiration.ms",
            s(&crate::txn::ID_EXPIRATION_MS),
            Some("604800000"),
            INT,
            "How long an unused transactional id is kept.",
        ),
    ];
    for def in topic_config::TOPIC_CONFIGS {
        if let Some((name, default)) = def.broker_synonym {
            if !all.iter().any(|e| e.name == name) {
                // Kafka states these broker defaults in hours, as integers.
                let config_type = if name.ends_with(".hours") { INT } else { def.config_type() };
                all.push(entry(name, Some(default.to_string()), Some(default), config_type, def.doc));
            }
        }
    }
    all.sort_by_key(|e| e.name);
    all
}
