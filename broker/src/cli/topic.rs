//! `sluice topic ...`: create, list, describe, alter-config, add-partitions,
//! delete, produce (stdin lines) and consume (to stdout).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Subcommand;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, FetchRequest,
    IncrementalAlterConfigsRequest, ListOffsetsRequest, MetadataResponse, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, RecordBatchDecoder};

use super::admin::{check, Admin};
use super::table::table;
use crate::internal_records::{encode, record};

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create topics.
    Create {
        #[arg(required = true)]
        topics: Vec<String>,
        /// Partitions of each topic [default: the broker's num.partitions].
        #[arg(short = 'p', long)]
        partitions: Option<i32>,
        /// Replicas of each partition [default: the broker's default.replication.factor].
        #[arg(short = 'r', long)]
        replicas: Option<i16>,
        /// A topic config, e.g. -c cleanup.policy=compact (repeatable).
        #[arg(short = 'c', long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// List topics with their partition and replica counts.
    List {
        /// Include internal topics (__consumer_offsets, __transaction_state).
        #[arg(short = 'i', long)]
        internal: bool,
    },
    /// Show a topic's partitions (leader, replicas, ISR, offsets) and the configs set on it.
    Describe { topic: String },
    /// Set or remove topic configs.
    AlterConfig {
        topic: String,
        /// KEY=VALUE to set (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// KEY to reset to its default (repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Add partitions to a topic.
    AddPartitions {
        topic: String,
        /// How many partitions to add.
        #[arg(short = 'n', long)]
        num: i32,
    },
    /// Delete topics.
    Delete {
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Produce each line of stdin as one record (acks=all).
    Produce {
        topic: String,
        /// Key for every record; keyed records go to partitions as Kafka's default partitioner sends them.
        #[arg(short = 'k', long)]
        key: Option<String>,
        /// Partition to write to [default: by key, else spread over partitions].
        #[arg(short = 'p', long)]
        partition: Option<i32>,
    },
    /// Print records to stdout, one per line, until the end of the log.
    Consume {
        topic: String,
        /// Only this partition [default: every partition].
        #[arg(short = 'p', long)]
        partition: Option<i32>,
        /// Where to start: start, end, or an offset.
        #[arg(short = 'o', long, default_value = "start")]
        offset: String,
        /// Stop after this many records.
        #[arg(short = 'n', long)]
        num: Option<usize>,
        /// Output format: %t topic, %p partition, %o offset, %k key, %v value, %T timestamp.
        #[arg(short = 'f', long, default_value = "%v")]
        format: String,
    },
}

pub async fn run(admin: &mut Admin, cmd: TopicCommand) -> Result<()> {
    match cmd {
        TopicCommand::Create { topics, partitions, replicas, configs } => {
            create(admin, topics, partitions, replicas, configs).await
        }
        TopicCommand::List { internal } => list(admin, internal).await,
        TopicCommand::Describe { topic } => describe(admin, &topic).await,
        TopicCommand::AlterConfig { topic, set, delete } => alter_config(admin, &topic, set, delete).await,
        TopicCommand::AddPartitions { topic, num } => add_partitions(admin, &topic, num).await,
        TopicCommand::Delete { topics } => delete(admin, topics).await,
        TopicCommand::Produce { topic, key, partition } => produce(admin, &topic, key, partition).await,
        TopicCommand::Consume { topic, partition, offset, num, format } => {
            consume(admin, &topic, partition, &offset, num, &format).await
        }
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn key_value(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => bail!("'{s}' is not KEY=VALUE"),
    }
}

async fn create(
    admin: &mut Admin,
    topics: Vec<String>,
    partitions: Option<i32>,
    replicas: Option<i16>,
    configs: Vec<String>,
) -> Result<()> {
    let configs: Vec<(String, String)> = configs.iter().map(|c| key_value(c)).collect::<Result<_>>()?;
    let addr = admin.controller();
    let (resp, _) = admin
        .call(&addr, "CreateTopics", 7, |_| {
            let topics = topics
                .iter()
                .map(|t| {
                    CreatableTopic::default()
                        .with_name(name(t))
                        .with_num_partitions(partitions.unwrap_or(-1))
                        .with_replication_factor(replicas.unwrap_or(-1))
                        .with_configs(
                            configs
                                .iter()
                                .map(|(k, v)| {
                                    CreatableTopicConfig::default()
                                        .with_name(StrBytes::from_string(k.clone()))
                                        .with_value(Some(StrBytes::from_string(v.clone())))
                                })
                                .collect(),
                        )
                })
                .collect();
            CreateTopicsRequest::default().with_topics(topics).with_timeout_ms(30_000)
        })
        .await?;
    for t in &resp.topics {
        check(t.error_code, t.error_message.as_ref(), format!("cannot create topic '{}'", t.name.as_str()))?;
        println!("created {}", t.name.as_str());
    }
    Ok(())
}

async fn list(admin: &mut Admin, internal: bool) -> Result<()> {
    let meta = admin.metadata(None).await?;
    let mut rows: Vec<Vec<String>> = meta
        .topics
        .iter()
        .filter(|t| internal || !t.is_internal)
        .map(|t| {
            let replicas = t.partitions.first().map_or(0, |p| p.replica_nodes.len());
            vec![topic_name(t.name.as_ref()), t.partitions.len().to_string(), replicas.to_string()]
        })
        .collect();
    rows.sort();
    table(&["NAME", "PARTITIONS", "REPLICAS"], rows);
    Ok(())
}

fn topic_name(n: Option<&TopicName>) -> String {
    n.map_or_else(String::new, |n| n.as_str().to_string())
}

/// Metadata of one existing topic, or an error naming it.
async fn topic_metadata(admin: &mut Admin, topic: &str) -> Result<MetadataResponse> {
    let meta = admin.metadata(Some(&[topic.to_string()])).await?;
    let t = meta.topics.first().with_context(|| format!("no metadata for topic '{topic}'"))?;
    check(t.error_code, None, format!("topic '{topic}'"))?;
    Ok(meta)
}

/// Earliest (-2) or latest (-1) offset of each partition, asked of its leader.
pub(super) async fn offsets(
    admin: &mut Admin,
    topic: &str,
    meta: &MetadataResponse,
    timestamp: i64,
) -> Result<BTreeMap<i32, i64>> {
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in meta.topics.iter().flat_map(|t| &t.partitions) {
        by_leader.entry(p.leader_id.0).or_default().push(p.partition_index);
    }
    let mut out = BTreeMap::new();
    for (leader, partitions) in by_leader {
        let addr = admin.node(leader).with_context(|| format!("topic '{topic}' has partitions without a leader"))?;
        let (resp, _) = admin
            .call(&addr, "ListOffsets", 7, |_| {
                let parts = partitions
                    .iter()
                    .map(|&p| ListOffsetsPartition::default().with_partition_index(p).with_timestamp(timestamp))
                    .collect();
                ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(vec![ListOffsetsTopic::default().with_name(name(topic)).with_partitions(parts)])
            })
            .await?;
        for p in resp.topics.iter().flat_map(|t| &t.partitions) {
            check(p.error_code, None, format!("offsets of {topic}-{}", p.partition_index))?;
            out.insert(p.partition_index, p.offset);
        }
    }
    Ok(out)
}

async fn describe(admin: &mut Admin, topic: &str) -> Result<()> {
    let meta = topic_metadata(admin, topic).await?;
    let start = offsets(admin, topic, &meta, -2).await?;
    let end = offsets(admin, topic, &meta, -1).await?;
    let t = &meta.topics[0];
    println!("NAME        {topic}");
    println!("INTERNAL    {}", t.is_internal);
    println!("PARTITIONS  {}", t.partitions.len());
    println!();
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0.to_string()).collect::<Vec<_>>().join(",");
    let mut rows: Vec<(i32, Vec<String>)> = t
        .partitions
        .iter()
        .map(|p| {
            let i = p.partition_index;
            let cell = |m: &BTreeMap<i32, i64>| m.get(&i).map_or("-".into(), i64::to_string);
            let row = vec![
                i.to_string(),
                p.leader_id.0.to_string(),
                p.leader_epoch.to_string(),
                ids(&p.replica_nodes),
                ids(&p.isr_nodes),
                cell(&start),
                cell(&end),
            ];
            (i, row)
        })
        .collect();
    rows.sort_by_key(|(i, _)| *i);
    table(
        &["PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "LOG-START-OFFSET", "HIGH-WATERMARK"],
        rows.into_iter().map(|(_, r)| r).collect(),
    );
    let addr = admin.any();
    let (resp, _) = admin
        .call(&addr, "DescribeConfigs", 4, |_| {
            DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_string(topic.to_string()))
                .with_configuration_keys(None)])
        })
        .await?;
    let mut rows = Vec::new();
    for r in &resp.results {
        check(r.error_code, r.error_message.as_ref(), format!("configs of '{topic}'"))?;
        // Source 1: set on the topic (DYNAMIC_TOPIC_CONFIG).
        for c in r.configs.iter().filter(|c| c.config_source == 1) {
            rows.push(vec![c.name.to_string(), c.value.as_ref().map_or("", |v| v.as_str()).to_string()]);
        }
    }
    if !rows.is_empty() {
        println!();
        table(&["CONFIG", "VALUE"], rows);
    }
    Ok(())
}

async fn alter_config(admin: &mut Admin, topic: &str, set: Vec<String>, delete: Vec<String>) -> Result<()> {
    if set.is_empty() && delete.is_empty() {
        bail!("nothing to change: give --set KEY=VALUE or --delete KEY");
    }
    let mut configs = Vec::new();
    for s in &set {
        let (k, v) = key_value(s)?;
        configs.push(
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_string(v))),
        );
    }
    for k in &delete {
        configs.push(AlterableConfig::default().with_name(StrBytes::from_string(k.clone())).with_config_operation(1));
    }
    let addr = admin.any();
    let (resp, _) = admin
        .call(&addr, "IncrementalAlterConfigs", 1, |_| {
            IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_string(topic.to_string()))
                .with_configs(configs)])
        })
        .await?;
    for r in &resp.responses {
        check(r.error_code, r.error_message.as_ref(), format!("cannot alter configs of '{topic}'"))?;
    }
    println!("altered {topic}");
    Ok(())
}

async fn add_partitions(admin: &mut Admin, topic: &str, num: i32) -> Result<()> {
    if num < 1 {
        bail!("--num must be at least 1");
    }
    let meta = topic_metadata(admin, topic).await?;
    let count = meta.topics[0].partitions.len() as i32 + num;
    let addr = admin.controller();
    let (resp, _) = admin
        .call(&addr, "CreatePartitions", 3, |_| {
            CreatePartitionsRequest::default()
                .with_topics(vec![CreatePartitionsTopic::default()
                    .with_name(name(topic))
                    .with_count(count)
                    .with_assignments(None)])
                .with_timeout_ms(30_000)
        })
        .await?;
    for r in &resp.results {
        check(r.error_code, r.error_message.as_ref(), format!("cannot add partitions to '{topic}'"))?;
    }
    println!("{topic} now has {count} partitions");
    Ok(())
}

async fn delete(admin: &mut Admin, topics: Vec<String>) -> Result<()> {
    let addr = admin.controller();
    let (resp, _) = admin
        .call(&addr, "DeleteTopics", 6, |v| {
            let req = DeleteTopicsRequest::default().with_timeout_ms(30_000);
            if v >= 6 {
                req.with_topics(topics.iter().map(|t| DeleteTopicState::default().with_name(Some(name(t)))).collect())
            } else {
                req.with_topic_names(topics.iter().map(|t| name(t)).collect())
            }
        })
        .await?;
    for r in &resp.responses {
        let topic = topic_name(r.name.as_ref());
        check(r.error_code, r.error_message.as_ref(), format!("cannot delete topic '{topic}'"))?;
        println!("deleted {topic}");
    }
    Ok(())
}

/// Kafka's default partitioner for keyed records: murmur2 of the key.
fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) % partitions as u32) as i32
}

/// Kafka's murmur2 (seed 0x9747b28c), as its clients hash keys.
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// Records and bytes per produce request at most (well under Kafka's
/// default max.message.bytes of 1 MiB).
const PRODUCE_BATCH: usize = 500;
const PRODUCE_BATCH_BYTES: usize = 256 * 1024;

async fn produce(admin: &mut Admin, topic: &str, key: Option<String>, partition: Option<i32>) -> Result<()> {
    let meta = topic_metadata(admin, topic).await?;
    let leaders: BTreeMap<i32, i32> =
        meta.topics[0].partitions.iter().map(|p| (p.partition_index, p.leader_id.0)).collect();
    let count = leaders.len() as i32;
    if count == 0 {
        bail!("topic '{topic}' has no partitions");
    }
    let key = key.map(Bytes::from);
    let mut next_partition = 0;
    let stdin = std::io::stdin();
    // Typed lines go out one by one; piped input in batches.
    let interactive = std::io::IsTerminal::is_terminal(&stdin);
    let mut lines = stdin.lock().lines();
    loop {
        let mut values = Vec::new();
        let mut bytes = 0;
        for line in lines.by_ref() {
            let line = line.context("reading stdin")?;
            bytes += line.len();
            values.push(line);
            if interactive || values.len() >= PRODUCE_BATCH || bytes >= PRODUCE_BATCH_BYTES {
                break;
            }
        }
        if values.is_empty() {
            return Ok(());
        }
        let target = match (partition, &key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k, count),
            (None, None) => {
                next_partition = (next_partition + 1) % count;
                next_partition
            }
        };
        let Some(&leader) = leaders.get(&target) else { bail!("topic '{topic}' has no partition {target}") };
        let addr = admin.node(leader)?;
        let batch = encode_batch(key.clone(), &values);
        let (resp, _) = admin
            .call(&addr, "Produce", 9, |_| {
                ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
                    TopicProduceData::default().with_name(name(topic)).with_partition_data(vec![
                        PartitionProduceData::default().with_index(target).with_records(Some(batch)),
                    ]),
                ])
            })
            .await?;
        for p in resp.responses.iter().flat_map(|t| &t.partition_responses) {
            check(p.error_code, p.error_message.as_ref(), format!("cannot produce to {topic}-{target}"))?;
            for i in 0..values.len() as i64 {
                println!("Produced to partition {target} at offset {}", p.base_offset + i);
            }
        }
    }
}

/// The lines as one uncompressed batch, every record with `key`.
fn encode_batch(key: Option<Bytes>, values: &[String]) -> Bytes {
    let now = crate::now_ms();
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record { key: key.clone(), ..record(i, now, Bytes::new(), Some(Bytes::from(v.clone()))) })
        .collect();
    Bytes::from(encode(&records))
}

async fn consume(
    admin: &mut Admin,
    topic: &str,
    partition: Option<i32>,
    from: &str,
    num: Option<usize>,
    format: &str,
) -> Result<()> {
    let meta = topic_metadata(admin, topic).await?;
    let start = offsets(admin, topic, &meta, -2).await?;
    let end = offsets(admin, topic, &meta, -1).await?;
    let partitions: Vec<(i32, i32)> = meta.topics[0]
        .partitions
        .iter()
        .filter(|p| partition.is_none_or(|want| want == p.partition_index))
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    if let Some(p) = partition.filter(|_| partitions.is_empty()) {
        bail!("topic '{topic}' has no partition {p}");
    }
    let mut left = num.unwrap_or(usize::MAX);
    let mut out = std::io::stdout().lock();
    for (index, leader) in partitions {
        let (first, last) = (start.get(&index).copied().unwrap_or(0), end.get(&index).copied().unwrap_or(0));
        let mut offset = match from {
            "start" => first,
            "end" => last,
            n => n.parse::<i64>().with_context(|| format!("--offset '{n}' is not start, end or a number"))?.max(first),
        };
        let addr = admin.node(leader)?;
        while offset < last && left > 0 {
            let (resp, _) = admin
                .call(&addr, "Fetch", 12, |_| {
                    FetchRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_max_wait_ms(500)
                        .with_min_bytes(1)
                        .with_max_bytes(8 << 20)
                        .with_session_epoch(-1)
                        .with_topics(vec![FetchTopic::default().with_topic(name(topic)).with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(index)
                                .with_fetch_offset(offset)
                                .with_partition_max_bytes(4 << 20)
                                .with_current_leader_epoch(-1)
                                .with_log_start_offset(-1),
                        ])])
                })
                .await?;
            let data = resp.responses.iter().flat_map(|t| &t.partitions).find(|p| p.partition_index == index);
            let Some(data) = data else { bail!("no data for {topic}-{index} in the fetch response") };
            check(data.error_code, None, format!("cannot fetch {topic}-{index} at offset {offset}"))?;
            // A broker may end the data mid-batch (Kafka returns a byte
            // range): only whole batches are read; the rest comes next time.
            let all = data.records.clone().unwrap_or_default();
            let (whole, whole_end) = whole_batches(&all);
            let mut bytes = all.slice(..whole);
            let before = offset;
            for set in RecordBatchDecoder::decode_all(&mut bytes).context("decoding fetched records")? {
                for r in set.records.iter().filter(|r| !r.control && r.offset >= offset) {
                    if left == 0 {
                        break;
                    }
                    writeln!(out, "{}", render(format, topic, index, r)).context("writing stdout")?;
                    left -= 1;
                }
            }
            // Past every whole batch, empty ones (compacted away) included.
            if let Some(end) = whole_end {
                offset = offset.max(end);
            }
            if offset == before {
                break;
            }
        }
    }
    Ok(())
}

/// The length of the whole batches at the start of `bytes`, and the offset
/// after the last of them.
fn whole_batches(bytes: &[u8]) -> (usize, Option<i64>) {
    let (mut at, mut end) = (0usize, None);
    while let Some(h) = bytes.get(at..at + 61) {
        let size = 12 + i32::from_be_bytes([h[8], h[9], h[10], h[11]]).max(0) as usize;
        if at + size > bytes.len() || size < 61 {
            break;
        }
        let base = i64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        let delta = i32::from_be_bytes([h[23], h[24], h[25], h[26]]);
        end = Some(base.saturating_add(i64::from(delta) + 1));
        at += size;
    }
    (at, end)
}

fn render(format: &str, topic: &str, partition: i32, r: &Record) -> String {
    let text = |b: &Option<Bytes>| b.as_ref().map_or(String::new(), |b| String::from_utf8_lossy(b).into_owned());
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push_str(topic),
            Some('p') => out.push_str(&partition.to_string()),
            Some('o') => out.push_str(&r.offset.to_string()),
            Some('k') => out.push_str(&text(&r.key)),
            Some('v') => out.push_str(&text(&r.value)),
            Some('T') => out.push_str(&r.timestamp.to_string()),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_partitioner() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21") as i32, -973932308);
        assert_eq!(murmur2(b"foobar") as i32, -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string") as i32, -1486304829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32, -58897971);
        assert_eq!(murmur2(b"abc") as i32, 479470107);
    }
}
