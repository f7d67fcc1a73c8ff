//! storage-bench: appends to 1 and 16 partitions through the real engine
//! (one shard thread, its io_uring ring, group commit) and prints one JSON
//! line per configuration: throughput and append latency percentiles.
//! `make bench` runs it beside fio on the same disk; see bench/storage.py.
//!
//! Each configuration runs twice: with `--inflight` appends in flight per
//! partition (throughput; latency then includes queueing) and with one
//! (latency of a lone append, group commit included).
//!
//! `--recovery GIB` instead measures start-up: it writes a GIB-sized log
//! of 4 MiB segments, then times reopening it after a clean stop and after
//! a crash whose last recovery checkpoint is 64 MiB behind the end.
//!
//! usage: storage-bench [--dir DIR] [--mib-per-run N] [--inflight N] [--recovery GIB]

use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sluice_storage::{FsyncPolicy, LogConfig, Partition, Ring, BATCH_HEADER_LEN};

struct Args {
    dir: PathBuf,
    mib_per_run: usize,
    inflight: usize,
    recovery_gib: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { dir: PathBuf::from("bench-data"), mib_per_run: 512, inflight: 8, recovery_gib: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => args.dir = PathBuf::from(value()?),
            "--mib-per-run" => args.mib_per_run = value()?.parse().map_err(|e| format!("--mib-per-run: {e}"))?,
            "--inflight" => args.inflight = value()?.parse().map_err(|e| format!("--inflight: {e}"))?,
            "--recovery" => args.recovery_gib = Some(value()?.parse().map_err(|e| format!("--recovery: {e}"))?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

/// A RecordBatch v2 of `bytes` total with `records` records and a valid CRC;
/// the record bodies are filler (storage never reads them).
fn batch(bytes: usize, records: i32) -> Vec<u8> {
    let mut b = vec![0xabu8; bytes.max(BATCH_HEADER_LEN)];
    let len = b.len() as i32 - 12;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[16] = 2;
    b[23..27].copy_from_slice(&(records - 1).to_be_bytes());
    let now = 1_700_000_000_000i64;
    b[27..35].copy_from_slice(&now.to_be_bytes());
    b[35..43].copy_from_slice(&now.to_be_bytes());
    b[57..61].copy_from_slice(&records.to_be_bytes());
    // No producer id, epoch or sequence (-1), as non-idempotent clients send.
    b[43..57].fill(0xff);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

struct Outcome {
    mb_per_s: f64,
    latencies: Vec<Duration>,
}

async fn run(
    args: &Args,
    partitions: usize,
    batch_bytes: usize,
    fsync: FsyncPolicy,
    inflight: usize,
) -> Result<Outcome, String> {
    let dir = args.dir.join(format!("p{partitions}-b{batch_bytes}-{fsync:?}-i{inflight}"));
    let _ = std::fs::remove_dir_all(&dir);
    let ring = Ring::new().map_err(|e| format!("io_uring: {e}"))?;
    let config = LogConfig { fsync, ..LogConfig::default() };
    let mut logs = Vec::new();
    for p in 0..partitions {
        let log = Partition::open(&dir.join(format!("t-{p}")), config.clone(), ring.clone()).await;
        logs.push(Rc::new(log.map_err(|e| e.to_string())?));
    }
    let total = args.mib_per_run << 20;
    let appends_per_writer = (total / batch_bytes / (partitions * inflight)).max(1);
    let template = Rc::new(batch(batch_bytes, (batch_bytes / 1024).max(1) as i32));
    let started = Instant::now();
    let mut writers = Vec::new();
    for log in &logs {
        for _ in 0..inflight {
            let (log, template) = (log.clone(), template.clone());
            writers.push(tokio::task::spawn_local(async move {
                let mut latencies = Vec::with_capacity(appends_per_writer);
                for _ in 0..appends_per_writer {
                    let t = Instant::now();
                    log.append(template.to_vec()).await.map_err(|e| e.to_string())?;
                    latencies.push(t.elapsed());
                }
                Ok::<_, String>(latencies)
            }));
        }
    }
    let mut latencies = Vec::new();
    for w in writers {
        latencies.extend(w.await.map_err(|e| e.to_string())??);
    }
    // Buffered runs end with one flush, as fio's end_fsync does.
    for log in &logs {
        log.flush().await.map_err(|e| e.to_string())?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let written = (appends_per_writer * partitions * inflight * template.len()) as f64;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Outcome { mb_per_s: written / elapsed / 1e6, latencies })
}

/// Start-up time over a large log, after a clean stop and after a crash.
async fn recovery(args: &Args, gib: usize) -> Result<(), String> {
    let dir = args.dir.join("recovery");
    let _ = std::fs::remove_dir_all(&dir);
    let ring = Ring::new().map_err(|e| format!("io_uring: {e}"))?;
    let config = LogConfig { segment_bytes: 4 << 20, fsync: FsyncPolicy::Never, ..LogConfig::default() };
    let template = batch(1 << 20, 1024);
    let total = gib << 10; // 1 MiB batches
    let log = Partition::open(&dir, config.clone(), ring.clone()).await.map_err(|e| e.to_string())?;
    for i in 0..total {
        log.append(template.clone()).await.map_err(|e| e.to_string())?;
        if i + 64 == total {
            log.flush().await.map_err(|e| e.to_string())?;
            log.checkpoint(false).map_err(|e| e.to_string())?;
        }
    }
    log.flush().await.map_err(|e| e.to_string())?;
    let end = log.offsets().log_end_offset;
    drop(log);
    let segments = std::fs::read_dir(&dir)
        .map_err(|e| e.to_string())?
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log")));
    let segments = segments.count();
    for (label, clean) in [("crash (checkpoint 64 MiB behind)", false), ("clean stop", true)] {
        if clean {
            let log = Partition::open(&dir, config.clone(), ring.clone()).await.map_err(|e| e.to_string())?;
            log.flush().await.map_err(|e| e.to_string())?;
            log.checkpoint(true).map_err(|e| e.to_string())?;
        }
        // Cold page cache when allowed (root), so reads really hit the disk.
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
        let cold = std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok();
        let started = Instant::now();
        let log = Partition::open(&dir, config.clone(), ring.clone()).await.map_err(|e| e.to_string())?;
        let took = started.elapsed();
        if log.offsets().log_end_offset != end {
            return Err(format!("recovered to {} instead of {end}", log.offsets().log_end_offset));
        }
        println!(
            "{{\"recovery\":\"{label}\",\"gib\":{gib},\"segments\":{segments},\"cold_cache\":{cold},\"ms\":{:.1}}}",
            took.as_secs_f64() * 1e3
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e6
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("storage-bench: {e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("storage-bench: cannot start a runtime: {e}");
            std::process::exit(1);
        }
    };
    let local = tokio::task::LocalSet::new();
    let failed = local.block_on(&rt, async {
        if let Some(gib) = args.recovery_gib {
            return match recovery(&args, gib).await {
                Ok(()) => false,
                Err(e) => {
                    eprintln!("storage-bench: {e}");
                    true
                }
            };
        }
        for partitions in [1usize, 16] {
            for batch_bytes in [16 << 10, 1 << 20] {
                for (fsync, inflight) in [
                    (FsyncPolicy::Never, args.inflight),
                    (FsyncPolicy::Batch, args.inflight),
                    (FsyncPolicy::Batch, 1),
                ] {
                    match run(&args, partitions, batch_bytes, fsync, inflight).await {
                        Ok(mut o) => {
                            o.latencies.sort();
                            let fsync = if fsync == FsyncPolicy::Batch { "group" } else { "none" };
                            println!(
                                "{{\"partitions\":{partitions},\"batch_bytes\":{batch_bytes},\"fsync\":\"{fsync}\",\"inflight\":{inflight},\"mb_per_s\":{:.1},\"p50_us\":{:.0},\"p99_us\":{:.0},\"p999_us\":{:.0}}}",
                                o.mb_per_s,
                                percentile(&o.latencies, 0.50),
                                percentile(&o.latencies, 0.99),
                                percentile(&o.latencies, 0.999),
                            );
                        }
                        Err(e) => {
                            eprintln!("storage-bench: {e}");
                            return true;
                        }
                    }
                }
            }
        }
        false
    });
    if failed {
        std::process::exit(1);
    }
}
