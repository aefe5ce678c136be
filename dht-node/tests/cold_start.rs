//! Cold start with real processes (issue 16): 50 `dht-node` processes started at
//! the same moment on 127.0.0.1, all bootstrapping from one seed node, each hold at
//! least k = 8 nodes in their routing table within 5 s of the start. Each node
//! reports its table through `--routing-file` (rewritten every 100 ms).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{NodeProc, Scratch, BIN, TIMEOUT_MS};

const NODES: usize = 50;
const K: usize = 8;
const WITHIN: Duration = Duration::from_secs(5);

/// The started processes, killed when the test ends however it ends.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn table_len(path: &PathBuf) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count())
        .unwrap_or(0)
}

#[test]
fn fifty_nodes_bootstrapping_from_one_seed_fill_their_tables_within_5_s() {
    let dir = Scratch::new("cold-start");
    let seed = NodeProc::spawn(&dir.0, "seed", "127.0.0.1:0", &[]);
    let files: Vec<PathBuf> = (0..NODES)
        .map(|i| dir.0.join(format!("n{i}.table")))
        .collect();
    let started = Instant::now();
    let mut procs = Procs(Vec::new());
    for (i, file) in files.iter().enumerate() {
        let child = Command::new(BIN)
            .args(["--listen", "127.0.0.1:0", "--bootstrap"])
            .arg(seed.addr.to_string())
            .args(["--request-timeout-ms", TIMEOUT_MS])
            .args(["--status-interval-ms", "100", "--routing-file"])
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.0.join(format!("n{i}.log"))).unwrap(),
            ))
            .spawn()
            .expect("spawn dht-node");
        procs.0.push(child);
    }
    let spawned = started.elapsed();
    let mut filled: Vec<Option<Duration>> = vec![None; NODES];
    while started.elapsed() < WITHIN && filled.iter().any(Option::is_none) {
        for (i, file) in files.iter().enumerate() {
            if filled[i].is_none() && table_len(file) >= K {
                filled[i] = Some(started.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let short: Vec<(usize, usize)> = files
        .iter()
        .enumerate()
        .filter(|(i, _)| filled[*i].is_none())
        .map(|(i, f)| (i, table_len(f)))
        .collect();
    let slowest = filled.iter().flatten().max().copied();
    eprintln!(
        "spawned {NODES} in {spawned:?}; {} of {NODES} held k = {K} within {WITHIN:?}, the slowest at {slowest:?}",
        NODES - short.len()
    );
    assert!(
        short.is_empty(),
        "nodes (index, table size) short of k = {K} after {WITHIN:?}: {short:?}\nseed log:\n{}",
        seed.log_text()
    );
}
