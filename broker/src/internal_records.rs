//! Records the broker writes itself (`__consumer_offsets`,
//! `__transaction_state`, transaction markers) and the CLI produces: a
//! plain record to start from and the encoding of records as one
//! uncompressed RecordBatch v2.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

/// The `i`-th record of a batch, with no producer, key and value as given.
pub fn record(i: usize, now_ms: i64, key: Bytes, value: Option<Bytes>) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: i as i64,
        // The encoder keeps records in one batch while offset - sequence is constant.
        sequence: i as i32,
        timestamp: now_ms,
        key: Some(key),
        value,
        headers: Default::default(),
    }
}

/// `records` as one uncompressed batch.
pub fn encode(records: &[Record]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    // Encoding uncompressed records into memory cannot fail.
    let _ = RecordBatchEncoder::encode(&mut buf, records, &options);
    buf.to_vec()
}
