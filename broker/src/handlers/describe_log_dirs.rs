//! DescribeLogDirs: this broker's one log directory (`--data-dir`), the
//! replicas in it with their size on disk and offset lag, and (v4) the
//! file system's total and usable bytes, as Kafka reports them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::error::code;

pub async fn handle(broker: &Arc<Broker>, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let dir = std::path::absolute(&broker.config.data_dir).unwrap_or_else(|_| broker.config.data_dir.clone());
    // None: every partition.
    let wanted: Option<HashMap<String, Vec<i32>>> =
        req.topics.map(|ts| ts.into_iter().map(|t| (t.topic.to_string(), t.partitions)).collect());
    let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for shard in 0..broker.shards.len() {
        let replicas = broker
            .shards
            .run_on(shard, |ctx| async move {
                ctx.all()
                    .into_iter()
                    .map(|(_, r)| {
                        let offsets = r.log.offsets();
                        // Kafka's lag of a current (not future) replica.
                        let lag = (offsets.high_watermark - offsets.log_end_offset).max(0);
                        (r.topic.clone(), r.index, r.log.size_bytes(), lag)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
        for (topic, index, size, lag) in replicas {
            let asked = wanted.as_ref().is_none_or(|w| w.get(&topic).is_some_and(|ps| ps.contains(&index)));
            if asked {
                topics.entry(topic).or_default().push(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(index)
                        .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                        .with_offset_lag(lag),
                );
            }
        }
    }
    let topics = topics
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(partitions)
        })
        .collect();
    let result = DescribeLogDirsResult::default().with_log_dir(StrBytes::from_string(dir.display().to_string()));
    let result = match disk_space(&dir) {
        Ok((total, usable)) => result.with_topics(topics).with_total_bytes(total).with_usable_bytes(usable),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot read the data directory's file system");
            result.with_error_code(code::of(ResponseError::KafkaStorageError))
        }
    };
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// (total, usable) bytes of the file system holding `dir`.
fn disk_space(dir: &std::path::Path) -> std::io::Result<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: statvfs only writes the struct it is given; `path` is a valid
    // NUL-terminated string for the duration of the call.
    let stat = unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut stat) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        stat
    };
    let block = stat.f_frsize as u128;
    let clamp = |blocks: u64| i64::try_from(u128::from(blocks) * block).unwrap_or(i64::MAX);
    Ok((clamp(stat.f_blocks), clamp(stat.f_bavail)))
}
