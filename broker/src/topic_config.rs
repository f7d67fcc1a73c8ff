//! Topic-level configs: the names Kafka accepts, their defaults, value
//! validation (INVALID_CONFIG on a bad name or value), and the resolved
//! settings the data path uses.

use std::collections::BTreeMap;

use sluice_storage::{Compaction, FsyncPolicy, LogConfig};

/// How a config value must look.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Long { min: i64 },
    Int { min: i64 },
    IntRange { min: i64, max: i64 },
    Bool,
    Ratio,
    OneOf(&'static [&'static str]),
    ListOf(&'static [&'static str]),
    Text,
}

impl Kind {
    /// Kafka's DescribeConfigs config type: BOOLEAN 1, STRING 2, INT 3,
    /// LONG 5, DOUBLE 6, LIST 7.
    fn config_type(self) -> i8 {
        match self {
            Kind::Bool => 1,
            Kind::OneOf(_) => 2,
            Kind::Int { .. } | Kind::IntRange { .. } => 3,
            Kind::Long { .. } => 5,
            Kind::Ratio => 6,
            Kind::ListOf(_) | Kind::Text => 7,
        }
    }
}

/// DescribeConfigs config sources (Kafka's ConfigSource ids).
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

/// One topic config: its name, Kafka's default, what values it takes, the
/// broker config whose value is the topic default (with Kafka's default
/// for it), and what it does.
pub struct TopicConfigDef {
    pub name: &'static str,
    pub default: &'static str,
    kind: Kind,
    pub broker_synonym: Option<(&'static str, &'static str)>,
    pub doc: &'static str,
}

impl TopicConfigDef {
    pub fn config_type(&self) -> i8 {
        self.kind.config_type()
    }

    /// APPEND and SUBTRACT apply only to list configs.
    pub fn is_list(&self) -> bool {
        matches!(self.kind, Kind::ListOf(_) | Kind::Text)
    }
}

const fn def(
    name: &'static str,
    default: &'static str,
    kind: Kind,
    broker_synonym: Option<(&'static str, &'static str)>,
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef { name, default, kind, broker_synonym, doc }
}

const MAX_LONG: &str = "9223372036854775807";

/// Every topic config Kafka 3.x/4.x accepts, in Kafka's (alphabetical) order.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def("cleanup.policy", "delete", Kind::ListOf(&["delete", "compact"]), Some(("log.cleanup.policy", "delete")),
        "delete: old segments are removed by retention.ms / retention.bytes; compact: only the latest record per key is kept; both may be given."),
    def("compression.type", "producer", Kind::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        Some(("compression.type", "producer")), "Codec batches are stored with; producer keeps the producer's codec."),
    def("compression.gzip.level", "-1", Kind::IntRange { min: -1, max: 9 }, Some(("compression.gzip.level", "-1")),
        "gzip level used when compression.type is gzip."),
    def("compression.lz4.level", "9", Kind::IntRange { min: 1, max: 17 }, Some(("compression.lz4.level", "9")),
        "lz4 level used when compression.type is lz4."),
    def("compression.zstd.level", "3", Kind::IntRange { min: -131072, max: 22 }, Some(("compression.zstd.level", "3")),
        "zstd level used when compression.type is zstd."),
    def("delete.retention.ms", "86400000", Kind::Long { min: 0 }, Some(("log.cleaner.delete.retention.ms", "86400000")),
        "How long a tombstone (null value) stays in a compacted topic after it has been cleaned, so consumers can see the delete."),
    def("errors.deadletterqueue.group.enable", "false", Kind::Bool, None,
        "Dead-letter topics for share groups (Kafka 4.4); accepted, no effect: this broker has no share groups."),
    def("file.delete.delay.ms", "60000", Kind::Long { min: 0 }, Some(("log.segment.delete.delay.ms", "60000")),
        "Delay before a removed segment's files are deleted."),
    def("flush.messages", MAX_LONG, Kind::Long { min: 1 }, Some(("log.flush.interval.messages", MAX_LONG)),
        "Records between forced fsyncs of the log."),
    def("flush.ms", MAX_LONG, Kind::Long { min: 0 }, Some(("log.flush.scheduler.interval.ms", MAX_LONG)),
        "Milliseconds between forced fsyncs of the log."),
    def("follower.replication.throttled.replicas", "", Kind::Text, None,
        "Replicas whose follower-side replication is throttled, as partition:broker pairs or *."),
    def("index.interval.bytes", "4096", Kind::Int { min: 0 }, Some(("log.index.interval.bytes", "4096")),
        "Bytes of log between offset index entries."),
    def("leader.replication.throttled.replicas", "", Kind::Text, None,
        "Replicas whose leader-side replication is throttled, as partition:broker pairs or *."),
    def("local.retention.bytes", "-2", Kind::Long { min: -2 }, Some(("log.local.retention.bytes", "-2")),
        "Local retention in bytes when tiered storage is on; -2 means retention.bytes."),
    def("local.retention.ms", "-2", Kind::Long { min: -2 }, Some(("log.local.retention.ms", "-2")),
        "Local retention in milliseconds when tiered storage is on; -2 means retention.ms."),
    def("max.compaction.lag.ms", MAX_LONG, Kind::Long { min: 1 }, Some(("log.cleaner.max.compaction.lag.ms", MAX_LONG)),
        "Longest time a record may stay uncompacted once it is eligible."),
    def("max.message.bytes", "1048588", Kind::Int { min: 0 }, Some(("message.max.bytes", "1048588")),
        "Largest record batch the topic accepts, in bytes."),
    def("message.timestamp.after.max.ms", MAX_LONG, Kind::Long { min: 0 }, Some(("log.message.timestamp.after.max.ms", MAX_LONG)),
        "How far in the future a CreateTime timestamp may be."),
    def("message.timestamp.before.max.ms", MAX_LONG, Kind::Long { min: 0 }, Some(("log.message.timestamp.before.max.ms", MAX_LONG)),
        "How far in the past a CreateTime timestamp may be."),
    def("message.timestamp.type", "CreateTime", Kind::OneOf(&["CreateTime", "LogAppendTime"]),
        Some(("log.message.timestamp.type", "CreateTime")), "Whether record timestamps are the producer's or the broker's append time."),
    def("min.cleanable.dirty.ratio", "0.5", Kind::Ratio, Some(("log.cleaner.min.cleanable.ratio", "0.5")),
        "Share of the log that must be uncleaned before the cleaner compacts it."),
    def("min.compaction.lag.ms", "0", Kind::Long { min: 0 }, Some(("log.cleaner.min.compaction.lag.ms", "0")),
        "Shortest time a record stays uncompacted."),
    def("min.insync.replicas", "1", Kind::Int { min: 1 }, Some(("min.insync.replicas", "1")),
        "In-sync replicas an acks=all write needs; fewer gives NOT_ENOUGH_REPLICAS."),
    def("preallocate", "false", Kind::Bool, Some(("log.preallocate", "false")), "Preallocate segment files when they are created."),
    def("remote.copy.lag.bytes", "-1", Kind::Long { min: -1 }, None,
        "Tiered storage copy lag (not available on this broker: accepted, no effect)."),
    def("remote.copy.lag.ms", "0", Kind::Long { min: -1 }, None,
        "Tiered storage copy lag (not available on this broker: accepted, no effect)."),
    def("remote.log.copy.disable", "false", Kind::Bool, None,
        "Stops copying to tiered storage (not available on this broker: accepted, no effect)."),
    def("remote.log.delete.on.disable", "false", Kind::Bool, None,
        "Deletes tiered segments when tiered storage is disabled (not available on this broker: accepted, no effect)."),
    def("remote.storage.enable", "false", Kind::Bool, None, "Tiered storage for the topic (not available on this broker)."),
    def("retention.bytes", "-1", Kind::Long { min: i64::MIN }, Some(("log.retention.bytes", "-1")),
        "Largest size a partition may grow to before its oldest segments are deleted; -1 means no limit."),
    def("retention.ms", "604800000", Kind::Long { min: -1 }, Some(("log.retention.hours", "168")),
        "How long records are kept before their segment is deleted; -1 means forever."),
    def("segment.bytes", "1073741824", Kind::Int { min: 1024 * 1024 }, Some(("log.segment.bytes", "1073741824")),
        "Size at which a new segment file is started."),
    def("segment.index.bytes", "10485760", Kind::Int { min: 4 }, Some(("log.index.size.max.bytes", "10485760")),
        "Size of each segment's offset index."),
    def("segment.jitter.ms", "0", Kind::Long { min: 0 }, Some(("log.roll.jitter.hours", "0")),
        "Random jitter subtracted from segment.ms."),
    def("segment.ms", "604800000", Kind::Long { min: 1 }, Some(("log.roll.hours", "168")),
        "Age at which a new segment is started even if the current one is not full."),
    def("unclean.leader.election.enable", "false", Kind::Bool, Some(("unclean.leader.election.enable", "false")),
        "Whether a replica outside the ISR may become leader, at the cost of losing records."),
];

pub fn definition(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks one `name=value` pair; the error text is what Kafka clients show.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let Some(TopicConfigDef { kind, .. }) = definition(name) else {
        return Err(format!("Unknown topic config name: {name}"));
    };
    let bad = |why: &str| Err(format!("Invalid value {value} for configuration {name}: {why}"));
    let value = value.trim();
    if name == "remote.storage.enable" && value.eq_ignore_ascii_case("true") {
        return Err("Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage.".into());
    }
    match kind {
        Kind::Long { min } | Kind::Int { min } | Kind::IntRange { min, .. } => {
            let parsed = match kind {
                Kind::Long { .. } => value.parse::<i64>().ok(),
                _ => value.parse::<i32>().map(i64::from).ok(),
            };
            let max = if let Kind::IntRange { max, .. } = kind { *max } else { i64::MAX };
            match parsed {
                None => bad("Not a number of the expected type"),
                Some(v) if v < *min => bad(&format!("Value must be at least {min}")),
                Some(v) if v > max => bad(&format!("Value must be no more than {max}")),
                Some(_) => Ok(()),
            }
        }
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            "true" | "false" => Ok(()),
            _ => bad("Expected value to be either true or false"),
        },
        Kind::Ratio => match value.parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => Ok(()),
            _ => bad("Value must be a number between 0 and 1"),
        },
        Kind::OneOf(allowed) => {
            if allowed.contains(&value) {
                Ok(())
            } else {
                bad(&format!("String must be one of: {}", allowed.join(", ")))
            }
        }
        Kind::ListOf(allowed) => {
            if value.split(',').map(str::trim).all(|v| allowed.contains(&v)) {
                Ok(())
            } else {
                bad(&format!("Each item must be one of: {}", allowed.join(", ")))
            }
        }
        Kind::Text => Ok(()),
    }
}

/// A validated value as stored: trimmed, booleans lower-case (Kafka parses
/// `TRUE` and ` true` alike; the stored form must mean the same everywhere).
pub fn canonical(name: &str, value: &str) -> String {
    match definition(name).map(|d| d.kind) {
        Some(Kind::Bool) => value.trim().to_ascii_lowercase(),
        Some(Kind::ListOf(_)) => value.split(',').map(str::trim).collect::<Vec<_>>().join(","),
        _ => value.trim().to_string(),
    }
}

/// Every topic config with its effective value: the override if the topic
/// has one, else Kafka's default. The flag says whether it was overridden.
pub fn effective(
    overrides: &BTreeMap<String, String>,
) -> impl Iterator<Item = (&'static TopicConfigDef, String, bool)> + '_ {
    TOPIC_CONFIGS.iter().map(move |d| match overrides.get(d.name) {
        Some(v) => (d, v.clone(), true),
        None => (d, d.default.to_string(), false),
    })
}

/// The settings the produce and storage paths act on.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSettings {
    pub max_message_bytes: usize,
    pub log_append_time: bool,
    /// How far a CreateTime timestamp may lie in the past / future.
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    /// `cleanup.policy` includes `delete` (DeleteRecords is refused otherwise).
    pub delete_policy: bool,
    /// `cleanup.policy` includes `compact`: records need keys, the cleaner runs.
    pub compact_policy: bool,
    pub compaction: Compaction,
    pub index_interval_bytes: usize,
    /// ISR members an acks=all produce needs.
    pub min_insync_replicas: usize,
}

impl TopicSettings {
    pub fn from_overrides(overrides: &BTreeMap<String, String>) -> Self {
        let get = |name: &str| -> String {
            effective(overrides).find(|(d, _, _)| d.name == name).map(|(_, v, _)| v).unwrap_or_default()
        };
        let num = |name: &str, fallback: i64| get(name).trim().parse::<i64>().unwrap_or(fallback);
        Self {
            max_message_bytes: num("max.message.bytes", 1_048_588).max(0) as usize,
            log_append_time: get("message.timestamp.type").trim() == "LogAppendTime",
            timestamp_before_max_ms: num("message.timestamp.before.max.ms", i64::MAX),
            timestamp_after_max_ms: num("message.timestamp.after.max.ms", i64::MAX),
            segment_bytes: num("segment.bytes", 1 << 30).max(1) as u64,
            segment_ms: num("segment.ms", 604_800_000),
            retention_ms: num("retention.ms", 604_800_000),
            retention_bytes: num("retention.bytes", -1),
            delete_policy: get("cleanup.policy").split(',').any(|p| p.trim() == "delete"),
            compact_policy: get("cleanup.policy").split(',').any(|p| p.trim() == "compact"),
            compaction: Compaction {
                min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio").trim().parse().unwrap_or(0.5),
                min_lag_ms: num("min.compaction.lag.ms", 0),
                max_lag_ms: num("max.compaction.lag.ms", i64::MAX),
                delete_retention_ms: num("delete.retention.ms", 86_400_000),
            },
            index_interval_bytes: num("index.interval.bytes", 4096).max(1) as usize,
            min_insync_replicas: num("min.insync.replicas", 1).max(1) as usize,
        }
    }

    pub fn log_config(&self, fsync: FsyncPolicy) -> LogConfig {
        LogConfig {
            segment_bytes: self.segment_bytes,
            // A compacted topic rolls by max.compaction.lag.ms too, so no
            // record waits in the active segment past it (as Kafka does).
            segment_ms: if self.compact_policy {
                self.segment_ms.min(self.compaction.max_lag_ms)
            } else {
                self.segment_ms
            },
            // Only the `delete` policy removes whole segments.
            retention_ms: if self.delete_policy { self.retention_ms } else { -1 },
            retention_bytes: if self.delete_policy { self.retention_bytes } else { -1 },
            index_interval_bytes: self.index_interval_bytes,
            fsync,
            compaction: self.compact_policy.then_some(self.compaction),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_names_and_values_like_kafka() {
        assert!(validate("retention.ms", "1000").is_ok());
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate("no.such.config", "1").unwrap_err().contains("Unknown topic config"));
        assert!(validate("retention.ms", "soon").is_err());
        assert!(validate("max.message.bytes", "99999999999").is_err(), "int overflow");
        assert!(validate("segment.bytes", "10").is_err(), "below minimum");
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate("remote.storage.enable", "true").unwrap_err().contains("Tiered Storage"));
        assert!(validate("compression.zstd.level", "23").is_err(), "above maximum");
        // Kafka 4.4's newer names, with the validators its broker applies
        // (asked of it: MirrorMaker 2 copies every topic config to the target).
        assert!(validate("errors.deadletterqueue.group.enable", "true").is_ok());
        assert!(validate("errors.deadletterqueue.group.enable", "1").is_err());
        assert!(validate("remote.copy.lag.bytes", "-1").is_ok());
        assert!(validate("remote.copy.lag.ms", "-2").is_err(), "below minimum");
        assert!(validate("remote.log.copy.disable", "true").is_ok());
        assert!(validate("remote.log.delete.on.disable", "abc").is_err());
        assert_eq!(canonical("unclean.leader.election.enable", " TRUE"), "true");
        assert_eq!(canonical("cleanup.policy", "compact, delete"), "compact,delete");
    }

    #[test]
    fn settings_follow_overrides() {
        let defaults = TopicSettings::from_overrides(&BTreeMap::new());
        assert_eq!(defaults.max_message_bytes, 1_048_588);
        assert!(!defaults.log_append_time);
        let o = BTreeMap::from([
            ("message.timestamp.type".to_string(), "LogAppendTime".to_string()),
            ("max.message.bytes".to_string(), "2000".to_string()),
        ]);
        let s = TopicSettings::from_overrides(&o);
        assert!(s.log_append_time);
        assert_eq!(s.max_message_bytes, 2000);
    }
}
