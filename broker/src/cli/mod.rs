//! `sluice topic|group|cluster ...`: the admin CLI, in the spirit of rpk.
//! It speaks the Kafka protocol (versions negotiated per broker), so it
//! works against any Kafka cluster too. A failure is one line on stderr and
//! exit code 1.

mod admin;
pub mod args;
mod cluster;
mod group;
mod table;
mod topic;

use std::process::ExitCode;

use clap::Args;

pub use cluster::ClusterCommand;
pub use group::GroupCommand;
pub use topic::TopicCommand;

/// Where the CLI connects.
#[derive(Debug, Args)]
pub struct Target {
    /// Brokers to bootstrap from, HOST:PORT,...
    #[arg(long, short = 'b', env = "SLUICE_BROKERS", default_value = "127.0.0.1:9092", global = true)]
    pub brokers: String,
}

#[derive(Debug)]
pub enum AdminCommand {
    Topic(TopicCommand),
    Group(GroupCommand),
    Cluster(ClusterCommand),
}

/// Runs one admin command on a small runtime of its own.
pub fn run(target: Target, cmd: AdminCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sluice: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let done = runtime.block_on(async {
        let mut admin = admin::Admin::connect(&target.brokers).await?;
        match cmd {
            AdminCommand::Topic(c) => topic::run(&mut admin, c).await,
            AdminCommand::Group(c) => group::run(&mut admin, c).await,
            AdminCommand::Cluster(c) => cluster::run(&mut admin, c).await,
        }
    });
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::FAILURE
        }
    }
}
