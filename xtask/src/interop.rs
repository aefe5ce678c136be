//! `cargo xtask interop`: a thin forward to the `dht-interop` binary, which starts our
//! nodes and nodes of the other Mainline implementations on loopback and prints the
//! matrix of who stored and who found what.
//!
//! The runner is its own crate because it links the `mainline` crate (its peer) and
//! dht-node; xtask stays free of both so that it builds in seconds.

use std::process::{Command, ExitCode};

pub const USAGE: &str = "\
cargo xtask interop: our nodes, the mainline crate, libtorrent and bittorrent-dht in one
loopback network; every implementation puts, gets, announces and looks up peers, and every
other one checks the result

USAGE:
    cargo xtask interop [--json] [--install] [--nodes N] [--only IMPL,...]
    cargo xtask interop ipfs [--json] [--install] [--nodes N] [--only IMPL,...]

`ipfs` runs the IPFS matrix instead: ours, rust-libp2p and js-libp2p (npm) on libp2p's
Kademlia, every pair in every role (closest peers, /pk records, providers).

Runs `cargo run -p dht-interop -- ARGS`; `cargo xtask interop --help` after a build shows
the runner's own options. Exit status: 0 every cell passed, 1 a cell failed, 2 an
implementation is missing (run with --install to install it through apt and npm).";

/// Runs the interop runner with `args`, passing its exit status through (2 means an
/// implementation is missing, which callers tell apart from a failed cell).
pub fn run(args: &[String]) -> ExitCode {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .args(["run", "--quiet", "-p", "dht-interop", "--"])
        .args(args)
        .status();
    match status {
        Ok(s) => match s.code() {
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            None => ExitCode::FAILURE,
        },
        Err(e) => {
            eprintln!("error: cannot run cargo for dht-interop: {e}");
            ExitCode::FAILURE
        }
    }
}
