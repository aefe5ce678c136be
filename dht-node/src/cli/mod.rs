//! The `dht-node` binary, split by concern (as rust-analyzer's `cli` is): `flags`
//! (the clap definition and `--help`), `backend` (transport and store choice, the
//! data dir, the node key, binding), `serve` (node mode), `oneshot` (one-shot
//! commands), `chord` (`--overlay chord`: its node, one-shots and HTTP), `ipfs`
//! (`--overlay ipfs`, feature `ipfs`: a command line of its own, its node, one-shots
//! and HTTP) and `output` (what goes to stdout, text or `--json`, and files).
//!
//! Every failure is a [`Fail`]: one line on stderr and an exit status that scripts
//! rely on (0 success, 1 not found, 2 usage, 3 anything else).

mod api;
mod backend;
mod chord;
pub(crate) mod config;
mod conn;
mod flags;
mod http;
#[cfg(feature = "ipfs")]
pub(crate) mod ipfs;
mod oneshot;
mod output;
mod permits;
mod republished;
mod serve;
mod state;
mod watch;

pub(crate) use flags::{Cli, LogFormat};
use flags::{Command, OverlayKind, StoreKind, TransportKind};

/// Exit status: the operation found nothing (no value, no peers).
pub(crate) const EXIT_NOT_FOUND: u8 = 1;
/// Exit status: bad usage or a bad argument.
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit status: any other failure (no node answered, I/O).
pub(crate) const EXIT_FAILURE: u8 = 3;

/// A failure with the exit status it maps to; printed as one line on stderr.
#[derive(Debug)]
pub(crate) struct Fail {
    pub(crate) status: u8,
    pub(crate) message: String,
}

impl Fail {
    pub(crate) fn usage(message: impl Into<String>) -> Fail {
        Fail {
            status: EXIT_USAGE,
            message: message.into(),
        }
    }
    pub(crate) fn other(message: impl Into<String>) -> Fail {
        Fail {
            status: EXIT_FAILURE,
            message: message.into(),
        }
    }
    pub(crate) fn not_found(message: impl Into<String>) -> Fail {
        Fail {
            status: EXIT_NOT_FOUND,
            message: message.into(),
        }
    }
}

impl From<dht_node::Error> for Fail {
    fn from(e: dht_node::Error) -> Fail {
        Fail::other(e.to_string())
    }
}

/// Whether the command line asks for `--overlay ipfs`, whose flags `ipfs::IpfsCli`
/// parses (multiaddrs where the others take `IP:PORT`): looked for before any parser
/// runs, anywhere before a `--`.
pub(crate) fn ipfs_requested(args: &[std::ffi::OsString]) -> bool {
    let mut it = args.iter().skip(1).map(|a| a.to_str().unwrap_or(""));
    while let Some(a) = it.next() {
        match a {
            "--" => return false,
            "--overlay=ipfs" => return true,
            "--overlay" if it.next() == Some("ipfs") => return true,
            _ => {}
        }
    }
    false
}

/// Why an `--overlay ipfs` command line cannot run in this build.
pub(crate) const NO_IPFS: &str = "this build has no IPFS overlay (build with --features ipfs)";

/// Runs what the command line asks: a node without a subcommand, else one command.
pub(crate) async fn run(cli: Cli) -> Result<(), Fail> {
    // Prints the file whatever this build can run.
    if let Some(Command::Config { .. }) = &cli.command {
        config::print_default();
        return Ok(());
    }
    // Any overlay's: it needs none.
    if let Some(Command::PeerId { key }) = &cli.command {
        #[cfg(feature = "ipfs")]
        return ipfs::peer_id(cli.json, key);
        #[cfg(not(feature = "ipfs"))]
        {
            let _ = key;
            return Err(Fail::usage(NO_IPFS));
        }
    }
    match cli.overlay {
        OverlayKind::Chord => return chord::run(&cli).await,
        // `main` sends such a command line to `ipfs::IpfsCli`.
        OverlayKind::Ipfs => return Err(Fail::usage(NO_IPFS)),
        OverlayKind::Mainline => {}
    }
    #[cfg(not(feature = "quic"))]
    if cli.transport == TransportKind::Quic {
        return Err(Fail::usage(
            "this build has no QUIC transport (build with --features quic)",
        ));
    }
    #[cfg(not(feature = "sled"))]
    if cli.store == StoreKind::Sled {
        return Err(Fail::usage(
            "this build has no sled store (build with --features sled)",
        ));
    }
    match &cli.command {
        None => serve::run_node(&cli).await,
        Some(Command::Config { .. }) => Ok(()),
        Some(Command::Keygen { out }) => oneshot::keygen(cli.json, out),
        Some(Command::Sign {
            value,
            key,
            salt,
            seq,
            cas,
        }) => oneshot::sign(value, key, salt.as_deref(), *seq, *cas),
        Some(cmd) => oneshot::one_shot(&cli, cmd).await,
    }
}
