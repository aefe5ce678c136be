//! `dht-node`: run a BitTorrent Mainline DHT node (or a Chord or, with `--overlay
//! ipfs`, an IPFS Kademlia node), or do one DHT operation and exit.
//!
//! This file sets up logging and the async runtime and picks the command line's parser
//! (`--overlay ipfs` has its own); everything else is in [`cli`].

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = match cli::config::expand(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(f) => {
            eprintln!("error: {}", f.message);
            return ExitCode::from(f.status);
        }
    };
    if cli::ipfs_requested(&args) {
        return run_ipfs(args);
    }
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        // clap prints help/version to stdout (status 0) and errors to stderr (status 2).
        Err(e) => e.exit(),
    };
    init_logs(cli.command.is_some(), cli.log_format);
    block_on(cli::run(cli))
}

/// `--overlay ipfs`: its own parser, the same logs and runtime.
#[cfg(feature = "ipfs")]
fn run_ipfs(args: Vec<std::ffi::OsString>) -> ExitCode {
    let cli = match cli::ipfs::IpfsCli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    init_logs(cli.command.is_some(), cli.log_format);
    block_on(cli::ipfs::run(cli))
}

#[cfg(not(feature = "ipfs"))]
fn run_ipfs(_: Vec<std::ffi::OsString>) -> ExitCode {
    eprintln!("error: {}", cli::NO_IPFS);
    ExitCode::from(cli::EXIT_USAGE)
}

/// Logs on stderr: `info` for a node, `warn` for a one-shot, unless RUST_LOG says.
fn init_logs(one_shot: bool, format: cli::LogFormat) {
    let default_level = if one_shot { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        cli::LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        cli::LogFormat::Json => logs.json().init(),
    }
}

/// Runs `work` on a current-thread runtime; its failure is one line on stderr.
fn block_on(work: impl std::future::Future<Output = Result<(), cli::Fail>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(cli::EXIT_FAILURE);
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.status)
        }
    }
}
