//! `sluice-loadgen`: drives any Kafka-compatible broker with librdkafka.
//!
//! Two modes, one JSON line of results on stdout:
//! - throughput (`--rate 0`): producers send as fast as the broker acks;
//!   reports acknowledged records/s and MB/s.
//! - latency (`--rate R`): open loop. Record i is due at start + i/R and
//!   carries that due time; a consumer reading the topic measures receipt
//!   minus due time. A stalled broker therefore shows up as latency for
//!   every record that waited, not just one (no coordinated omission).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Parser;
use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(about = "End-to-end Kafka load generator (librdkafka)")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Topic to create (a fresh name per run is best).
    #[arg(long)]
    topic: String,
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    #[arg(long, default_value_t = 1)]
    replication_factor: i32,
    /// Bytes per record value.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// 1 or all.
    #[arg(long, default_value = "all")]
    acks: String,
    #[arg(long, default_value = "none")]
    compression: String,
    /// Records per second in total; 0 sends as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds of producing.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Consumers reading the topic (latency mode needs at least one).
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// librdkafka's `linger.ms` (its default is 5).
    #[arg(long, default_value_t = 5)]
    linger_ms: u32,
    /// Latency mode: seconds sent at the target rate before recording starts
    /// (connections, metadata and first fetches settle).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// A topic config for the new topic, `name=value`; repeatable.
    #[arg(long = "topic-config", value_parser = parse_config)]
    topic_configs: Vec<(String, String)>,
    /// Leave the topic in place after the run (by default it is deleted, so
    /// a series of runs does not fill the broker's disk).
    #[arg(long)]
    keep_topic: bool,
}

fn parse_config(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected name=value, got '{s}'"))
}

#[derive(Debug, Serialize)]
struct Report {
    mode: &'static str,
    partitions: i32,
    record_size: usize,
    acks: String,
    compression: String,
    target_rate: u64,
    seconds: f64,
    acked: u64,
    errors: u64,
    records_per_s: f64,
    mb_per_s: f64,
    received: u64,
    latency_ms: Option<Percentiles>,
    /// Latency mode: how far behind its schedule the producer fell at worst
    /// (large values mean the client, not the broker, limited the run).
    max_send_lag_ms: f64,
}

#[derive(Debug, Serialize)]
struct Percentiles {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

/// Counts sends and failed deliveries (only failures are reported, so the
/// client spends its CPU producing); tracks the worst schedule lag.
#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    errors: AtomicU64,
    max_lag_ns: AtomicU64,
}

struct Deliveries(Arc<Counts>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.0.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.record_size < 8 {
        bail!("--record-size must be at least 8 (the due time travels in the record)");
    }
    if args.producers == 0 || (args.rate > 0 && args.rate < args.producers as u64) {
        bail!("--producers must be at least 1 and, with --rate, at most the rate");
    }
    if args.partitions < 1 {
        bail!("--partitions must be at least 1");
    }
    let latency_mode = args.rate > 0 && args.consumers > 0;
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &args.bootstrap).create().context("admin client")?;
    create_topic(&admin, &args, latency_mode)?;
    let counts = Arc::new(Counts::default());
    // Warm-up records are produced and consumed like the rest but not timed.
    let warmup = if latency_mode { Duration::from_secs(args.warmup) } else { Duration::ZERO };
    let measure_from_ns = now_ns() + warmup.as_nanos() as u64;
    let consumers = latency_mode.then(|| start_consumers(&args, measure_from_ns));
    let run_for = warmup + Duration::from_secs(args.duration);
    let started = Instant::now();
    let producers: Vec<_> = (0..args.producers)
        .map(|i| {
            let config = producer_config(&args);
            let (topic, size, partitions) = (args.topic.clone(), args.record_size, args.partitions);
            let rate = args.rate / args.producers as u64 + u64::from((i as u64) < args.rate % args.producers as u64);
            let counts = counts.clone();
            std::thread::spawn(move || produce(config, &topic, partitions, size, rate, run_for, counts))
        })
        .collect();
    for p in producers {
        p.join().map_err(|_| anyhow::anyhow!("a producer thread panicked"))??;
    }
    let seconds = started.elapsed().as_secs_f64();
    // Every producer has flushed: each record sent was acknowledged or failed.
    let acked = counts.sent.load(Ordering::Relaxed) - counts.errors.load(Ordering::Relaxed);
    let (received, latency_ms) = match consumers {
        Some(consumers) => {
            let (received, hist) = consumers.finish(acked)?;
            let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
            let pct = Percentiles { p50: ms(0.5), p99: ms(0.99), p999: ms(0.999), max: hist.max() as f64 / 1000.0 };
            (received, (!hist.is_empty()).then_some(pct))
        }
        None => (0, None),
    };
    let report = Report {
        mode: if args.rate == 0 { "throughput" } else { "latency" },
        partitions: args.partitions,
        record_size: args.record_size,
        acks: args.acks.clone(),
        compression: args.compression.clone(),
        target_rate: args.rate,
        seconds,
        acked,
        errors: counts.errors.load(Ordering::Relaxed),
        records_per_s: acked as f64 / seconds,
        mb_per_s: acked as f64 * args.record_size as f64 / seconds / 1e6,
        received,
        latency_ms,
        max_send_lag_ms: counts.max_lag_ns.load(Ordering::Relaxed) as f64 / 1e6,
    };
    println!("{}", serde_json::to_string(&report)?);
    if !args.keep_topic {
        let deleted = futures_executor::block_on(admin.delete_topics(&[&args.topic], &admin_options()));
        if let Some(Err((name, code))) = deleted.context("delete topic")?.into_iter().next() {
            bail!("cannot delete topic {name}: {code}");
        }
    }
    Ok(())
}

fn admin_options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)))
}

/// Creates the topic. Latency runs read it from the beginning, so they need
/// a new one: old records would count as (very) late.
fn create_topic(admin: &AdminClient<DefaultClientContext>, args: &Args, must_be_new: bool) -> anyhow::Result<()> {
    let mut topic = NewTopic::new(&args.topic, args.partitions, TopicReplication::Fixed(args.replication_factor));
    for (name, value) in &args.topic_configs {
        topic = topic.set(name, value);
    }
    let results =
        futures_executor::block_on(admin.create_topics([&topic], &admin_options())).context("create topic")?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) if !must_be_new => {}
            Err((name, code)) => bail!("cannot create topic {name}: {code}"),
        }
    }
    Ok(())
}

fn producer_config(args: &Args) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &args.bootstrap)
        .set("acks", &args.acks)
        .set("compression.type", &args.compression)
        .set("linger.ms", args.linger_ms.to_string())
        .set("enable.idempotence", "false")
        .set("delivery.report.only.error", "true")
        .set("queue.buffering.max.kbytes", "262144")
        .set("message.timeout.ms", "60000");
    c
}

/// Sends for `duration`: as fast as possible with `rate` 0, else each
/// record at its due time, carrying that time in its first 8 bytes.
/// Records go round-robin over the partitions, as evenly spread keys would
/// (librdkafka's sticky partitioner would feed one partition at a time).
fn produce(
    config: ClientConfig,
    topic: &str,
    partitions: i32,
    size: usize,
    rate: u64,
    duration: Duration,
    counts: Arc<Counts>,
) -> anyhow::Result<()> {
    let producer: BaseProducer<Deliveries> =
        config.create_with_context(Deliveries(counts.clone())).context("producer")?;
    let mut payload = vec![b'x'; size];
    let start = Instant::now();
    let start_ns = now_ns();
    let mut sent: u64 = 0;
    while start.elapsed() < duration {
        let due_ns = match (sent * 1_000_000_000).checked_div(rate) {
            None => now_ns(),
            Some(due) => {
                let due = Duration::from_nanos(due);
                let elapsed = start.elapsed();
                if let Some(wait) = due.checked_sub(elapsed) {
                    producer.poll(Duration::ZERO);
                    std::thread::sleep(wait.min(Duration::from_millis(1)));
                    continue;
                }
                counts.max_lag_ns.fetch_max((elapsed - due).as_nanos() as u64, Ordering::Relaxed);
                start_ns + due.as_nanos() as u64
            }
        };
        payload[..8].copy_from_slice(&due_ns.to_be_bytes());
        let partition = (sent % partitions as u64) as i32;
        match producer.send(BaseRecord::<(), [u8]>::to(topic).partition(partition).payload(payload.as_slice())) {
            Ok(()) => sent += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                // Sleep rather than poll with a timeout: rdkafka's poll
                // spins on the clock for sub-millisecond remainders, taking
                // the CPU the broker under test needs.
                producer.poll(Duration::ZERO);
                std::thread::sleep(Duration::from_micros(200));
            }
            Err((e, _)) => bail!("produce failed: {e}"),
        }
        if sent.is_multiple_of(256) {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(60)).context("flush")?;
    counts.sent.fetch_add(sent, Ordering::Relaxed);
    Ok(())
}

/// Consumers reading every partition of the (new) topic from its start,
/// timing the records due after the warm-up.
struct Consumers {
    threads: Vec<std::thread::JoinHandle<anyhow::Result<Histogram<u64>>>>,
    received: Arc<AtomicU64>,
    expected: Arc<AtomicU64>,
}

fn start_consumers(args: &Args, measure_from_ns: u64) -> Consumers {
    let received = Arc::new(AtomicU64::new(0));
    let expected = Arc::new(AtomicU64::new(u64::MAX));
    let threads = (0..args.consumers)
        .map(|i| {
            let (bootstrap, topic) = (args.bootstrap.clone(), args.topic.clone());
            let mine: Vec<i32> = (0..args.partitions).filter(|p| *p as usize % args.consumers == i).collect();
            let (received, expected) = (received.clone(), expected.clone());
            std::thread::spawn(move || consume(&bootstrap, &topic, &mine, measure_from_ns, &received, &expected))
        })
        .collect();
    Consumers { threads, received, expected }
}

impl Consumers {
    /// Waits until `acked` records arrived (or 30 s without progress) and
    /// merges the histograms.
    fn finish(self, acked: u64) -> anyhow::Result<(u64, Histogram<u64>)> {
        self.expected.store(acked, Ordering::Relaxed);
        let mut all = latency_histogram()?;
        for t in self.threads {
            let h = t.join().map_err(|_| anyhow::anyhow!("a consumer thread panicked"))??;
            all.add(h)?;
        }
        Ok((self.received.load(Ordering::Relaxed), all))
    }
}

/// Microseconds from 1 µs to an hour at 3 significant digits. Fixed bounds:
/// an auto-resizing histogram clamps `saturating_record` at its initial top.
fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 3_600_000_000, 3)?)
}

fn consume(
    bootstrap: &str,
    topic: &str,
    partitions: &[i32],
    measure_from_ns: u64,
    received: &AtomicU64,
    expected: &AtomicU64,
) -> anyhow::Result<Histogram<u64>> {
    let mut hist = latency_histogram()?;
    if partitions.is_empty() {
        return Ok(hist);
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "sluice-loadgen")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .set("fetch.min.bytes", "1")
        .create()
        .context("consumer")?;
    let mut assignment = TopicPartitionList::new();
    for &p in partitions {
        assignment.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut last_progress = Instant::now();
    loop {
        if received.load(Ordering::Relaxed) >= expected.load(Ordering::Relaxed)
            || (expected.load(Ordering::Relaxed) != u64::MAX && last_progress.elapsed() > Duration::from_secs(30))
        {
            return Ok(hist);
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => {
                let now = now_ns();
                if let Some(due) = msg.payload().and_then(|p| p.get(..8)) {
                    let due = u64::from_be_bytes(due.try_into()?);
                    if due >= measure_from_ns {
                        hist.saturating_record(now.saturating_sub(due) / 1000);
                    }
                }
                received.fetch_add(1, Ordering::Relaxed);
                last_progress = Instant::now();
            }
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
    }
}
