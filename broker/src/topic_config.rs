//! Topic-level configs: the names Kafka accepts, their defaults, value
//! validation (INVALID_CONFIG on a bad name or value), and the resolved
//! settings the data path uses.

use std::collections::BTreeMap;

use sluice_storage::{FsyncPolicy, LogConfig};

/// How a config value must look.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Long { min: i64 },
    Int { min: i64 },
    Bool,
    Ratio,
    OneOf(&'static [&'static str]),
    ListOf(&'static [&'static str]),
    Text,
}

/// (name, Kafka's default, kind) for every topic config Kafka 3.x/4.x accepts.
const TOPIC_CONFIGS: &[(&str, &str, Kind)] = &[
    ("cleanup.policy", "delete", Kind::ListOf(&["delete", "compact"])),
    ("compression.type", "producer", Kind::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"])),
    ("compression.gzip.level", "-1", Kind::Int { min: -1 }),
    ("compression.lz4.level", "9", Kind::Int { min: 1 }),
    ("compression.zstd.level", "3", Kind::Int { min: -131072 }),
    ("delete.retention.ms", "86400000", Kind::Long { min: 0 }),
    ("file.delete.delay.ms", "60000", Kind::Long { min: 0 }),
    ("flush.messages", "9223372036854775807", Kind::Long { min: 1 }),
    ("flush.ms", "9223372036854775807", Kind::Long { min: 0 }),
    ("follower.replication.throttled.replicas", "", Kind::Text),
    ("index.interval.bytes", "4096", Kind::Int { min: 0 }),
    ("leader.replication.throttled.replicas", "", Kind::Text),
    ("local.retention.bytes", "-2", Kind::Long { min: -2 }),
    ("local.retention.ms", "-2", Kind::Long { min: -2 }),
    ("max.compaction.lag.ms", "9223372036854775807", Kind::Long { min: 1 }),
    ("max.message.bytes", "1048588", Kind::Int { min: 0 }),
    ("message.timestamp.after.max.ms", "9223372036854775807", Kind::Long { min: 0 }),
    ("message.timestamp.before.max.ms", "9223372036854775807", Kind::Long { min: 0 }),
    ("message.timestamp.type", "CreateTime", Kind::OneOf(&["CreateTime", "LogAppendTime"])),
    ("min.cleanable.dirty.ratio", "0.5", Kind::Ratio),
    ("min.compaction.lag.ms", "0", Kind::Long { min: 0 }),
    ("min.insync.replicas", "1", Kind::Int { min: 1 }),
    ("preallocate", "false", Kind::Bool),
    ("remote.storage.enable", "false", Kind::Bool),
    ("retention.bytes", "-1", Kind::Long { min: i64::MIN }),
    ("retention.ms", "604800000", Kind::Long { min: -1 }),
    ("segment.bytes", "1073741824", Kind::Int { min: 1024 * 1024 }),
    ("segment.index.bytes", "10485760", Kind::Int { min: 4 }),
    ("segment.jitter.ms", "0", Kind::Long { min: 0 }),
    ("segment.ms", "604800000", Kind::Long { min: 1 }),
    ("unclean.leader.election.enable", "false", Kind::Bool),
];

/// Checks one `name=value` pair; the error text is what Kafka clients show.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let Some((_, _, kind)) = TOPIC_CONFIGS.iter().find(|(n, _, _)| *n == name) else {
        return Err(format!("Unknown topic config name: {name}"));
    };
    let bad = |why: &str| Err(format!("Invalid value {value} for configuration {name}: {why}"));
    let value = value.trim();
    match kind {
        Kind::Long { min } | Kind::Int { min } => {
            let parsed = match kind {
                Kind::Int { .. } => value.parse::<i32>().map(i64::from).ok(),
                _ => value.parse::<i64>().ok(),
            };
            match parsed {
                None => bad("Not a number of the expected type"),
                Some(v) if v < *min => bad(&format!("Value must be at least {min}")),
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

/// Every topic config with its effective value: the override if the topic
/// has one, else Kafka's default. The flag says whether it was overridden.
pub fn effective(overrides: &BTreeMap<String, String>) -> impl Iterator<Item = (&'static str, String, bool)> + '_ {
    TOPIC_CONFIGS.iter().map(move |(name, default, _)| match overrides.get(*name) {
        Some(v) => (*name, v.clone(), true),
        None => (*name, (*default).to_string(), false),
    })
}

/// The settings the produce and storage paths act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSettings {
    pub max_message_bytes: usize,
    pub log_append_time: bool,
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    /// `cleanup.policy` includes `delete` (DeleteRecords is refused otherwise).
    pub delete_policy: bool,
    pub index_interval_bytes: usize,
    /// ISR members an acks=all produce needs.
    pub min_insync_replicas: usize,
}

impl TopicSettings {
    pub fn from_overrides(overrides: &BTreeMap<String, String>) -> Self {
        let get = |name: &str| -> String {
            effective(overrides).find(|(n, _, _)| *n == name).map(|(_, v, _)| v).unwrap_or_default()
        };
        let num = |name: &str, fallback: i64| get(name).trim().parse::<i64>().unwrap_or(fallback);
        Self {
            max_message_bytes: num("max.message.bytes", 1_048_588).max(0) as usize,
            log_append_time: get("message.timestamp.type").trim() == "LogAppendTime",
            segment_bytes: num("segment.bytes", 1 << 30).max(1) as u64,
            segment_ms: num("segment.ms", 604_800_000),
            retention_ms: num("retention.ms", 604_800_000),
            retention_bytes: num("retention.bytes", -1),
            delete_policy: get("cleanup.policy").split(',').any(|p| p.trim() == "delete"),
            index_interval_bytes: num("index.interval.bytes", 4096).max(1) as usize,
            min_insync_replicas: num("min.insync.replicas", 1).max(1) as usize,
        }
    }

    pub fn log_config(&self, fsync: FsyncPolicy) -> LogConfig {
        LogConfig {
            segment_bytes: self.segment_bytes,
            segment_ms: self.segment_ms,
            // Only `delete` retention removes data; compaction comes later.
            retention_ms: if self.delete_policy { self.retention_ms } else { -1 },
            retention_bytes: if self.delete_policy { self.retention_bytes } else { -1 },
            index_interval_bytes: self.index_interval_bytes,
            fsync,
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
