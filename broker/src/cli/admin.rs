//! The CLI's Kafka client: bootstraps from a broker list, negotiates each
//! request's version with the broker's ApiVersions (so it works against
//! any Kafka broker), keeps one connection per broker, and finds partition
//! leaders, the controller and group coordinators from Metadata and
//! FindCoordinator.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiVersionsRequest, FindCoordinatorRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::ResponseError;

use crate::kafka_client::KafkaConnection;

const TIMEOUT: Duration = Duration::from_secs(15);
const CLIENT_ID: &str = "sluice-cli";

struct Broker {
    conn: KafkaConnection,
    /// API key → (min, max) version the broker serves.
    versions: HashMap<i16, (i16, i16)>,
}

pub struct Admin {
    bootstrap: String,
    brokers: HashMap<String, Broker>,
    /// Node id → host:port, from the last Metadata.
    nodes: HashMap<i32, String>,
    controller: Option<i32>,
}

/// Turns a Kafka error code into an error naming it, or `Ok` for none.
pub fn check(code: i16, message: Option<&StrBytes>, what: impl std::fmt::Display) -> Result<()> {
    if code == 0 {
        return Ok(());
    }
    let name = ResponseError::try_from_code(code).map_or_else(|| format!("error {code}"), |e| format!("{e:?}"));
    match message.map(|m| m.as_str()).filter(|m| !m.is_empty()) {
        Some(m) => bail!("{what}: {name}: {m}"),
        None => bail!("{what}: {name}"),
    }
}

impl Admin {
    /// Connects to the first reachable broker of `bootstrap` (host:port,...).
    pub async fn connect(bootstrap: &str) -> Result<Self> {
        let mut admin =
            Self { bootstrap: String::new(), brokers: HashMap::new(), nodes: HashMap::new(), controller: None };
        let mut failure = anyhow!("no broker address given");
        for addr in bootstrap.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match admin.open(addr).await {
                Ok(()) => {
                    admin.bootstrap = addr.to_string();
                    admin.metadata(Some(&[])).await?;
                    return Ok(admin);
                }
                Err(e) => failure = e,
            }
        }
        Err(failure.context(format!("cannot reach any broker in '{bootstrap}'")))
    }

    async fn open(&mut self, addr: &str) -> Result<()> {
        if self.brokers.contains_key(addr) {
            return Ok(());
        }
        // The connection's errors name the address and cause in one line.
        let one_line = |e: crate::kafka_client::ClientError| anyhow!("{e}");
        let mut conn = KafkaConnection::connect(addr, CLIENT_ID.to_string(), TIMEOUT).await.map_err(one_line)?;
        // v0: every Kafka broker answers it.
        let resp = conn.call("ApiVersions", &ApiVersionsRequest::default(), 0, TIMEOUT).await.map_err(one_line)?;
        check(resp.error_code, None, format!("{addr} ApiVersions"))?;
        let versions = resp.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        self.brokers.insert(addr.to_string(), Broker { conn, versions });
        Ok(())
    }

    /// Sends the request `build(version)` to `addr` at the highest version
    /// both sides serve, at most `max` (what this client was written for).
    pub async fn call<R: Request>(
        &mut self,
        addr: &str,
        what: &'static str,
        max: i16,
        build: impl FnOnce(i16) -> R,
    ) -> Result<(R::Response, i16)> {
        self.open(addr).await?;
        let broker = self.brokers.get_mut(addr).ok_or_else(|| anyhow!("{addr}: not connected"))?;
        let Some(&(min, broker_max)) = broker.versions.get(&R::KEY) else {
            bail!("{addr} does not serve {what}");
        };
        let version = broker_max.min(max).min(R::VERSIONS.max);
        if version < min.max(R::VERSIONS.min) {
            bail!("{addr} serves {what} v{min}-v{broker_max}, which this client does not speak");
        }
        let resp =
            broker.conn.call(what, &build(version), version, TIMEOUT).await.map_err(|e| anyhow!("{what}: {e}"))?;
        Ok((resp, version))
    }

    /// The broker first reached.
    pub fn any(&self) -> String {
        self.bootstrap.clone()
    }

    /// The controller if known (Kafka sends admin changes there), else any broker.
    pub fn controller(&self) -> String {
        self.controller.and_then(|c| self.nodes.get(&c).cloned()).unwrap_or_else(|| self.any())
    }

    pub fn node(&self, id: i32) -> Result<String> {
        self.nodes.get(&id).cloned().ok_or_else(|| anyhow!("broker {id} is not in the cluster's metadata"))
    }

    /// Metadata for `topics` (`None`: every topic), refreshing the broker list.
    pub async fn metadata(&mut self, topics: Option<&[String]>) -> Result<MetadataResponse> {
        let addr = self.any();
        let (resp, _) = self
            .call(&addr, "Metadata", 12, |v| {
                let topics = match topics {
                    // v0 has no null: an empty list means every topic.
                    None if v == 0 => Some(Vec::new()),
                    None => None,
                    Some(names) => Some(
                        names
                            .iter()
                            .map(|n| {
                                MetadataRequestTopic::default()
                                    .with_name(Some(TopicName(StrBytes::from_string(n.clone()))))
                            })
                            .collect(),
                    ),
                };
                MetadataRequest::default().with_topics(topics).with_allow_auto_topic_creation(false)
            })
            .await?;
        self.nodes = resp.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port))).collect();
        self.controller = (resp.controller_id.0 >= 0).then_some(resp.controller_id.0);
        Ok(resp)
    }

    /// The address of `group`'s coordinator.
    pub async fn coordinator(&mut self, group: &str) -> Result<String> {
        let addr = self.any();
        let (resp, _) = self
            .call(&addr, "FindCoordinator", 3, |_| {
                FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string()))
            })
            .await?;
        check(resp.error_code, resp.error_message.as_ref(), format!("cannot find the coordinator of group '{group}'"))?;
        Ok(format!("{}:{}", resp.host.as_str(), resp.port))
    }
}
