//! `sluice group ...`: list, describe (members, committed offsets, lag),
//! delete, and seek (reset an inactive group's committed offsets).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::admin::{check, Admin};
use super::table::table;

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List consumer groups on every broker.
    List,
    /// Show a group's state, members, and committed offsets with lag.
    Describe { group: String },
    /// Delete groups (they must have no members).
    Delete {
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Set an inactive group's committed offsets for a topic.
    Seek {
        group: String,
        /// The topic whose partitions to move.
        #[arg(long)]
        topic: String,
        /// start, end, or an offset.
        #[arg(long)]
        to: String,
    },
}

pub async fn run(admin: &mut Admin, cmd: GroupCommand) -> Result<()> {
    match cmd {
        GroupCommand::List => list(admin).await,
        GroupCommand::Describe { group } => describe(admin, &group).await,
        GroupCommand::Delete { groups } => delete(admin, groups).await,
        GroupCommand::Seek { group, topic, to } => seek(admin, &group, &topic, &to).await,
    }
}

fn group_id(g: &str) -> GroupId {
    GroupId(StrBytes::from_string(g.to_string()))
}

async fn list(admin: &mut Admin) -> Result<()> {
    let meta = admin.metadata(Some(&[])).await?;
    let mut rows = Vec::new();
    for b in &meta.brokers {
        let addr = format!("{}:{}", b.host.as_str(), b.port);
        let (resp, _) = admin.call(&addr, "ListGroups", 4, |_| ListGroupsRequest::default()).await?;
        check(resp.error_code, None, format!("cannot list groups on {addr}"))?;
        for g in resp.groups {
            rows.push(vec![
                g.group_id.to_string(),
                b.node_id.0.to_string(),
                g.group_state.to_string(),
                g.protocol_type.to_string(),
            ]);
        }
    }
    rows.sort();
    table(&["GROUP", "COORDINATOR", "STATE", "PROTOCOL-TYPE"], rows);
    Ok(())
}

/// Committed offsets of `group`: (topic, partition) → offset.
async fn committed(admin: &mut Admin, coordinator: &str, group: &str) -> Result<BTreeMap<(String, i32), i64>> {
    let (resp, _) = admin
        .call(coordinator, "OffsetFetch", 7, |_| {
            OffsetFetchRequest::default().with_group_id(group_id(group)).with_topics(None)
        })
        .await?;
    check(resp.error_code, None, format!("cannot fetch offsets of group '{group}'"))?;
    let mut out = BTreeMap::new();
    for t in &resp.topics {
        for p in &t.partitions {
            check(p.error_code, None, format!("offset of {}-{}", t.name.as_str(), p.partition_index))?;
            if p.committed_offset >= 0 {
                out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(out)
}

/// The latest (-1) or earliest (-2) offset of every partition of `topic`.
async fn topic_offsets(admin: &mut Admin, topic: &str, timestamp: i64) -> Result<BTreeMap<i32, i64>> {
    let meta = admin.metadata(Some(&[topic.to_string()])).await?;
    let t = meta.topics.first().context("empty metadata")?;
    check(t.error_code, None, format!("topic '{topic}'"))?;
    super::topic::offsets(admin, topic, &meta, timestamp).await
}

async fn describe(admin: &mut Admin, group: &str) -> Result<()> {
    let coordinator = admin.coordinator(group).await?;
    let (resp, _) = admin
        .call(&coordinator, "DescribeGroups", 5, |_| {
            DescribeGroupsRequest::default().with_groups(vec![group_id(group)])
        })
        .await?;
    let g = resp.groups.first().context("empty DescribeGroups response")?;
    check(g.error_code, g.error_message.as_ref(), format!("cannot describe group '{group}'"))?;
    if g.group_state.as_str() == "Dead" {
        bail!("group '{group}' does not exist");
    }
    println!("GROUP        {group}");
    println!("COORDINATOR  {coordinator}");
    println!("STATE        {}", g.group_state.as_str());
    println!("PROTOCOL     {}", g.protocol_data.as_str());
    println!("MEMBERS      {}", g.members.len());
    if !g.members.is_empty() {
        println!();
        let rows = g
            .members
            .iter()
            .map(|m| vec![m.member_id.to_string(), m.client_id.to_string(), m.client_host.to_string()])
            .collect();
        table(&["MEMBER-ID", "CLIENT-ID", "HOST"], rows);
    }
    let offsets = committed(admin, &coordinator, group).await?;
    if offsets.is_empty() {
        return Ok(());
    }
    let mut ends: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
    for (topic, _) in offsets.keys() {
        if !ends.contains_key(topic) {
            let end = topic_offsets(admin, topic, -1).await?;
            ends.insert(topic.clone(), end);
        }
    }
    let rows = offsets
        .iter()
        .map(|((topic, p), offset)| {
            let end = ends.get(topic).and_then(|e| e.get(p)).copied();
            vec![
                topic.clone(),
                p.to_string(),
                offset.to_string(),
                end.map_or("-".into(), |e| e.to_string()),
                end.map_or("-".into(), |e| (e - offset).max(0).to_string()),
            ]
        })
        .collect();
    println!();
    table(&["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"], rows);
    Ok(())
}

async fn delete(admin: &mut Admin, groups: Vec<String>) -> Result<()> {
    for group in groups {
        let coordinator = admin.coordinator(&group).await?;
        let (resp, _) = admin
            .call(&coordinator, "DeleteGroups", 2, |_| {
                DeleteGroupsRequest::default().with_groups_names(vec![group_id(&group)])
            })
            .await?;
        for r in &resp.results {
            check(r.error_code, None, format!("cannot delete group '{group}'"))?;
        }
        println!("deleted {group}");
    }
    Ok(())
}

async fn seek(admin: &mut Admin, group: &str, topic: &str, to: &str) -> Result<()> {
    let targets: BTreeMap<i32, i64> = match to {
        "start" => topic_offsets(admin, topic, -2).await?,
        "end" => topic_offsets(admin, topic, -1).await?,
        n => {
            let offset = n.parse::<i64>().with_context(|| format!("--to '{n}' is not start, end or a number"))?;
            if offset < 0 {
                bail!("--to {offset}: offsets are 0 or more");
            }
            topic_offsets(admin, topic, -1).await?.into_keys().map(|p| (p, offset)).collect()
        }
    };
    let coordinator = admin.coordinator(group).await?;
    // Generation -1 and no member id: a commit for an inactive group, as
    // Kafka's offset-reset tooling sends; an active group refuses it.
    let (resp, _) = admin
        .call(&coordinator, "OffsetCommit", 8, |_| {
            let partitions = targets
                .iter()
                .map(|(&p, &o)| {
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(o)
                        .with_committed_leader_epoch(-1)
                })
                .collect();
            OffsetCommitRequest::default()
                .with_group_id(group_id(group))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(partitions)])
        })
        .await?;
    for t in &resp.topics {
        for p in &t.partitions {
            check(p.error_code, None, format!("cannot move group '{group}' on {topic}-{}", p.partition_index))?;
        }
    }
    for (p, o) in &targets {
        println!("{group} {topic}-{p} -> {o}");
    }
    Ok(())
}
