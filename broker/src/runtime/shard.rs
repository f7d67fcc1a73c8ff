//! Thread-per-core shards. Each shard is one OS thread pinned to a core,
//! running a current-thread Tokio runtime, owning the partitions hashed to
//! it and the connections its `SO_REUSEPORT` listener accepts. Work on a
//! partition always runs on its owner: locally when the caller is already
//! there, otherwise as a job over that shard's bounded channel (a full
//! channel makes the sender wait — back-pressure, not buffering).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::rc::Rc;

use sluice_storage::{Partition, Ring};

use crate::config::GroupConfig;
use crate::group::Coordinator;
use crate::replication::replica::{Replica, Replicas, TopicPartition};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// Jobs each shard's channel holds before senders wait.
const JOB_QUEUE: usize = 1024;
/// Produce bytes a shard accepts in flight before producers wait: the
/// network readers stop reading instead of the broker buffering more.
pub const SHARD_INFLIGHT_BYTES: usize = 256 * 1024 * 1024;

type Job = Box<dyn FnOnce(&Rc<ShardContext>) + Send>;

thread_local! {
    static CURRENT: RefCell<Option<Rc<ShardContext>>> = const { RefCell::new(None) };
}

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("shard {0} has stopped")]
    Stopped(usize),
    #[error("partition {}-{} is not open on its shard", .0.0, .0.1)]
    NoPartition(TopicPartition),
}

/// What one shard owns. Lives only on its thread.
pub struct ShardContext {
    pub id: usize,
    /// This shard's io_uring instance: all partition I/O goes through it.
    pub ring: Rc<Ring>,
    /// The consumer groups whose `__consumer_offsets` partition this
    /// shard leads.
    pub coordinator: Rc<Coordinator>,
    /// The transactions whose `__transaction_state` partition this shard leads.
    pub transactions: Rc<crate::txn::TxnCoordinator>,
    replicas: Replicas,
    /// Leaders this shard runs a replica fetcher for.
    pub fetchers: RefCell<HashSet<i32>>,
}

impl ShardContext {
    /// Creates the shard's state and its ring; call on the shard's thread,
    /// inside its `LocalSet`.
    pub fn new(id: usize, groups: GroupConfig) -> std::io::Result<Rc<Self>> {
        Ok(Rc::new(Self {
            id,
            ring: Ring::new()?,
            coordinator: Rc::new(Coordinator::new(groups)),
            transactions: Rc::default(),
            replicas: RefCell::new(HashMap::new()),
            fetchers: RefCell::new(HashSet::new()),
        }))
    }

    /// Makes this the calling thread's shard (once, at thread start).
    pub fn install(self: &Rc<Self>) {
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
    }

    pub fn partition(&self, tp: &TopicPartition) -> Option<Rc<Partition>> {
        self.replicas.borrow().get(tp).map(|r| r.log.clone())
    }

    pub fn replica(&self, tp: &TopicPartition) -> Option<Rc<Replica>> {
        self.replicas.borrow().get(tp).cloned()
    }

    pub fn insert(&self, tp: TopicPartition, replica: Rc<Replica>) {
        self.replicas.borrow_mut().insert(tp, replica);
    }

    pub fn remove(&self, tp: &TopicPartition) -> Option<Rc<Replica>> {
        self.replicas.borrow_mut().remove(tp)
    }

    pub fn all(&self) -> Vec<(TopicPartition, Rc<Replica>)> {
        self.replicas.borrow().iter().map(|(tp, r)| (*tp, r.clone())).collect()
    }
}

/// What a flush of a shard's partitions does after the fdatasync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    Only,
    /// Records each partition's recovery point (a restart after a crash
    /// re-checks only what lies above it).
    Checkpoint,
    /// Records the recovery point as a clean stop: nothing above it to check.
    CleanStop,
}

impl ShardContext {
    /// fdatasyncs every partition this shard owns, then does what `how` says.
    pub async fn flush(&self, how: Flush) {
        for ((topic, partition), replica) in self.all() {
            let p = &replica.log;
            let mut outcome = p.flush().await;
            if outcome.is_ok() && how != Flush::Only {
                outcome = p.checkpoint(how == Flush::CleanStop);
            }
            if let Err(e) = outcome {
                tracing::error!(%topic, partition, error = %e, "flush failed");
            }
        }
    }
}

fn current() -> Option<Rc<ShardContext>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Handles to every shard; cheap to share across threads.
pub struct ShardSet {
    senders: Vec<mpsc::Sender<Job>>,
    inflight: Vec<Arc<Semaphore>>,
}

/// The receiving ends, one per shard, handed to the shard threads.
pub struct JobQueue(mpsc::Receiver<Job>);

impl JobQueue {
    /// Runs jobs until every sender is gone.
    pub async fn serve(mut self, ctx: Rc<ShardContext>) {
        while let Some(job) = self.0.recv().await {
            job(&ctx);
        }
    }
}

impl ShardSet {
    pub fn new(count: usize) -> (Self, Vec<JobQueue>) {
        let (senders, queues) = (0..count)
            .map(|_| {
                let (tx, rx) = mpsc::channel(JOB_QUEUE);
                (tx, JobQueue(rx))
            })
            .unzip();
        let inflight = (0..count).map(|_| Arc::new(Semaphore::new(SHARD_INFLIGHT_BYTES))).collect();
        (Self { senders, inflight }, queues)
    }

    /// Reserves `bytes` of `shard`'s produce budget, waiting while it is
    /// spent; the budget returns when the permit is dropped.
    pub async fn reserve_bytes(&self, shard: usize, bytes: usize) -> Result<OwnedSemaphorePermit, ShardError> {
        let budget = self.inflight.get(shard).ok_or(ShardError::Stopped(shard))?;
        let permits = bytes.clamp(1, SHARD_INFLIGHT_BYTES) as u32;
        budget.clone().acquire_many_owned(permits).await.map_err(|_| ShardError::Stopped(shard))
    }

    pub fn len(&self) -> usize {
        self.senders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    /// The shard owning a partition. Consecutive partitions of a topic land
    /// on consecutive shards, so a topic spreads over all cores.
    pub fn owner(&self, tp: &TopicPartition) -> usize {
        let id = tp.0.as_u128();
        let mut h = (id as u64) ^ ((id >> 64) as u64);
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        ((h % self.len() as u64) as usize + tp.1.max(0) as usize) % self.len()
    }

    /// Starts `f` on `shard` and returns a receiver for its result, so a
    /// caller can start work on many shards before awaiting any of it.
    pub async fn spawn_on<R, F, Fut>(&self, shard: usize, f: F) -> Result<oneshot::Receiver<R>, ShardError>
    where
        R: Send + 'static,
        F: FnOnce(Rc<ShardContext>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = move |ctx: &Rc<ShardContext>| {
            let ctx = ctx.clone();
            tokio::task::spawn_local(async move {
                let _ = tx.send(f(ctx).await);
            });
        };
        let job: Job = Box::new(job);
        // The shard context must not be held across the send's await: the
        // caller may be a Send future on another runtime.
        let remote = match current() {
            Some(ctx) if ctx.id == shard => {
                job(&ctx);
                None
            }
            _ => Some(job),
        };
        if let Some(job) = remote {
            let sender = self.senders.get(shard).ok_or(ShardError::Stopped(shard))?;
            sender.send(job).await.map_err(|_| ShardError::Stopped(shard))?;
        }
        Ok(rx)
    }

    /// Runs `f` on `shard` and waits for its result.
    pub async fn run_on<R, F, Fut>(&self, shard: usize, f: F) -> Result<R, ShardError>
    where
        R: Send + 'static,
        F: FnOnce(Rc<ShardContext>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        self.spawn_on(shard, f).await?.await.map_err(|_| ShardError::Stopped(shard))
    }

    /// Starts `f` on the partition's owner shard with its local replica.
    pub async fn spawn_on_partition<R, F, Fut>(&self, tp: TopicPartition, f: F) -> Result<Pending<R>, ShardError>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Replica>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        let shard = self.owner(&tp);
        let rx = self
            .spawn_on(shard, move |ctx| async move {
                match ctx.replica(&tp) {
                    Some(p) => Some(f(p).await),
                    None => None,
                }
            })
            .await?;
        Ok(Pending { rx, shard, tp })
    }
}

impl ShardSet {
    /// Runs `f` on the partition's owner shard and waits for its result.
    pub async fn run_on_partition<R, F, Fut>(&self, tp: TopicPartition, f: F) -> Result<R, ShardError>
    where
        R: Send + 'static,
        F: FnOnce(Rc<Replica>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        self.spawn_on_partition(tp, f).await?.result().await
    }
}

impl ShardError {
    /// The Kafka error a client gets: the partition is gone (deleted
    /// meanwhile), or its shard is stopping (retry elsewhere/later).
    pub fn kafka_error(&self) -> kafka_protocol::ResponseError {
        match self {
            ShardError::NoPartition(_) => kafka_protocol::ResponseError::UnknownTopicOrPartition,
            ShardError::Stopped(_) => kafka_protocol::ResponseError::NotLeaderOrFollower,
        }
    }
}

/// A partition operation started on its owner shard.
pub struct Pending<R> {
    rx: oneshot::Receiver<Option<R>>,
    shard: usize,
    tp: TopicPartition,
}

impl<R> Pending<R> {
    pub async fn result(self) -> Result<R, ShardError> {
        match self.rx.await {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(ShardError::NoPartition(self.tp)),
            Err(_) => Err(ShardError::Stopped(self.shard)),
        }
    }
}

/// Pins the calling thread to the `index`-th CPU it is allowed to run on
/// (wrapping around when there are more shards than CPUs). Best effort: if
/// the affinity calls fail, the thread simply stays unpinned.
pub fn pin_to_core(index: usize) {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it, the CPU_*
    // macros read and write inside it, sched_setaffinity only reads it.
    unsafe {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size, &mut allowed) != 0 {
            return;
        }
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &allowed)).collect();
        let Some(&cpu) = cpus.get(index % cpus.len().max(1)) else { return };
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size, &set) != 0 {
            tracing::debug!(cpu, error = %std::io::Error::last_os_error(), "could not pin shard thread");
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn partitions_of_a_topic_spread_over_every_shard() {
        let (set, _queues) = ShardSet::new(4);
        let topic = Uuid::new_v4();
        let mut owners: Vec<usize> = (0..8).map(|p| set.owner(&(topic, p))).collect();
        assert_eq!(owners[..4].iter().collect::<std::collections::HashSet<_>>().len(), 4);
        assert_eq!(owners[0], owners[4], "partition p and p+shards share a shard");
        owners.sort();
        assert_eq!(owners, vec![0, 0, 1, 1, 2, 2, 3, 3]);
        assert_eq!(set.owner(&(topic, 3)), set.owner(&(topic, 3)), "stable");
    }

    #[test]
    fn jobs_run_on_the_owner_thread() {
        let (set, queues) = ShardSet::new(2);
        let set = std::sync::Arc::new(set);
        let threads: Vec<_> = queues
            .into_iter()
            .enumerate()
            .map(|(id, q)| {
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                    let local = tokio::task::LocalSet::new();
                    local.block_on(&rt, async move {
                        let ctx = ShardContext::new(id, GroupConfig::default()).unwrap();
                        ctx.install();
                        q.serve(ctx).await;
                    });
                })
            })
            .collect();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let ids = rt.block_on(async {
            let a = set.run_on(0, |ctx| async move { (ctx.id, std::thread::current().id()) }).await.unwrap();
            let b = set.run_on(1, |ctx| async move { (ctx.id, std::thread::current().id()) }).await.unwrap();
            (a, b)
        });
        assert_eq!((ids.0 .0, ids.1 .0), (0, 1));
        assert_ne!(ids.0 .1, ids.1 .1);
        let missing = rt
            .block_on(async { set.spawn_on_partition((Uuid::nil(), 0), |_p| async {}).await.unwrap().result().await });
        assert!(matches!(missing, Err(ShardError::NoPartition(_))));
        drop(set);
        threads.into_iter().for_each(|t| t.join().unwrap());
    }
}
