//! Two figures about `--http`, printed (a measurement, not a test), on `dht-node`
//! processes on 127.0.0.1:
//! 1. the latency an HTTP get adds over the DHT lookup itself: `GET
//!    /v1/immutable/TARGET` timed by the client on a kept-alive connection, minus the
//!    lookup's own duration that the answer carries (`x-dht-duration-us`, measured
//!    on the node task: what `Dht::get_immutable` reports). What is left is HTTP
//!    parsing, the handler, the hop to the node task and back, and loopback TCP;
//! 2. the resident memory (VmRSS) of a node with `--http` on, idle after joining,
//!    and after the gets.
//!
//! `cargo build --release -p dht-node && cargo run --release -p dht-node --example
//! http_overhead [-- PATH_TO_DHT_NODE]` (default: the `dht-node` next to the
//! examples folder, i.e. target/release/dht-node).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const GETS: usize = 1000;
const NODES: usize = 8;

struct Node {
    child: Child,
    udp: SocketAddr,
    http: Option<SocketAddr>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(bin: &PathBuf, dir: &std::path::Path, name: &str, args: &[&str]) -> Node {
    let log = dir.join(format!("{name}.log"));
    let addr_file = dir.join(format!("{name}.addr"));
    let child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--addr-file"])
        .arg(&addr_file)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn dht-node");
    // Owned at once, so that a node that fails to start is still killed.
    let mut node = Node {
        child,
        udp: SocketAddr::from(([127, 0, 0, 1], 0)),
        http: None,
    };
    let wants_http = args.contains(&"--http");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let udp = std::fs::read_to_string(&addr_file)
            .ok()
            .and_then(|t| t.lines().next()?.parse().ok());
        node.http = text
            .lines()
            .find_map(|l| l.strip_prefix("dht-node http=")?.trim().parse().ok());
        if let Some(udp) = udp {
            if node.http.is_some() || !wants_http {
                node.udp = udp;
                return node;
            }
        }
        assert!(Instant::now() < deadline, "{name} did not start:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One request on a kept-alive connection: (status, headers, body).
fn request(
    conn: &mut BufReader<TcpStream>,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let s = conn.get_mut();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut headers = String::new();
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        headers.push_str(&line);
    }
    let status = headers.split_whitespace().nth(1).unwrap().parse().unwrap();
    let len: usize = header(&headers, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut out = vec![0; len];
    conn.read_exact(&mut out).unwrap();
    (status, headers, out)
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn quantiles(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
    format!(
        "p50 {:.0} us, p90 {:.0} us, p99 {:.0} us",
        q(0.5),
        q(0.9),
        q(0.99)
    )
}

fn main() {
    let bin = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("current exe");
            exe.parent().unwrap().parent().unwrap().join("dht-node")
        });
    let dir = std::env::temp_dir().join(format!("dht-http-overhead-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let seed = spawn(&bin, &dir, "seed", &["--no-bootstrap"]);
    let seed_addr = seed.udp.to_string();
    let mut nodes: Vec<Node> = (0..NODES)
        .map(|i| spawn(&bin, &dir, &format!("n{i}"), &["--bootstrap", &seed_addr]))
        .collect();
    let a = spawn(
        &bin,
        &dir,
        "a",
        &["--bootstrap", &seed_addr, "--http", "127.0.0.1:0"],
    );
    std::thread::sleep(Duration::from_secs(3));
    let idle = rss_kib(a.child.id());

    let mut conn = BufReader::new(TcpStream::connect(a.http.unwrap()).unwrap());
    conn.get_ref().set_nodelay(true).unwrap();
    let (s, _, body) = request(&mut conn, "POST", "/v1/immutable", b"hello overhead");
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let put: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let path = format!("/v1/immutable/{}", put["target"].as_str().unwrap());
    let (mut total, mut lookup, mut added) = (vec![], vec![], vec![]);
    for i in 0..GETS + 50 {
        let t = Instant::now();
        let (s, headers, _) = request(&mut conn, "GET", &path, b"");
        let us = t.elapsed().as_secs_f64() * 1e6;
        assert_eq!(s, 200);
        let dht: f64 = header(&headers, "x-dht-duration-us")
            .and_then(|v| v.parse().ok())
            .unwrap();
        if i >= 50 {
            total.push(us);
            lookup.push(dht);
            added.push(us - dht);
        }
    }
    let after = rss_kib(a.child.id());
    println!(
        "{GETS} HTTP gets of one immutable item through node A ({} nodes on 127.0.0.1):",
        NODES + 2
    );
    println!("  HTTP get, client-timed:        {}", quantiles(total));
    println!("  the lookup (x-dht-duration-us): {}", quantiles(lookup));
    println!("  added by HTTP (per get):        {}", quantiles(added));
    println!(
        "RSS of node A (--http on): idle after joining {:.1} MiB, after the gets {:.1} MiB",
        idle as f64 / 1024.0,
        after as f64 / 1024.0
    );
    drop(conn);
    nodes.clear();
    drop(a);
    drop(seed);
    let _ = std::fs::remove_dir_all(&dir);
}
