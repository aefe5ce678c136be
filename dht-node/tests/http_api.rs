//! `--http` on real node processes on 127.0.0.1: `/metrics` (checked by `promtool
//! check metrics` when promtool is installed), `/readyz` before and after joining,
//! the JSON API across two nodes with each error status provoked once, and a watch;
//! the bounds on what HTTP clients may start (issue 27: lookups of closed requests
//! stay counted, reads and writes in pools of their own with a per-client share of
//! the reads, a cap on connections, head and idle timeouts, a bound on head size).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{cli, describe, stdout, NodeProc, Scratch};

/// A node with `--http 127.0.0.1:0`, and the address its HTTP server bound.
fn http_node(
    dir: &std::path::Path,
    name: &str,
    seeds: &[SocketAddr],
    extra: &[&str],
) -> (NodeProc, SocketAddr) {
    let mut args = vec!["--http", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let node = NodeProc::spawn_args(dir, name, "127.0.0.1:0", seeds, &args);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = node.log_text();
        if let Some(a) = log.lines().find_map(|l| l.strip_prefix("dht-node http=")) {
            return (node, a.trim().parse().expect("an address"));
        }
        assert!(
            Instant::now() < deadline,
            "no http= line in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP/1.1 request: (status, headers, body).
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let s = TcpStream::connect(addr).expect("connect");
    request_on(s, addr, method, path, headers, body)
}

/// [`request`] on a connection already open (from another source address, say).
fn request_on(
    mut s: TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    s.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read the answer");
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&out[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let mut body = out[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n =
            usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap_or(0);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

fn get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let (s, _, b) = request(addr, "GET", path, &[], b"");
    (s, b)
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b)
        .unwrap_or_else(|e| panic!("JSON ({e}): {}", String::from_utf8_lossy(b)))
}

/// A metric's value (summed over its label sets) in a text exposition; `name` may
/// carry the first labels of the series (`name{a="b"`).
fn metric(text: &str, name: &str) -> f64 {
    let name = name.strip_suffix('}').unwrap_or(name);
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{', ',', '}']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// promtool, if installed: `promtool check metrics` reads the exposition on stdin.
fn promtool_check(text: &str) {
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        eprintln!("skipping promtool check metrics: promtool is not installed (apt-get install -y prometheus)");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "promtool check metrics: {}{}\n{text}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.stdout.is_empty() && o.stderr.is_empty(),
        "promtool lint: {}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn metrics_and_readiness() {
    let dir = Scratch::new("http-ready");
    let (n0, h0) = http_node(&dir.0, "n0", &[], &[]);
    assert_eq!(get(h0, "/healthz").0, 200);
    let (status, body) = get(h0, "/readyz");
    assert_eq!(status, 503, "a lone node is not ready");
    let j = json(&body);
    assert!(j["error"].as_str().unwrap().contains("good nodes"), "{j}");

    let (status, head, body) = request(h0, "GET", "/metrics", &[], b"");
    assert_eq!(status, 200);
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let before = String::from_utf8(body).unwrap();
    promtool_check(&before);
    assert!(!before.contains("# EOF"), "{before}");
    // A scraper that takes anything still gets 0.0.4.
    let (_, head, _) = request(h0, "GET", "/metrics", &[("Accept", "*/*")], b"");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");

    // Nine nodes join through n0 (k = 8).
    let mut nodes = vec![];
    for i in 1..10 {
        let seeds = [n0.addr];
        nodes.push(NodeProc::spawn(
            &dir.0,
            &format!("n{i}"),
            "127.0.0.1:0",
            &seeds,
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get(h0, "/readyz");
        if status == 200 {
            assert_eq!(json(&body)["ready"], true);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never ready: {}",
            String::from_utf8_lossy(&body)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let o = cli(&["find-node", &"ab".repeat(20)], &[n0.addr]);
    assert!(o.status.success(), "{}", describe(&o));
    let o = cli(&["ping", &n0.addr.to_string()], &[]);
    assert!(o.status.success(), "{}", describe(&o));
    let (_, after) = get(h0, "/metrics");
    let after = String::from_utf8(after).unwrap();
    promtool_check(&after);
    // Series present from the start, at 0 until something happens (no eviction here).
    for series in ["dht_storage_evicted_total 0", "dht_contacts_dropped_total "] {
        assert!(
            after.lines().any(|l| l.starts_with(series)),
            "no {series}:\n{after}"
        );
    }
    for name in [
        "dht_datagrams_received_total",
        "dht_queries_answered_total",
        "dht_received_bytes_total",
    ] {
        assert!(
            metric(&after, name) > metric(&before, name),
            "{name} did not move:\n{after}"
        );
    }
    // Per method, from the fixed set: the pings and find_nodes we sent moved their
    // own series and no other.
    for method in ["ping", "find_node"] {
        let series = format!("dht_queries_received_total{{method=\"{method}\"}}");
        assert!(
            metric(&after, &series) > metric(&before, &series),
            "{series} did not move:\n{after}"
        );
    }
    for method in ["announce_peer", "get", "put", "sample_infohashes", "other"] {
        let series = format!("dht_queries_received_total{{method=\"{method}\"}}");
        assert_eq!(metric(&after, &series), 0.0, "{series}:\n{after}");
    }
    assert_eq!(
        after.matches("dht_queries_received_total{").count(),
        8,
        "one series per method of the fixed set:\n{after}"
    );
    assert!(metric(&after, "dht_queries_sent_total") > 0.0, "{after}");
    assert!(metric(&after, "dht_routing_nodes") >= 8.0, "{after}");
    assert_eq!(metric(&after, "dht_ready"), 1.0);
    assert!(metric(&after, "process_resident_memory_bytes") > 0.0);

    // OpenMetrics only when asked for, as Prometheus asks by default.
    let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let (status, head, body) = request(h0, "GET", "/metrics", &[("Accept", accept)], b"");
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    let om = String::from_utf8(body).unwrap();
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(
        om.contains("# TYPE dht_datagrams_received counter\n"),
        "{om}"
    );
    assert!(!om.contains("\n\n"), "{om}");
    assert!(
        metric(&om, "dht_datagrams_received_total")
            >= metric(&after, "dht_datagrams_received_total")
    );
    openmetrics_check(&om);
    drop(nodes);
}

/// Python's prometheus_client, if installed, parses OpenMetrics text strictly.
fn openmetrics_check(text: &str) {
    let script = "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as p\nn = len(list(p(sys.stdin.read())))\nprint(n)";
    let probe = std::process::Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipping the OpenMetrics parse: python3 with prometheus_client is not installed (pip install prometheus_client)");
        return;
    }
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "OpenMetrics parse: {}\n{text}",
        String::from_utf8_lossy(&o.stderr)
    );
    let families: usize = stdout(&o).trim().parse().unwrap();
    assert!(families >= 10, "{families} families parsed");
}

fn network(dir: &std::path::Path, extra: &[&str]) -> (Vec<NodeProc>, SocketAddr, SocketAddr) {
    let (a, ha) = http_node(dir, "a", &[], extra);
    let mut nodes = vec![a];
    for i in 0..6 {
        let seeds = [nodes[0].addr];
        nodes.push(NodeProc::spawn(
            dir,
            &format!("n{i}"),
            "127.0.0.1:0",
            &seeds,
        ));
    }
    let (b, hb) = http_node(dir, "b", &[nodes[0].addr, nodes[3].addr], extra);
    nodes.push(b);
    std::thread::sleep(Duration::from_millis(1000));
    (nodes, ha, hb)
}

fn sign(dir: &std::path::Path, key: &str, value: &str, seq: &str, extra: &[&str]) -> Vec<u8> {
    let mut args = vec!["sign", value, "--key", key, "--seq", seq];
    args.extend_from_slice(extra);
    let o = cli(&args, &[]);
    assert!(o.status.success(), "{}", describe(&o));
    let _ = dir;
    o.stdout
}

#[test]
fn api_across_two_nodes() {
    let dir = Scratch::new("http-api");
    // Immutable: 503 from a node no one answers.
    let (_lone, hl) = http_node(&dir.0, "lone", &[], &[]);
    let (s, _, b) = request(hl, "POST", "/v1/immutable", &[], b"nobody");
    assert_eq!(s, 503, "{}", String::from_utf8_lossy(&b));

    let (nodes, ha, hb) = network(&dir.0, &[]);
    let (s, _, b) = request(
        ha,
        "POST",
        "/v1/immutable",
        &[("Content-Type", "text/plain")],
        b"hello http",
    );
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let put = json(&b);
    // The same answer as `dht-node put --json` (one serde type): the same fields.
    let o = cli(&["put", "hello http", "--json"], &[nodes[0].addr]);
    assert!(o.status.success(), "{}", describe(&o));
    let cli_put = json(&o.stdout);
    let fields = |v: &serde_json::Value| {
        let mut f: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        f.sort();
        f
    };
    assert_eq!(fields(&put), fields(&cli_put));
    assert_eq!(fields(&put["stats"]), fields(&cli_put["stats"]));
    assert_eq!(put["target"], cli_put["target"]);
    let target = put["target"].as_str().unwrap().to_string();
    assert_eq!(target.len(), 40);
    assert!(put["stats"]["requests"].as_u64().unwrap() >= 1, "{put}");
    let (s, b) = get(hb, &format!("/v1/immutable/{target}"));
    assert_eq!((s, b.as_slice()), (200, &b"hello http"[..]));

    // 404, 400, 413.
    let (s, b) = get(hb, &format!("/v1/immutable/{}", "ab".repeat(20)));
    assert_eq!(s, 404, "{}", String::from_utf8_lossy(&b));
    assert!(json(&b)["error"].is_string());
    assert_eq!(get(hb, "/v1/immutable/xyz").0, 400);
    assert_eq!(
        request(ha, "POST", "/v1/immutable", &[], &[b'x'; 1200]).0,
        413
    );
    assert_eq!(
        request(ha, "POST", "/v1/immutable", &[], &[b'x'; 64 * 1024]).0,
        413
    );

    // Mutable, signed by `dht-node sign`, read back through the other node.
    let key = dir.0.join("key");
    let key_s = key.to_str().unwrap();
    let o = cli(&["keygen", "--out", key_s], &[]);
    assert!(o.status.success(), "{}", describe(&o));
    let public = stdout(&o).trim().to_string();
    let path = format!("/v1/mutable/{public}?salt=s%201");
    let body = sign(&dir.0, key_s, "v1", "1", &["--salt", "s 1"]);
    let (s, _, b) = request(ha, "PUT", &path, &[], &body);
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let (s, b) = get(hb, &path);
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let got = json(&b);
    assert_eq!(got["seq"], 1);
    assert_eq!(got["value_base64"], "Mjp2MQ=="); // "2:v1"
    assert_eq!(got["signature"].as_str().unwrap().len(), 128);

    // 422: a bad signature, and a stale seq; 409: a cas mismatch; 400: a bad body.
    let mut bad: serde_json::Value = json(&body);
    bad["seq"] = 7.into();
    let (s, _, _) = request(ha, "PUT", &path, &[], bad.to_string().as_bytes());
    assert_eq!(s, 422);
    let stale = sign(&dir.0, key_s, "other", "1", &["--salt", "s 1"]);
    let (s, _, b) = request(ha, "PUT", &path, &[], &stale);
    assert_eq!(s, 422, "{}", String::from_utf8_lossy(&b));
    let cas = sign(&dir.0, key_s, "v3", "3", &["--salt", "s 1", "--cas", "2"]);
    let (s, _, b) = request(ha, "PUT", &path, &[], &cas);
    assert_eq!(s, 409, "{}", String::from_utf8_lossy(&b));
    assert_eq!(request(ha, "PUT", &path, &[], b"{").0, 400);

    // Peers and announce.
    let ih = "cd".repeat(20);
    let (s, _, b) = request(
        ha,
        "POST",
        &format!("/v1/announce/{ih}?port=6999"),
        &[],
        b"",
    );
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let (s, b) = get(hb, &format!("/v1/peers/{ih}"));
    assert_eq!(s, 200);
    let peers = json(&b);
    assert!(
        peers["peers"][0].as_str().unwrap().ends_with(":6999"),
        "{peers}"
    );

    let (s, b) = get(ha, "/v1/node");
    assert_eq!(s, 200);
    assert_eq!(json(&b)["id"].as_str().unwrap().len(), 40);
}

#[test]
fn writes_need_the_token() {
    let dir = Scratch::new("http-token");
    let token = dir.0.join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let (_n, h) = http_node(
        &dir.0,
        "n",
        &[],
        &["--http-token-file", token.to_str().unwrap()],
    );
    assert_eq!(request(h, "POST", "/v1/immutable", &[], b"x").0, 401);
    let (s, _, _) = request(
        h,
        "POST",
        "/v1/immutable",
        &[("Authorization", "Bearer s3cret")],
        b"x",
    );
    assert_eq!(s, 503, "authorized, but no node answers");
    // The scheme's name is case-insensitive (RFC 7235, section 2.1).
    for auth in ["bearer s3cret", "BEARER s3cret", "Bearer  s3cret"] {
        let (s, _, _) = request(h, "POST", "/v1/immutable", &[("Authorization", auth)], b"x");
        assert_eq!(s, 503, "{auth:?} is authorized");
    }
    for auth in ["Bearer S3CRET", "Basic s3cret", "Bearers3cret", "Bearer"] {
        let (s, _, _) = request(h, "POST", "/v1/immutable", &[("Authorization", auth)], b"x");
        assert_eq!(s, 401, "{auth:?} is not");
    }
    assert_eq!(get(h, "/healthz").0, 200);
}

#[test]
fn a_bad_token_file_fails_the_start_before_anything_is_bound() {
    let dir = Scratch::new("http-token-bad");
    let empty = dir.0.join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let missing = dir.0.join("missing");
    for (token, status) in [(&empty, 2), (&missing, 3), (&dir.0, 3)] {
        let addr_file = dir.0.join("addr");
        let o = std::process::Command::new(common::BIN)
            .args(["--listen", "127.0.0.1:0", "--no-bootstrap", "--addr-file"])
            .arg(&addr_file)
            .args(["--http", "127.0.0.1:0", "--http-token-file"])
            .arg(token)
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(status), "{token:?}: {}", describe(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "one line, nothing bound: {err}");
        assert!(
            !addr_file.exists(),
            "{token:?}: the node bound its port first"
        );
    }
}

#[test]
fn an_announce_of_port_0_is_refused_before_any_lookup() {
    let dir = Scratch::new("http-port-0");
    let (_n, h) = http_node(&dir.0, "n", &[], &[]);
    let ih = "cd".repeat(20);
    for q in ["port=0", "port=65536", "port=x", "other=1"] {
        let (s, _, b) = request(h, "POST", &format!("/v1/announce/{ih}?{q}"), &[], b"");
        assert_eq!(s, 400, "{q}: {}", String::from_utf8_lossy(&b));
        assert!(
            json(&b)["error"].as_str().unwrap().contains("port"),
            "{}",
            String::from_utf8_lossy(&b)
        );
    }
    // No lookup ran: a lone node would have answered 503 after one.
    let metrics = String::from_utf8(get(h, "/metrics").1).unwrap();
    assert_eq!(metric(&metrics, "dht_lookups_total"), 0.0, "{metrics}");
}

/// What the node republishes now (`/v1/node`).
fn republishing(h: SocketAddr) -> u64 {
    json(&get(h, "/v1/node").1)["republishing"]
        .as_u64()
        .unwrap()
}

#[test]
fn http_writes_grow_republishing_up_to_a_bound_and_delete_stops_one() {
    let dir = Scratch::new("http-republish");
    let token = dir.0.join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let seed = NodeProc::spawn(&dir.0, "seed", "127.0.0.1:0", &[]);
    let (_a, h) = http_node(
        &dir.0,
        "a",
        &[seed.addr],
        &[
            "--http-max-republished",
            "3",
            "--http-token-file",
            token.to_str().unwrap(),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while json(&get(h, "/v1/node").1)["table"]["ipv4"]["good"] != 1 {
        assert!(Instant::now() < deadline, "A never added the seed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let auth = [("Authorization", "Bearer s3cret")];
    let put = |value: &str| {
        let (s, _, b) = request(h, "POST", "/v1/immutable", &auth, value.as_bytes());
        (s, json(&b))
    };
    let mut targets = vec![];
    for v in ["one", "two", "three"] {
        let (s, j) = put(v);
        assert_eq!(s, 200, "{j}");
        targets.push(j["target"].as_str().unwrap().to_string());
    }
    assert_eq!(republishing(h), 3);
    // Full: a new item, a new announce and a new mutable item are refused before
    // they start, with what to do about it.
    let (s, j) = put("four");
    assert_eq!(s, 507, "{j}");
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .contains("DELETE /v1/republishing/"),
        "{j}"
    );
    let ih = "cd".repeat(20);
    let announce = format!("/v1/announce/{ih}?port=6999");
    assert_eq!(request(h, "POST", &announce, &auth, b"").0, 507);
    let key = dir.0.join("key");
    let key_s = key.to_str().unwrap();
    let o = cli(&["keygen", "--out", key_s], &[]);
    assert!(o.status.success(), "{}", describe(&o));
    let public = stdout(&o).trim().to_string();
    let body = sign(&dir.0, key_s, "v1", "1", &[]);
    let mutable = format!("/v1/mutable/{public}");
    assert_eq!(request(h, "PUT", &mutable, &auth, &body).0, 507);
    // A target already republished takes no more room.
    assert_eq!(put("two").0, 200);
    assert_eq!(republishing(h), 3);

    // DELETE stops one (it needs the token, and a known target) and frees its room.
    let stop = format!("/v1/republishing/{}", targets[0]);
    assert_eq!(request(h, "DELETE", &stop, &[], b"").0, 401);
    let (s, _, b) = request(h, "DELETE", &stop, &auth, b"");
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    assert_eq!(json(&b)["republishing"], false);
    assert_eq!(republishing(h), 2);
    assert_eq!(request(h, "DELETE", &stop, &auth, b"").0, 404);
    assert_eq!(
        request(h, "DELETE", "/v1/republishing/xyz", &auth, b"").0,
        400
    );
    let (s, _, b) = request(h, "POST", &announce, &auth, b"");
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    assert_eq!(republishing(h), 3);
    assert_eq!(
        request(h, "DELETE", &format!("/v1/republishing/{ih}"), &auth, b"").0,
        200
    );
    assert_eq!(republishing(h), 2);
}

#[test]
fn watch_sees_a_put_through_another_node() {
    let dir = Scratch::new("http-watch");
    // The setting: the put is seen within the poll interval.
    let (_nodes, ha, hb) = network(&dir.0, &["--watch-poll", "5"]);
    let key = dir.0.join("key");
    let key_s = key.to_str().unwrap();
    let o = cli(&["keygen", "--out", key_s], &[]);
    assert!(o.status.success(), "{}", describe(&o));
    let public = stdout(&o).trim().to_string();
    let (s, _, b) = request(
        hb,
        "PUT",
        &format!("/v1/mutable/{public}"),
        &[],
        &sign(&dir.0, key_s, "one", "1", &[]),
    );
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));

    let mut stream = TcpStream::connect(ha).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET /v1/mutable/{public}/watch HTTP/1.1\r\nHost: {ha}\r\nAccept: text/event-stream\r\n\r\n").unwrap();
    let mut lines = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    lines.read_line(&mut line).unwrap();
    assert!(line.contains(" 200 "), "{line}");

    std::thread::sleep(Duration::from_millis(500));
    let (s, _, b) = request(
        hb,
        "PUT",
        &format!("/v1/mutable/{public}"),
        &[],
        &sign(&dir.0, key_s, "two", "2", &[]),
    );
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut event = String::new();
    while Instant::now() < deadline {
        line.clear();
        if lines.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if line.starts_with("event:") {
            event = line.trim().to_string();
        }
        if let Some(data) = line.strip_prefix("data:") {
            let v = json(data.trim().as_bytes());
            assert_eq!(event, "event: item");
            if v["seq"] == 2 {
                assert_eq!(v["value_base64"], "Mzp0d28="); // "3:two"
                return;
            }
        }
    }
    panic!("no event with seq 2 within 20 s");
}

#[test]
fn watch_sees_a_put_that_reaches_this_node_before_the_poll() {
    let dir = Scratch::new("http-watch-local");
    // Eight nodes with k = 8: every put reaches node A itself.
    let (_nodes, ha, hb) = network(&dir.0, &["--watch-poll", "3600"]);
    let key = dir.0.join("key");
    let key_s = key.to_str().unwrap();
    let o = cli(&["keygen", "--out", key_s], &[]);
    assert!(o.status.success(), "{}", describe(&o));
    let public = stdout(&o).trim().to_string();
    let mut stream = TcpStream::connect(ha).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /v1/mutable/{public}/watch HTTP/1.1\r\nHost: {ha}\r\n\r\n"
    )
    .unwrap();
    let mut lines = BufReader::new(stream);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (s, _, b) = request(
        hb,
        "PUT",
        &format!("/v1/mutable/{public}"),
        &[],
        &sign(&dir.0, key_s, "local", "5", &[]),
    );
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let mut line = String::new();
    while lines.read_line(&mut line).unwrap_or(0) > 0 {
        if let Some(data) = line.strip_prefix("data:") {
            assert_eq!(json(data.trim().as_bytes())["seq"], 5);
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{:?}",
                started.elapsed()
            );
            return;
        }
        line.clear();
    }
    panic!("no event within 10 s although the put reached this node");
}

/// Reads an SSE stream until an event carries `seq` (true) or it ends or times out.
fn sees_seq(stream: TcpStream, seq: i64) -> bool {
    let mut lines = BufReader::new(stream);
    let mut line = String::new();
    while lines.read_line(&mut line).unwrap_or(0) > 0 {
        if let Some(data) = line.strip_prefix("data:") {
            if json(data.trim().as_bytes())["seq"] == seq {
                return true;
            }
        }
        line.clear();
    }
    false
}

/// Issue 27, item 10: the review's sequence (10 nodes, `--watch-poll 5`, seq 1 put
/// through node 3, a watch on node 4, seq 2 put through node 5 2 s later) missed
/// seq 2 once in five runs. Here it runs 20 times at once, one key each; every
/// watch must deliver seq 2 within 30 s. (`contrib/probes/watch_seq.py` runs the
/// same sequence against any build.)
#[test]
fn twenty_watches_each_see_the_newer_seq() {
    const ROUNDS: usize = 20;
    let dir = Scratch::new("http-watch-rounds");
    let poll = ["--watch-poll", "5"];
    let (n0, _) = http_node(&dir.0, "n0", &[], &poll);
    let seed = [n0.addr];
    let mut nodes = vec![n0];
    let mut http = Vec::new();
    for i in 1..10 {
        let (n, h) = http_node(&dir.0, &format!("n{i}"), &seed, &poll);
        nodes.push(n);
        http.push(h);
    }
    let (h3, h4, h5) = (http[2], http[3], http[4]);
    std::thread::sleep(Duration::from_millis(1500));

    let keys: Vec<(String, String)> = (0..ROUNDS)
        .map(|i| {
            let key = dir.0.join(format!("key{i}"));
            let key_s = key.to_str().unwrap().to_string();
            let o = cli(&["keygen", "--out", &key_s], &[]);
            assert!(o.status.success(), "{}", describe(&o));
            (key_s, stdout(&o).trim().to_string())
        })
        .collect();
    for (key, public) in &keys {
        let body = sign(&dir.0, key, "one", "1", &[]);
        let (s, _, b) = request(h3, "PUT", &format!("/v1/mutable/{public}"), &[], &body);
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    }
    let watches: Vec<_> = keys
        .iter()
        .map(|(_, public)| {
            let mut stream = TcpStream::connect(h4).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            write!(
                stream,
                "GET /v1/mutable/{public}/watch HTTP/1.1\r\nHost: {h4}\r\nAccept: text/event-stream\r\n\r\n"
            )
            .unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let bodies: Vec<_> = keys
        .iter()
        .map(|(key, _)| sign(&dir.0, key, "two", "2", &[]))
        .collect();
    let readers: Vec<_> = watches
        .into_iter()
        .map(|w| std::thread::spawn(move || sees_seq(w, 2)))
        .collect();
    for ((_, public), body) in keys.iter().zip(&bodies) {
        let (s, _, b) = request(h5, "PUT", &format!("/v1/mutable/{public}"), &[], body);
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    }
    let seen = readers
        .into_iter()
        .map(|r| r.join())
        .filter(|r| matches!(r, Ok(true)))
        .count();
    assert_eq!(seen, ROUNDS, "watches that saw seq 2 within 30 s");
}

/// A node A whose only contact is a seed that went silent (SIGSTOP), with replies
/// awaited 20 s (however fast the seed answered before): every get through A's HTTP
/// API hangs until the deadline.
fn silent_network(dir: &std::path::Path, extra: &[&str]) -> (NodeProc, NodeProc, SocketAddr) {
    let seed = NodeProc::spawn(dir, "seed", "127.0.0.1:0", &[]);
    let mut args = vec![
        "--request-timeout-ms",
        "20000",
        "--min-request-timeout-ms",
        "20000",
    ];
    args.extend_from_slice(extra);
    let (a, h) = http_node(dir, "a", &[seed.addr], &args);
    let deadline = Instant::now() + Duration::from_secs(10);
    while json(&get(h, "/v1/node").1)["table"]["ipv4"]["good"] != 1 {
        assert!(Instant::now() < deadline, "A never added the seed");
        std::thread::sleep(Duration::from_millis(50));
    }
    seed.pause();
    (seed, a, h)
}

fn in_flight(h: SocketAddr) -> f64 {
    metric(
        &String::from_utf8(get(h, "/metrics").1).unwrap(),
        "dht_http_operations_in_flight",
    )
}

#[test]
fn http_operations_beyond_the_limit_get_503() {
    let dir = Scratch::new("http-max-ops");
    let (seed, _a, h) = silent_network(
        &dir.0,
        &["--http-max-ops", "2", "--http-deadline-ms", "5000"],
    );
    let held: Vec<_> = (0..2)
        .map(|i| {
            std::thread::spawn(move || {
                let started = Instant::now();
                let (s, _) = get(
                    h,
                    &format!("/v1/immutable/{}", format!("{i:02}").repeat(20)),
                );
                (s, started.elapsed())
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(4);
    while in_flight(h) < 2.0 {
        assert!(Instant::now() < deadline, "the two gets never ran at once");
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let (s, b) = get(h, &format!("/v1/immutable/{}", "ee".repeat(20)));
    assert_eq!(s, 503, "{}", String::from_utf8_lossy(&b));
    assert!(
        json(&b)["error"].as_str().unwrap().contains("too many"),
        "{}",
        String::from_utf8_lossy(&b)
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once, not after waiting: {:?}",
        started.elapsed()
    );
    for t in held {
        let (s, _) = t.join().unwrap();
        assert_eq!(s, 504, "the held gets end at their deadline");
    }
    // The permits come back when the lookups end, not at the deadline (the node
    // cannot cancel a lookup): the seed answers again and they end.
    seed.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    while in_flight(h) != 0.0 {
        assert!(Instant::now() < deadline, "the permits never came back");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_http_operation_past_its_deadline_gets_504() {
    let dir = Scratch::new("http-deadline");
    let (_seed, _a, h) = silent_network(&dir.0, &["--http-deadline-ms", "1000"]);
    let started = Instant::now();
    let (s, b) = get(h, &format!("/v1/immutable/{}", "ee".repeat(20)));
    let took = started.elapsed();
    assert_eq!(s, 504, "{}", String::from_utf8_lossy(&b));
    assert!(json(&b)["error"].as_str().unwrap().contains("deadline"));
    // The reply timeout is 20 s: only the deadline ends the request this early.
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_secs(8),
        "{took:?}"
    );
}

/// A connection to `to` from `from` (another loopback address: another client).
fn connect_from(from: std::net::IpAddr, to: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::new(from, 0))
            .expect("bind a loopback source");
        socket.connect(to).await.expect("connect")
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s
}

/// Sends one GET and closes the connection at once, as a client that gives up.
fn get_and_leave(h: SocketAddr, path: &str) {
    let mut s = TcpStream::connect(h).expect("connect");
    let _ = s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {h}\r\n\r\n").as_bytes());
}

/// Lookups of the node that ended, over all kinds.
fn lookups_ended(h: SocketAddr) -> f64 {
    metric(
        &String::from_utf8(get(h, "/metrics").1).unwrap(),
        "dht_lookups_total",
    )
}

#[test]
fn lookups_of_closed_requests_stay_counted() {
    let dir = Scratch::new("http-closed");
    let (seed, _a, h) = silent_network(
        &dir.0,
        &[
            "--http-max-ops",
            "4",
            "--http-max-reads-per-client",
            "4",
            "--http-max-watch-lookups",
            "2",
            "--http-deadline-ms",
            "500",
        ],
    );
    let before = lookups_ended(h);
    // 40 gets and 40 watches, each given up at once, and 40 gets that wait for
    // their deadline, 4 at a time: ways of starting lookups without end if a
    // permit were freed with its request.
    for i in 0..40u32 {
        get_and_leave(h, &format!("/v1/immutable/{:040x}", i + 1));
        get_and_leave(h, &format!("/v1/mutable/{:064x}/watch", i + 1));
    }
    let waiting: Vec<_> = (0..4u32)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..10u32 {
                    let status = get(h, &format!("/v1/immutable/{:040x}", 100 + t * 10 + i)).0;
                    assert!(status == 503 || status == 504, "{status}");
                }
            })
        })
        .collect();
    for t in waiting {
        t.join().unwrap();
    }
    std::thread::sleep(Duration::from_secs(1));
    let held = in_flight(h);
    assert!(
        held <= 6.0,
        "{held} operations in flight; the pools hold 4 + 2"
    );
    // The seed answers again: every lookup started ends, and is counted.
    seed.resume();
    let deadline = Instant::now() + Duration::from_secs(15);
    while in_flight(h) != 0.0 {
        assert!(Instant::now() < deadline, "the lookups never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let started = lookups_ended(h) - before;
    // 4 gets and 2 watch lookups at most, and a little housekeeping.
    assert!(
        started <= 8.0,
        "{started} lookups for 120 requests given up or past their deadline"
    );
}

#[test]
fn held_reads_do_not_refuse_writes() {
    let dir = Scratch::new("http-pools");
    let token = dir.0.join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let (_seed, _a, h) = silent_network(
        &dir.0,
        &[
            "--http-max-ops",
            "2",
            "--http-deadline-ms",
            "2000",
            "--http-token-file",
            token.to_str().unwrap(),
        ],
    );
    let held: Vec<_> = (1..=2u32)
        .map(|i| std::thread::spawn(move || get(h, &format!("/v1/immutable/{i:040x}")).0))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(4);
    while in_flight(h) < 2.0 {
        assert!(Instant::now() < deadline, "the two gets never ran at once");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get(h, &format!("/v1/immutable/{}", "ee".repeat(20))).0, 503);
    let auth = [("Authorization", "Bearer s3cret")];
    let path = format!("/v1/announce/{}?port=6881", "ab".repeat(20));
    let (s, _, b) = request(h, "POST", &path, &auth, b"");
    // The write ran (and met the silent seed's deadline) rather than being refused.
    assert_eq!(s, 504, "{}", String::from_utf8_lossy(&b));
    for t in held {
        assert_eq!(t.join().unwrap(), 504);
    }
}

#[test]
fn one_client_gets_its_share_of_the_reads() {
    let dir = Scratch::new("http-share");
    let (_seed, _a, h) = silent_network(
        &dir.0,
        &[
            "--http-max-ops",
            "4",
            "--http-max-reads-per-client",
            "2",
            "--http-deadline-ms",
            "3000",
        ],
    );
    let client = |ip: &str, i: u32| {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        let path = format!("/v1/immutable/{i:040x}");
        std::thread::spawn(move || request_on(connect_from(ip, h), h, "GET", &path, &[], b"").0)
    };
    let held = vec![client("127.0.0.1", 1), client("127.0.0.1", 2)];
    let deadline = Instant::now() + Duration::from_secs(4);
    while in_flight(h) < 2.0 {
        assert!(Instant::now() < deadline, "the two gets never ran at once");
        std::thread::sleep(Duration::from_millis(20));
    }
    let path = format!("/v1/immutable/{}", "ee".repeat(20));
    let (s, _, b) = request_on(
        connect_from([127, 0, 0, 1].into(), h),
        h,
        "GET",
        &path,
        &[],
        b"",
    );
    assert_eq!(s, 503, "127.0.0.1 holds its share");
    assert!(
        String::from_utf8_lossy(&b).contains("this client"),
        "{}",
        String::from_utf8_lossy(&b)
    );
    // Another client still gets a lookup of the pool.
    let other = client("127.0.0.2", 3);
    let deadline = Instant::now() + Duration::from_secs(4);
    while in_flight(h) < 3.0 {
        assert!(Instant::now() < deadline, "127.0.0.2's get never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    for t in held.into_iter().chain([other]) {
        assert_eq!(t.join().unwrap(), 504);
    }
}

/// Whether the server closed `s` within `within` (reads until EOF or an error).
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn http_connections_are_bounded() {
    let dir = Scratch::new("http-conns");
    let (_n, h) = http_node(
        &dir.0,
        "n",
        &[],
        &[
            "--http-max-conns",
            "4",
            "--http-header-timeout-ms",
            "1000",
            "--http-idle-timeout-ms",
            "1500",
            "--http-deadline-ms",
            "1000",
        ],
    );
    // A head over the bound: 431, not served.
    let pad = "a".repeat(20_000);
    let (s, _, _) = request(h, "GET", "/healthz", &[("x-pad", &pad)], b"");
    assert_eq!(s, 431, "a 20 KB head");

    // A head trickled a byte at a time is cut off at the header timeout.
    let started = Instant::now();
    let mut slow = TcpStream::connect(h).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nx-slow: ")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut cut = false;
    while started.elapsed() < Duration::from_secs(4) {
        if slow.write_all(b"a").is_err() || closed_within(&mut slow, Duration::from_millis(100)) {
            cut = true;
            break;
        }
    }
    assert!(cut, "a trickled head was never cut off");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    // A connection that never sends a byte is closed too.
    let mut silent = TcpStream::connect(h).unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(4)),
        "an idle connection stayed open"
    );

    // A watch nobody writes to for longer than the idle timeout is closed (its
    // keep-alive comes every 15 s).
    let mut watch = TcpStream::connect(h).unwrap();
    let path = format!("/v1/mutable/{}/watch", "ab".repeat(32));
    watch
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {h}\r\n\r\n").as_bytes())
        .unwrap();
    assert!(
        closed_within(&mut watch, Duration::from_secs(6)),
        "an idle watch stayed open"
    );

    // The cap: 4 open connections, and a fifth is closed unanswered.
    let open: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(h).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut fifth = TcpStream::connect(h).unwrap();
    let _ = fifth.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {h}\r\n\r\n").as_bytes());
    let mut answer = Vec::new();
    fifth
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let _ = fifth.read_to_end(&mut answer);
    assert!(
        answer.is_empty(),
        "a fifth connection was served: {}",
        String::from_utf8_lossy(&answer)
    );
    drop(open);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        get(h, "/healthz").0,
        200,
        "served again once connections closed"
    );
}
