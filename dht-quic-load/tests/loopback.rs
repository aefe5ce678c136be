//! The load loop against a real node over QUIC on loopback, in this process.
//!
//! Counts, not speeds: a test that asserted a rate would fail on a busy machine and
//! measure nothing (figures come from the binary, see the crate doc).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use dht_core::Transport;
use dht_core::{Config, IdPolicy};
use dht_net_quic::{generate_key, QuicConfig, QuicTransport};
use dht_quic_load::{run, validate, LoadConfig, LoadError, QueryKind};

/// A dht-node runtime over QuicTransport on a thread and runtime of its own (the load
/// generator builds its own runtime); runs until `stop` is set.
fn spawn_node(stop: Arc<AtomicBool>) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let cfg = QuicConfig {
                // Every load connection comes from 127.0.0.1.
                max_connections_per_ip: 64,
                ..QuicConfig::default()
            };
            let transport = QuicTransport::bind(
                &[SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
                generate_key(),
                cfg,
            )
            .expect("bind");
            let addr = transport.local_addrs()[0];
            let mut config = Config::default();
            // Over QUIC a node's id is the one its key gives (peers check it).
            config.id_policy = IdPolicy::PublicKey(transport.public_key());
            let dht = dht_node::Dht::builder()
                .config(config)
                .spawn_with(transport, dht_store_mem::MemStore::new())
                .expect("spawn");
            tx.send(addr).expect("test thread waits");
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = dht.shutdown().await;
        });
    });
    let addr = rx.recv().expect("node started");
    (addr, handle)
}

#[test]
fn loads_a_quic_node_and_every_request_is_accounted_for() {
    let stop = Arc::new(AtomicBool::new(false));
    let (target, node) = spawn_node(stop.clone());
    let config = LoadConfig {
        query: QueryKind::FindNode,
        concurrency: 32,
        connections: 4,
        duration: Duration::from_secs(1),
        // The node lives in this process: its memory is ours, which is enough to see
        // that the figure is read.
        target_pid: Some(std::process::id()),
        progress: false,
        ..LoadConfig::new(target)
    };
    let report = run(&config).expect("run");
    stop.store(true, Ordering::Relaxed);
    node.join().expect("node thread");

    let text = report.to_text(&config);
    assert_eq!(report.established, 4, "{text}");
    assert_eq!(report.connect_failures, 0, "{text}");
    assert_eq!(report.first_request_us.len(), 4, "{text}");
    assert!(!report.idle_rtt_us.is_empty(), "{text}");
    assert!(report.first_request_rtts().is_some(), "{text}");
    let load = &report.load;
    assert!(load.responses > 100, "{text}");
    assert_eq!(load.echoed, 0, "{text}");
    assert_eq!(load.malformed, 0, "{text}");
    assert_eq!(load.sent, load.answered() + load.timeouts, "{text}");
    assert_eq!(load.latency_us.len(), load.answered(), "{text}");
    assert!(load.answered_in_window <= load.answered(), "{text}");
    assert!(report.target_rss_per_connection().is_some(), "{text}");
    assert!(report.target_cpu.is_some(), "{text}");
    let json = report.to_json(&config);
    assert!(json.starts_with("{\"transport\":\"quic\"") && json.ends_with('}'));
    assert!(!json.contains('\n'));
    // Every field `--json` published before the report type was shared is still there.
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    for name in [
        "transport",
        "target",
        "query",
        "connections",
        "established",
        "connect_failures",
        "threads",
        "concurrency",
        "duration_s",
        "answered_per_s",
        "sent",
        "answered",
        "responses",
        "errors",
        "echoed",
        "unanswered",
        "unanswered_fraction",
        "late",
        "malformed",
        "send_errors",
        "receive_errors",
        "latency_p50_us",
        "latency_p99_us",
        "first_request_p50_us",
        "first_request_p99_us",
        "first_request_max_us",
        "idle_rtt_p50_us",
        "first_request_rtts",
        "target_rss_before_bytes",
        "target_rss_after_bytes",
        "target_rss_after_hold_bytes",
        "target_rss_per_connection_bytes",
        "own_rss_per_connection_bytes",
        "target_cpu_s",
        "target_cpu_us_per_answer",
        "load_cpu_s",
        "load_cpu_utilisation",
    ] {
        assert!(value.get(name).is_some(), "{name} missing from {json}");
    }
    assert_eq!(value["threads"], 1);
    assert_eq!(value["sent"], load.sent);
}

#[test]
fn bad_settings_are_refused_before_any_connection() {
    let target = SocketAddr::from((Ipv4Addr::LOCALHOST, 9));
    let bad = [
        LoadConfig {
            concurrency: 0,
            ..LoadConfig::new(target)
        },
        LoadConfig {
            connections: 0,
            ..LoadConfig::new(target)
        },
        LoadConfig {
            timeout: Duration::ZERO,
            ..LoadConfig::new(target)
        },
        LoadConfig {
            concurrency: 70_000,
            connections: 1,
            ..LoadConfig::new(target)
        },
        LoadConfig {
            target_pid: Some(u32::MAX),
            ..LoadConfig::new(target)
        },
    ];
    for config in bad {
        assert!(
            matches!(validate(&config), Err(LoadError::Invalid(_))),
            "{config:?}"
        );
        assert!(matches!(run(&config), Err(LoadError::Invalid(_))));
    }
}
