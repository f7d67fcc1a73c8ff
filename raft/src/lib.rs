//! The cluster metadata model — topics with their ids, partition counts and
//! configs — and the store that makes every change durable before it is
//! visible. Today the store is a single node's snapshot file; the openraft
//! quorum (issue 5) replaces `MetadataStore`'s persistence, not its model.

mod model;
mod store;

pub use model::{validate_topic_name, ClusterMetadata, TopicMetadata, TopicNameError};
pub use store::{MetadataError, MetadataStore};
