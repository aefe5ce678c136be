//! `--config FILE`, `--log-format json`, and the CLI's handling of hostile files and a
//! closed stdout (issue 12): real `dht-node` processes on 127.0.0.1.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{describe, stdout, Scratch, BIN};

/// Runs a node with `args` until its "listening" line (or its exit), then kills it;
/// returns its stderr.
fn node_stderr(args: &[&str]) -> String {
    let dir = Scratch::new("cfg-node");
    let log = dir.0.join("log");
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("dht-node listening") && text.contains("node running")
            || child.try_wait().unwrap().is_some()
            || Instant::now() > deadline
        {
            let _ = child.kill();
            let _ = child.wait();
            return std::fs::read_to_string(&log).unwrap_or_default();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn config_sets_listen_and_k_and_flags_override() {
    let dir = Scratch::new("cfg");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = dir.0.join("node.toml");
    std::fs::write(
        &file,
        format!("listen = [\"127.0.0.1:{port}\"]\nk = 4\nno-bootstrap = true\n"),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let err = node_stderr(&["--config", f, "--log-format", "json"]);
    assert!(err.contains(&format!("addrs=127.0.0.1:{port}")), "{err}");
    // --log-format json: the log lines are JSON objects.
    let json_line = err
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("a JSON log line");
    let v: serde_json::Value = serde_json::from_str(json_line).expect("JSON");
    assert!(v["fields"].is_object(), "{v}");

    // A flag overrides the file's key.
    let port2 = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen2 = format!("127.0.0.1:{port2}");
    let err = node_stderr(&["--config", f, "--listen", &listen2]);
    assert!(err.contains(&format!("addrs={listen2}")), "{err}");
    assert!(!err.contains(&format!(":{port},")), "{err}");

    // k from the file reaches the node: k = 0 is refused by the flag's range.
    std::fs::write(&file, "k = 0\nno-bootstrap = true\n").unwrap();
    let o = Command::new(BIN).args(["--config", f]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));

    // An unknown key is refused with its name.
    std::fs::write(&file, "listen = [\"127.0.0.1:0\"]\nlisten_adress = 3\n").unwrap();
    let o = Command::new(BIN).args(["--config", f]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("listen_adress"),
        "{}",
        describe(&o)
    );

    // The default file parses back and names every node flag.
    let o = Command::new(BIN)
        .args(["config", "--print-default"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    let text = stdout(&o);
    for key in [
        "# listen = ",
        "# k = 8",
        "# http = ",
        "# watch-poll = 30",
        "# data-dir = ",
    ] {
        assert!(text.contains(key), "{key} missing:\n{text}");
    }
    let uncommented: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.contains(" = ") && !l.contains("unset"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&file, uncommented).unwrap();
    let o = Command::new(BIN)
        .args(["--config", f, "config", "--print-default"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the defaults parse back: {}",
        describe(&o)
    );
}

#[test]
fn keygen_survives_a_closed_stdout_and_never_overwrites() {
    let dir = Scratch::new("keygen");
    let key = dir.0.join("k");
    // stdout closed before anything is written: `| head -c0`.
    let mut child = Command::new(BIN)
        .args(["keygen", "--out", key.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(o.stderr.is_empty(), "{}", describe(&o));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // An existing file is never replaced.
    let before = std::fs::read(&key).unwrap();
    let o = Command::new(BIN)
        .args(["keygen", "--out", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", describe(&o));
    assert_eq!(std::fs::read(&key).unwrap(), before);

    // A key path of /dev/zero is refused without reading it all.
    let o = Command::new(BIN)
        .args(["sign", "v", "--key", "/dev/zero", "--seq", "1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("larger than"),
        "{}",
        describe(&o)
    );
}

#[test]
fn a_foreign_data_dir_is_refused_with_any_store() {
    let dir = Scratch::new("foreign");
    std::fs::write(dir.0.join("notes.txt"), "mine").unwrap();
    let o = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--no-bootstrap", "--data-dir"])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a dht data dir"),
        "{}",
        describe(&o)
    );
    assert!(!dir.0.join("node.key").exists());
}

/// A free UDP port on 127.0.0.1 (bound once and released).
fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_flag_overrides_every_file_key_it_conflicts_with() {
    let dir = Scratch::new("cfg-conflict");
    let file = dir.0.join("node.toml");
    let f = file.to_str().unwrap();
    let seed = format!("127.0.0.1:{}", free_port());

    // no-bootstrap in the file, --bootstrap on the line: the node bootstraps.
    let listen = format!("127.0.0.1:{}", free_port());
    std::fs::write(
        &file,
        format!("listen = [\"{listen}\"]\nno-bootstrap = true\n"),
    )
    .unwrap();
    let err = node_stderr(&["--config", f, "--bootstrap", &seed]);
    assert!(err.contains(&format!("addrs={listen}")), "{err}");
    // And the other way round.
    std::fs::write(
        &file,
        format!("listen = [\"{listen}\"]\nbootstrap = [\"{seed}\"]\n"),
    )
    .unwrap();
    let err = node_stderr(&["--config", f, "--no-bootstrap"]);
    assert!(err.contains(&format!("addrs={listen}")), "{err}");

    // Mainline's keys in the file, --overlay chord on the line: a Chord node.
    let data = dir.0.join("data");
    std::fs::write(
        &file,
        format!(
            "listen = [\"{listen}\"]\nno-bootstrap = true\nstore = \"sled\"\ndata-dir = {:?}\n\
             no-local-exemption = true\nread-only = true\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let err = node_stderr(&["--config", f, "--overlay", "chord"]);
    assert!(err.contains("chord node running"), "{err}");
    // overlay = "chord" in the file, a Mainline-only flag on the line: Mainline.
    std::fs::write(
        &file,
        format!("listen = [\"{listen}\"]\nno-bootstrap = true\noverlay = \"chord\"\n"),
    )
    .unwrap();
    let err = node_stderr(&["--config", f, "--no-local-exemption"]);
    assert!(
        err.contains(&format!("addrs={listen}")) && !err.contains("chord"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn a_config_file_that_is_not_a_regular_file_is_refused_at_once() {
    let dir = Scratch::new("cfg-fifo");
    let fifo = dir.0.join("fifo.toml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    for path in [fifo.as_path(), std::path::Path::new("/dev/zero"), &dir.0] {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(path)
            .args(["--listen", "127.0.0.1:0", "--no-bootstrap"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{path:?}: {}", describe(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{path:?}: {err}");
        assert!(err.contains("not a regular file"), "{path:?}: {err}");
    }
}
