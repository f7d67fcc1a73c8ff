//! Cluster metadata as plain data: what every broker agrees on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    /// Per-topic overrides of broker defaults (`cleanup.policy`, ...).
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    pub cluster_id: String,
    pub topics: BTreeMap<String, TopicMetadata>,
}

impl ClusterMetadata {
    pub fn topic_by_id(&self, id: Uuid) -> Option<&TopicMetadata> {
        self.topics.values().find(|t| t.id == id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    #[error("topic name is empty")]
    Empty,
    #[error("topic name cannot be '.' or '..'")]
    Dots,
    #[error("topic name is {0} characters long, over the limit of 249")]
    TooLong(usize),
    #[error("topic name '{0}' contains characters other than ASCII alphanumerics, '.', '_' and '-'")]
    BadCharacter(String),
}

/// Kafka's topic name rules (`Topic.validate`).
pub fn validate_topic_name(name: &str) -> Result<(), TopicNameError> {
    if name.is_empty() {
        return Err(TopicNameError::Empty);
    }
    if name == "." || name == ".." {
        return Err(TopicNameError::Dots);
    }
    if name.len() > 249 {
        return Err(TopicNameError::TooLong(name.len()));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err(TopicNameError::BadCharacter(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-y").is_ok());
        assert_eq!(validate_topic_name(""), Err(TopicNameError::Empty));
        assert_eq!(validate_topic_name(".."), Err(TopicNameError::Dots));
        assert!(matches!(validate_topic_name(&"a".repeat(250)), Err(TopicNameError::TooLong(250))));
        assert!(validate_topic_name(&"a".repeat(249)).is_ok());
        assert!(matches!(validate_topic_name("a/b"), Err(TopicNameError::BadCharacter(_))));
        assert!(matches!(validate_topic_name("ü"), Err(TopicNameError::BadCharacter(_))));
    }
}
