//! The `sluice` command line: `serve` and the admin subcommands.

use clap::{Parser, Subcommand};

use super::{ClusterCommand, GroupCommand, Target, TopicCommand};
use crate::config::ServeArgs;

#[derive(Debug, Parser)]
#[command(name = "sluice", version, about = "A Kafka-compatible streaming broker")]
pub struct Cli {
    #[command(subcommand)]
    pub command: CliCommand,
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Run a broker (one node, 127.0.0.1:9092, data under ./data by default).
    Serve(Box<ServeArgs>),
    /// Create, list, describe, alter, grow, delete, produce to and consume topics.
    Topic {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: TopicCommand,
    },
    /// List, describe, delete consumer groups and move their offsets.
    Group {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: GroupCommand,
    },
    /// Describe the cluster.
    Cluster {
        #[command(flatten)]
        target: Target,
        #[command(subcommand)]
        command: ClusterCommand,
    },
}
