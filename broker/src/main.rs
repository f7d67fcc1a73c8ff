//! `sluice`: the binary's edge. Parses flags, reports any configuration
//! error as one line with a non-zero exit, then runs the broker or an
//! admin command.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use sluice_broker::cli::args::{Cli, CliCommand};
use sluice_broker::cli::{self, AdminCommand};
use sluice_broker::config::Config;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let rendered = e.render().to_string();
            let line = rendered.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
            eprintln!("sluice: {line} (see sluice --help)");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        CliCommand::Serve(args) => serve(*args),
        CliCommand::Topic { target, command } => cli::run(target, AdminCommand::Topic(command)),
        CliCommand::Group { target, command } => cli::run(target, AdminCommand::Group(command)),
        CliCommand::Cluster { target, command } => cli::run(target, AdminCommand::Cluster(command)),
    }
}

fn serve(args: sluice_broker::config::ServeArgs) -> ExitCode {
    let config = match Config::resolve(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sluice: {e}");
            return ExitCode::from(2);
        }
    };
    // openraft narrates every election at info; keep it to warnings unless
    // the filter names it.
    let directives = if config.log_level.contains("openraft") {
        config.log_level.clone()
    } else {
        format!("{},openraft=warn", config.log_level)
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives).unwrap_or_else(|_| "info".into());
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
    match sluice_broker::server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::FAILURE
        }
    }
}
