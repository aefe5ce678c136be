//! Node mode (`dht-node` without a subcommand): open the store, bind, join (retrying
//! until some node answers, or rejoining through the saved table), log a status
//! line periodically, and stop cleanly on SIGINT or SIGTERM.

use std::time::Duration;

use dht_node::Backoff;

use super::backend::{bind_node, builder, node_key, open_store, Net};
use super::output::{write_addr_file, write_file_atomically};
use super::{Cli, Fail};

pub(crate) async fn run_node(cli: &Cli) -> Result<(), Fail> {
    // Read before anything is opened or bound: a bad token file fails the start
    // while the ports and the data dir are still free.
    let token = http_token(cli)?;
    // The store first: it creates and claims the data dir, where the key then goes.
    let opened = open_store(cli, builder(cli))?;
    #[cfg(feature = "sled")]
    let write_log = opened
        .write_health
        .clone()
        .map(|h| tokio::spawn(log_write_failures(h)));
    let net = Net::new(cli, node_key(cli)?);
    let dht = bind_node(cli, &net, opened.store, opened.builder)?;
    let addrs: Vec<String> = dht.local_addrs().iter().map(|a| a.to_string()).collect();
    // A stable line for scripts and tests, whatever RUST_LOG says.
    eprintln!(
        "dht-node listening id={} addrs={}",
        dht.id(),
        addrs.join(",")
    );
    if let Some(path) = &cli.addr_file {
        write_addr_file(path, dht.local_addrs())?;
    }
    tracing::info!(id = %dht.id(), addrs = %addrs.join(","), read_only = cli.read_only, "node running");
    let http = match cli.http {
        Some(addr) => {
            let options = super::http::HttpOptions {
                addr,
                token,
                watch_poll: Duration::from_secs(cli.watch_poll),
                pools: super::permits::PoolSizes {
                    reads: cli.http_max_ops as usize,
                    reads_per_client: cli.http_max_reads_per_client as usize,
                    writes: cli.http_max_writes as usize,
                    watch_lookups: cli.http_max_watch_lookups as usize,
                },
                conns: super::conn::ConnLimits::of(cli),
                deadline: Duration::from_millis(cli.http_deadline_ms),
                max_republished: cli.http_max_republished as usize,
            };
            let (bound, task) = super::http::serve(dht.clone(), options).await?;
            // A stable line for scripts and tests, like the one above.
            eprintln!("dht-node http={bound}");
            Some(task)
        }
        None => None,
    };

    if !cli.no_bootstrap {
        let dht = dht.clone();
        let names = cli.bootstrap_names();
        tokio::spawn(async move {
            // Backs off up to five minutes: a node started before its network (or
            // offline for a while) joins once it can.
            if let Ok(a) = dht.bootstrap_until_joined(&names, Backoff::default()).await {
                tracing::info!(nodes = a.value.len(), "bootstrapped");
            }
        });
    } else if opened.saved_contacts > 0 {
        // The saved table is the node's own bootstrap list: rejoin through it now
        // rather than at the next housekeeping tick.
        let dht = dht.clone();
        let saved = opened.saved_contacts;
        tokio::spawn(async move {
            match dht.bootstrap(&[]).await {
                Ok(a) => tracing::info!(saved, nodes = a.value.len(), "rejoined"),
                Err(e) => tracing::warn!(saved, error = %e, "no saved contact answered"),
            }
        });
    }
    let status = {
        let dht = dht.clone();
        let every = Duration::from_millis(cli.status_interval_ms);
        let routing_file = cli.routing_file.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Ok(info) = dht.routing_table().await else {
                    break;
                };
                // What the store holds, beside the memory a testnet samples: a soak tells
                // growth that follows the stored data from growth beyond it (a leak).
                let stored = dht.metrics().await.ok().and_then(|m| m.store);
                let (items, info_hashes, peers) = stored.map_or((-1, -1, -1), |c| {
                    (c.items as i64, c.info_hashes as i64, c.peers as i64)
                });
                tracing::info!(
                    ipv4_nodes = info.nodes_v4,
                    ipv6_nodes = info.nodes_v6,
                    republishing = info.republishing,
                    datagrams_in = info.stats.datagrams_in,
                    datagrams_out = info.stats.datagrams_out,
                    key_id_mismatch = info.stats.key_id_mismatch,
                    items,
                    info_hashes,
                    peers,
                    "status"
                );
                if let Some(path) = &routing_file {
                    let text: String = info
                        .nodes
                        .iter()
                        .map(|n| format!("{} {}\n", n.id, n.addr))
                        .collect();
                    if let Err(f) = write_file_atomically(path, &text) {
                        tracing::warn!("{}", f.message);
                    }
                }
            }
        })
    };
    wait_for_signal().await;
    tracing::info!("shutting down");
    status.abort();
    #[cfg(feature = "sled")]
    if let Some(task) = write_log {
        task.abort();
    }
    if let Some(http) = http {
        http.abort();
    }
    dht.shutdown().await?;
    Ok(())
}

/// Logs the sled store's write failures (a full disk, most likely): when they start,
/// at most once a minute while they last, and once when they clear; never once per
/// refused put, which a flood of puts would turn into a flood of lines.
#[cfg(feature = "sled")]
async fn log_write_failures(health: dht_store_sled::WriteHealth) {
    use dht_store_sled::{FailureLog, Report};
    let mut log = FailureLog::new(health);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        match log.poll(std::time::Instant::now()) {
            Some(Report::Failing { why, refused }) => tracing::error!(
                error = %why,
                refused,
                "the store cannot write (is the disk full?): puts and announces are refused \
                 with 202 until a write succeeds again"
            ),
            Some(Report::Recovered { refused }) => {
                tracing::warn!(
                    refused,
                    "the store writes again: puts and announces are accepted"
                )
            }
            None => {}
        }
    }
}

/// The bearer token of --http-token-file: its first line, read with a size bound.
fn http_token(cli: &Cli) -> Result<Option<String>, Fail> {
    read_http_token(cli.http_token_file.as_deref())
}

/// The token in `path`, if given (`--overlay ipfs` reads its own flag with it).
pub(crate) fn read_http_token(path: Option<&std::path::Path>) -> Result<Option<String>, Fail> {
    let Some(path) = path else {
        return Ok(None);
    };
    let bytes = super::config::read_regular_file(path, 4096)
        .map_err(|e| Fail::other(format!("cannot read {}: {e}", path.display())))?;
    let token = String::from_utf8_lossy(&bytes)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    if token.is_empty() {
        return Err(Fail::usage(format!(
            "{}: the token file is empty",
            path.display()
        )));
    }
    Ok(Some(token))
}

#[cfg(unix)]
pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the node");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
pub(crate) async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
