//! `sluice cluster info`: the cluster id, the controller and the brokers;
//! `sluice cluster add-voter / remove-voter`: the metadata quorum's
//! membership, through Kafka's AddRaftVoter / RemoveRaftVoter (KIP-853).

use anyhow::Result;
use clap::Subcommand;
use kafka_protocol::messages::add_raft_voter_request::Listener;
use kafka_protocol::messages::{AddRaftVoterRequest, RemoveRaftVoterRequest};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::admin::{check, Admin};
use super::table::table;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Show the cluster id, the controller and every broker.
    Info,
    /// Make a running node a voter of the metadata quorum: the controller
    /// catches it up, then adds it by a joint-consensus change. The node
    /// must have been started as a joining node (not among its --voters).
    AddVoter {
        /// The node's id (its --node-id).
        #[arg(long)]
        node: i32,
        /// The node's raft address (its --raft-listen), HOST:PORT.
        #[arg(long)]
        address: String,
        /// The storage id the node must have [default: the one it reports].
        #[arg(long)]
        storage_id: Option<Uuid>,
        /// How long the node may take to catch up with the metadata log.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: i32,
    },
    /// Remove a voter from the metadata quorum (a dead or wiped node, or
    /// one being retired). The remaining voters must have a majority up.
    RemoveVoter {
        #[arg(long)]
        node: i32,
        /// Only if the voter has this storage id.
        #[arg(long)]
        storage_id: Option<Uuid>,
    },
}

pub async fn run(admin: &mut Admin, cmd: ClusterCommand) -> Result<()> {
    match cmd {
        ClusterCommand::Info => info(admin).await,
        ClusterCommand::AddVoter { node, address, storage_id, timeout_ms } => {
            let Some((host, port)) = address.rsplit_once(':').and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            else {
                anyhow::bail!("invalid address '{address}': expected HOST:PORT");
            };
            let listener = Listener::default()
                .with_name(StrBytes::from_static_str("RAFT"))
                .with_host(StrBytes::from_string(host.to_string()));
            let request = AddRaftVoterRequest::default()
                .with_cluster_id(None)
                .with_timeout_ms(timeout_ms)
                .with_voter_id(node)
                .with_voter_directory_id(storage_id.unwrap_or_default())
                .with_listeners(vec![listener.with_port(port)]);
            let to = admin.any();
            let (resp, _) = admin.call(&to, "AddRaftVoter", 0, |_| request).await?;
            check(resp.error_code, resp.error_message.as_ref(), format!("adding voter {node}"))?;
            println!("node {node} is a voter");
            Ok(())
        }
        ClusterCommand::RemoveVoter { node, storage_id } => {
            let request = RemoveRaftVoterRequest::default()
                .with_cluster_id(None)
                .with_voter_id(node)
                .with_voter_directory_id(storage_id.unwrap_or_default());
            let to = admin.any();
            let (resp, _) = admin.call(&to, "RemoveRaftVoter", 0, |_| request).await?;
            check(resp.error_code, resp.error_message.as_ref(), format!("removing voter {node}"))?;
            println!("node {node} is no longer a voter");
            Ok(())
        }
    }
}

async fn info(admin: &mut Admin) -> Result<()> {
    let meta = admin.metadata(None).await?;
    println!("CLUSTER     {}", meta.cluster_id.as_ref().map_or("", |c| c.as_str()));
    println!("CONTROLLER  {}", meta.controller_id.0);
    println!("TOPICS      {}", meta.topics.iter().filter(|t| !t.is_internal).count());
    println!();
    let mut rows: Vec<(i32, Vec<String>)> = meta
        .brokers
        .iter()
        .map(|b| {
            let id = b.node_id.0;
            let marker = if id == meta.controller_id.0 { "*" } else { "" };
            let rack = b.rack.as_ref().map_or("", |r| r.as_str()).to_string();
            (id, vec![format!("{id}{marker}"), b.host.to_string(), b.port.to_string(), rack])
        })
        .collect();
    rows.sort_by_key(|(id, _)| *id);
    table(&["ID", "HOST", "PORT", "RACK"], rows.into_iter().map(|(_, r)| r).collect());
    Ok(())
}
