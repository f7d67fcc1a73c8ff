//! Broker settings: command-line flags, `SLUICE_*` environment variables and
//! an optional TOML file, resolved in that order of precedence over the
//! defaults, then validated. Every bad value is reported as one line naming
//! the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;
use sluice_storage::FsyncPolicy;

/// Every setting is optional here so that a value given by flag or
/// environment can be told apart from one left to the file or default.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (flags and env vars win).
    #[arg(long, env = "SLUICE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to accept Kafka clients on [default: 127.0.0.1:9092].
    #[arg(long, env = "SLUICE_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Address clients are told to connect to [default: the listen address].
    #[arg(long, env = "SLUICE_ADVERTISED_LISTENER", value_name = "HOST:PORT")]
    pub advertised_listener: Option<String>,
    /// Directory holding partition logs and metadata [default: ./data].
    #[arg(long, env = "SLUICE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// This broker's id [default: 0].
    #[arg(long, env = "SLUICE_NODE_ID", value_name = "N")]
    pub node_id: Option<i32>,
    /// Create unknown topics when clients ask for them in Metadata [default: true].
    #[arg(long, env = "SLUICE_AUTO_CREATE_TOPICS", value_name = "BOOL")]
    pub auto_create_topics: Option<bool>,
    /// Partitions of an auto-created topic or of one created with -1 [default: 1].
    #[arg(long, env = "SLUICE_NUM_PARTITIONS", value_name = "N")]
    pub num_partitions: Option<i32>,
    /// Log filter, e.g. info or sluice=debug [default: info].
    #[arg(long, env = "SLUICE_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Shard threads, each pinned to a core and owning a share of the
    /// partitions and connections [default: the number of cores].
    #[arg(long, env = "SLUICE_SHARDS", value_name = "N")]
    pub shards: Option<usize>,
    /// When produce with acks=1/-1 is answered: after a shared fdatasync
    /// (batch: group commit), after its own fdatasync (always), or once in
    /// the page cache (never) [default: batch].
    #[arg(long, env = "SLUICE_FSYNC", value_name = "never|batch|always")]
    pub fsync: Option<String>,
    /// How long the first rebalance of an empty consumer group waits for
    /// more members (Kafka's group.initial.rebalance.delay.ms) [default: 3000].
    #[arg(long, env = "SLUICE_GROUP_INITIAL_REBALANCE_DELAY_MS", value_name = "MS")]
    pub group_initial_rebalance_delay_ms: Option<u64>,
    /// How long committed offsets of an empty group are kept (Kafka's
    /// offsets.retention.minutes) [default: 10080, 7 days].
    #[arg(long, env = "SLUICE_OFFSETS_RETENTION_MINUTES", value_name = "MINUTES")]
    pub offsets_retention_minutes: Option<u64>,
    /// How often each shard applies retention.ms / retention.bytes, as
    /// Kafka's log.retention.check.interval.ms [default: 300000].
    #[arg(long, env = "SLUICE_RETENTION_CHECK_INTERVAL_MS", value_name = "MS")]
    pub retention_check_interval_ms: Option<u64>,
    /// How long each shard's log cleaner rests between passes over its
    /// compacted partitions (Kafka's log.cleaner.backoff.ms) [default: 15000].
    #[arg(long, env = "SLUICE_LOG_CLEANER_BACKOFF_MS", value_name = "MS")]
    pub log_cleaner_backoff_ms: Option<u64>,
    /// The metadata quorum's voters, every node of the cluster, as
    /// ID@HOST:PORT,... with each node's raft address [default: this node
    /// alone, no raft network]. A new cluster starts with these voters; a
    /// node not among them joins an existing cluster (it needs
    /// --raft-listen) and waits for `sluice cluster add-voter`.
    #[arg(long, env = "SLUICE_VOTERS", value_name = "ID@HOST:PORT,...")]
    pub voters: Option<String>,
    /// Address to accept raft peers on [default: this node's address in
    /// --voters; required for a node not among them].
    #[arg(long, env = "SLUICE_RAFT_LISTEN", value_name = "HOST:PORT")]
    pub raft_listen: Option<String>,
    /// This broker's rack; replicas of a partition are spread over racks.
    #[arg(long, env = "SLUICE_RACK", value_name = "RACK")]
    pub rack: Option<String>,
    /// A broker not heard from for this long is fenced and its partitions
    /// get new leaders (Kafka's broker.session.timeout.ms) [default: 9000].
    #[arg(long, env = "SLUICE_BROKER_SESSION_TIMEOUT_MS", value_name = "MS")]
    pub broker_session_timeout_ms: Option<u64>,
    /// A follower that has not caught up for this long leaves the ISR
    /// (Kafka's replica.lag.time.max.ms) [default: 30000].
    #[arg(long, env = "SLUICE_REPLICA_LAG_TIME_MAX_MS", value_name = "MS")]
    pub replica_lag_time_max_ms: Option<u64>,
    /// Replicas of auto-created topics and of topics created with -1
    /// (Kafka's default.replication.factor) [default: 1].
    #[arg(long, env = "SLUICE_DEFAULT_REPLICATION_FACTOR", value_name = "N")]
    pub default_replication_factor: Option<i16>,
}

/// The same settings as read from a TOML file (kebab-case keys).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileSettings {
    listen: Option<String>,
    advertised_listener: Option<String>,
    data_dir: Option<PathBuf>,
    node_id: Option<i32>,
    auto_create_topics: Option<bool>,
    num_partitions: Option<i32>,
    log_level: Option<String>,
    shards: Option<usize>,
    fsync: Option<String>,
    retention_check_interval_ms: Option<u64>,
    log_cleaner_backoff_ms: Option<u64>,
    group_initial_rebalance_delay_ms: Option<u64>,
    offsets_retention_minutes: Option<u64>,
    voters: Option<String>,
    raft_listen: Option<String>,
    rack: Option<String>,
    broker_session_timeout_ms: Option<u64>,
    replica_lag_time_max_ms: Option<u64>,
    default_replication_factor: Option<i16>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Host and port advertised in Metadata; port 0 means "the bound port".
    pub advertised_host: String,
    pub advertised_port: u16,
    pub data_dir: PathBuf,
    pub node_id: i32,
    pub auto_create_topics: bool,
    pub num_partitions: i32,
    pub log_level: String,
    pub shards: usize,
    pub fsync: FsyncPolicy,
    pub retention_check_interval: std::time::Duration,
    pub log_cleaner_backoff: std::time::Duration,
    pub groups: GroupConfig,
    pub max_request_bytes: usize,
    /// Raft voters by node id; just this node (with no address) when alone.
    pub voters: sluice_raft::Voters,
    /// Where raft peers connect; `None` for a one-node cluster.
    pub raft_listen: Option<SocketAddr>,
    pub rack: Option<String>,
    pub broker_session_timeout: Duration,
    pub replica_lag_time_max: Duration,
    pub default_replication_factor: i16,
}

/// The group coordinator's settings, under Kafka's names.
#[derive(Debug, Clone, Copy)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of
    /// an empty group waits for more members.
    pub initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// `offsets.retention.minutes`, in ms.
    pub offsets_retention_ms: i64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            initial_rebalance_delay: Duration::from_millis(3000),
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

/// Partitions one CreateTopics or CreatePartitions request may create: like
/// KRaft's cap on records per user operation, it keeps one request from
/// creating millions of directories. It also bounds `--num-partitions`, so
/// the default is always a count one request can create.
pub const MAX_PARTITIONS_PER_REQUEST: i32 = 10_000;

/// More shards than this is a typo, not a machine.
const MAX_SHARDS: usize = 1024;

impl Config {
    pub fn resolve(args: ServeArgs) -> Result<Self, String> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let listen_s = args.listen.or(file.listen).unwrap_or_else(|| "127.0.0.1:9092".into());
        let listen: SocketAddr = listen_s
            .parse()
            .map_err(|_| format!("invalid listen address '{listen_s}': expected HOST:PORT with a numeric IP"))?;
        let advertised = args.advertised_listener.or(file.advertised_listener);
        let (advertised_host, advertised_port) = match advertised {
            Some(a) => {
                split_host_port(&a).ok_or_else(|| format!("invalid advertised-listener '{a}': expected HOST:PORT"))?
            }
            None => (listen.ip().to_string(), listen.port()),
        };
        let node_id = args.node_id.or(file.node_id).unwrap_or(0);
        if node_id < 0 {
            return Err(format!("invalid node-id {node_id}: must be 0 or greater"));
        }
        let num_partitions = args.num_partitions.or(file.num_partitions).unwrap_or(1);
        let max = MAX_PARTITIONS_PER_REQUEST;
        if !(1..=max).contains(&num_partitions) {
            return Err(format!("invalid num-partitions {num_partitions}: must be between 1 and {max}"));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let shards = args.shards.or(file.shards).unwrap_or(cores);
        if !(1..=MAX_SHARDS).contains(&shards) {
            return Err(format!("invalid shards {shards}: must be between 1 and {MAX_SHARDS}"));
        }
        let fsync = match args.fsync.or(file.fsync).as_deref() {
            None | Some("batch") => FsyncPolicy::Batch,
            Some("always") => FsyncPolicy::Always,
            Some("never") => FsyncPolicy::Never,
            Some(other) => return Err(format!("invalid fsync '{other}': expected never, batch or always")),
        };
        let retention_check_interval_ms =
            args.retention_check_interval_ms.or(file.retention_check_interval_ms).unwrap_or(300_000);
        if retention_check_interval_ms == 0 {
            return Err("invalid retention-check-interval-ms 0: must be 1 or greater".into());
        }
        let log_cleaner_backoff_ms = args.log_cleaner_backoff_ms.or(file.log_cleaner_backoff_ms).unwrap_or(15_000);
        if log_cleaner_backoff_ms == 0 {
            return Err("invalid log-cleaner-backoff-ms 0: must be 1 or greater".into());
        }
        let (voters, raft_listen) = match args.voters.or(file.voters) {
            None => (sluice_raft::Voters::from([(node_id as u64, String::new())]), None),
            Some(list) => {
                let voters = parse_voters(&list)?;
                let own = voters.get(&(node_id as u64)).cloned();
                let Some(listen) = args.raft_listen.or(file.raft_listen).or(own) else {
                    return Err(format!(
                        "invalid voters '{list}': node-id {node_id} is not among them \
                         (a node joining a cluster needs --raft-listen)"
                    ));
                };
                let addr = std::net::ToSocketAddrs::to_socket_addrs(&listen)
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| format!("invalid raft-listen address '{listen}': expected HOST:PORT"))?;
                (voters, Some(addr))
            }
        };
        let positive_ms = |name: &str, value: Option<u64>, default: u64| match value.unwrap_or(default) {
            0 => Err(format!("invalid {name} 0: must be 1 or greater")),
            ms => Ok(Duration::from_millis(ms)),
        };
        let broker_session_timeout = positive_ms(
            "broker-session-timeout-ms",
            args.broker_session_timeout_ms.or(file.broker_session_timeout_ms),
            9000,
        )?;
        let replica_lag_time_max = positive_ms(
            "replica-lag-time-max-ms",
            args.replica_lag_time_max_ms.or(file.replica_lag_time_max_ms),
            30_000,
        )?;
        let default_replication_factor =
            args.default_replication_factor.or(file.default_replication_factor).unwrap_or(1);
        if default_replication_factor < 1 {
            return Err(format!(
                "invalid default-replication-factor {default_replication_factor}: must be 1 or greater"
            ));
        }
        let log_level = args.log_level.or(file.log_level).unwrap_or_else(|| "info".into());
        tracing_subscriber::EnvFilter::try_new(&log_level)
            .map_err(|e| format!("invalid log-level '{log_level}': {e}"))?;
        Ok(Self {
            listen,
            advertised_host,
            advertised_port,
            data_dir: args.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("data")),
            node_id,
            auto_create_topics: args.auto_create_topics.or(file.auto_create_topics).unwrap_or(true),
            num_partitions,
            log_level,
            shards,
            fsync,
            retention_check_interval: std::time::Duration::from_millis(retention_check_interval_ms),
            log_cleaner_backoff: std::time::Duration::from_millis(log_cleaner_backoff_ms),
            groups: GroupConfig {
                initial_rebalance_delay: std::time::Duration::from_millis(
                    args.group_initial_rebalance_delay_ms.or(file.group_initial_rebalance_delay_ms).unwrap_or(3000),
                ),
                offsets_retention_ms: i64::try_from(
                    args.offsets_retention_minutes.or(file.offsets_retention_minutes).unwrap_or(10_080),
                )
                .unwrap_or(i64::MAX)
                .saturating_mul(60_000),
                ..Default::default()
            },
            max_request_bytes: sluice_protocol::frame::DEFAULT_MAX_REQUEST_BYTES,
            voters,
            raft_listen,
            rack: args.rack.or(file.rack),
            broker_session_timeout,
            replica_lag_time_max,
            default_replication_factor,
        })
    }
}

fn read_file(path: &Path) -> Result<FileSettings, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        let msg = e.message().replace('\n', " ");
        // Name the offending line: the message alone may not say which key.
        let at = e.span().map(|span| {
            let line_no = text[..span.start].matches('\n').count() + 1;
            let line = text.lines().nth(line_no - 1).unwrap_or_default().trim();
            format!(" at line {line_no} `{line}`")
        });
        format!("invalid config file {}{}: {msg}", path.display(), at.unwrap_or_default())
    })
}

/// "1@host:9093,2@host:9094" into voter id -> raft address.
fn parse_voters(list: &str) -> Result<sluice_raft::Voters, String> {
    let mut voters = sluice_raft::Voters::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || format!("invalid voters entry '{entry}': expected ID@HOST:PORT");
        let (id, addr) = entry.split_once('@').ok_or_else(bad)?;
        let id: u64 = id.parse().map_err(|_| bad())?;
        split_host_port(addr).ok_or_else(bad)?;
        if voters.insert(id, addr.to_string()).is_some() {
            return Err(format!("invalid voters '{list}': node {id} is listed twice"));
        }
    }
    if voters.is_empty() {
        return Err("invalid voters '': expected ID@HOST:PORT,...".into());
    }
    Ok(voters)
}

fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_local_one_node_broker() {
        let c = Config::resolve(ServeArgs::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9092");
        assert_eq!((c.advertised_host.as_str(), c.advertised_port), ("127.0.0.1", 9092));
        assert_eq!(c.data_dir, PathBuf::from("data"));
        assert!(c.auto_create_topics);
        assert_eq!(c.num_partitions, 1);
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, "num-partitions = 4\nnode-id = 7\nlisten = \"127.0.0.1:9500\"\n").unwrap();
        let args = ServeArgs { config: Some(path), num_partitions: Some(2), ..Default::default() };
        let c = Config::resolve(args).unwrap();
        assert_eq!((c.num_partitions, c.node_id, c.listen.port()), (2, 7, 9500));
    }

    #[test]
    fn voters_name_every_node_and_this_one() {
        let args = |voters: &str, node: i32| ServeArgs {
            voters: Some(voters.into()),
            node_id: Some(node),
            ..Default::default()
        };
        let c = Config::resolve(args("1@127.0.0.1:19092, 2@127.0.0.1:19093", 2)).unwrap();
        assert_eq!(c.voters.len(), 2);
        assert_eq!(c.raft_listen.unwrap().to_string(), "127.0.0.1:19093");
        let e = Config::resolve(args("1@127.0.0.1:19092", 2)).unwrap_err();
        assert!(e.contains("node-id 2 is not among them") && e.contains("--raft-listen"), "{e}");
        let joining = ServeArgs { raft_listen: Some("127.0.0.1:19094".into()), ..args("1@127.0.0.1:19092", 2) };
        assert_eq!(Config::resolve(joining).unwrap().raft_listen.unwrap().port(), 19094, "a joining node");
        let e = Config::resolve(args("1@127.0.0.1:19092,1@127.0.0.1:19093", 1)).unwrap_err();
        assert!(e.contains("listed twice"), "{e}");
        let e = Config::resolve(args("one@127.0.0.1:19092", 1)).unwrap_err();
        assert!(e.contains("ID@HOST:PORT"), "{e}");
        assert!(Config::resolve(ServeArgs::default()).unwrap().raft_listen.is_none(), "one node needs no raft network");
    }

    #[test]
    fn bad_values_name_the_setting_in_one_line() {
        let bad = |args: ServeArgs| Config::resolve(args).unwrap_err();
        let e = bad(ServeArgs { listen: Some("nowhere".into()), ..Default::default() });
        assert!(e.contains("listen") && !e.contains('\n'), "{e}");
        let e = bad(ServeArgs { num_partitions: Some(0), ..Default::default() });
        assert!(e.contains("num-partitions"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "num-partitons = 4\n").unwrap();
        let e = bad(ServeArgs { config: Some(path), ..Default::default() });
        assert!(e.contains("num-partitons") && !e.contains('\n'), "{e}");
    }
}
