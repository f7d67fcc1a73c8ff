//! `sluice cluster info`: the cluster id, the controller and the brokers.

use anyhow::Result;
use clap::Subcommand;

use super::admin::Admin;
use super::table;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Show the cluster id, the controller and every broker.
    Info,
}

pub async fn run(admin: &mut Admin, cmd: ClusterCommand) -> Result<()> {
    match cmd {
        ClusterCommand::Info => info(admin).await,
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
