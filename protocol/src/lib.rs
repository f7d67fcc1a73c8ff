//! Kafka wire protocol plumbing for Sluice, with no I/O: request framing,
//! header parsing and typed decoding onto the `kafka-protocol` crate's
//! generated messages, response encoding, and RecordBatch v2 validation.

pub mod batch;
pub mod decompress;
pub mod frame;
pub mod message;

pub use kafka_protocol;
