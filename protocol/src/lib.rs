//! Kafka wire protocol plumbing for Sluice, with no I/O: request framing,
//! header parsing and typed decoding onto the `kafka-protocol` crate's
//! generated messages, response encoding, RecordBatch v2 validation, and
//! the record-level batch rewriting log compaction needs.

pub mod batch;
pub mod compact;
pub mod decompress;
pub mod frame;
pub mod message;

pub use kafka_protocol;
