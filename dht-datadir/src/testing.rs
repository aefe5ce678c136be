//! What the tests of both stores share (feature `testing`). The crash tests: a test
//! binary that re-runs itself as a child writing through a store, kills it with
//! SIGKILL, and reads back how far the child got from a side file it appends to, in
//! the style of sled's own crash test. The open tests: a data dir damaged as a crash,
//! a bug or a bit flip would. The full-disk tests: a store filled until it refuses.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::db::db_path;

/// Whether this process is a child started by [`rerun`]: one of the environment
/// variables `roles` (one per child role) is set. The parent's tests return at once
/// in a child, which only plays its role.
pub fn is_child(roles: &[&str]) -> bool {
    roles.iter().any(|role| std::env::var(role).is_ok())
}

/// The environment variable `name` parsed, or `default` when it is unset or does not
/// parse (`DHT_CRASH_CYCLES`, `DHT_CRASH_SEED`).
pub fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// This test binary again, to run only the test `test` (a child role, which reads the
/// environment the caller adds), its output discarded.
///
/// # Panics
/// When the path of the running binary is unknown.
pub fn rerun(test: &str) -> Command {
    let mut child = Command::new(std::env::current_exe().expect("the test binary's path"));
    child
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    child
}

/// Lets `child` run for `run_for`, then kills it with SIGKILL. `ctx` names the cycle
/// in the failure.
///
/// # Panics
/// When the child had already stopped by itself with a failure.
pub fn kill_after(child: &mut Child, run_for: Duration, ctx: &str) {
    std::thread::sleep(run_for);
    let still_running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        still_running || status.success(),
        "{ctx}: the child failed on its own: {status}"
    );
}

/// Waits until `ready` (the child says it is done, through a file), checking every
/// 5 ms, then lets the child run 1 s more (the documented durability bound) and kills
/// it with SIGKILL.
///
/// # Panics
/// When the child dies first or is not ready within 60 s: "the child never {what}".
pub fn kill_one_second_after(child: &mut Child, what: &str, mut ready: impl FnMut() -> bool) {
    let waiting = Instant::now();
    while !ready() {
        assert!(
            waiting.elapsed() < Duration::from_secs(60),
            "the child never {what}"
        );
        assert!(child.try_wait().unwrap().is_none(), "the child died");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_secs(1));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// How many of the child's operations it recorded as done in `path`, where it
/// appends the index of each, one a line: one more than the largest index, 0 when
/// there is none (or no file). A last line that the kill cut before its newline
/// counts: its index was written in one piece, after the operation was done.
pub fn operations_recorded(path: &Path) -> usize {
    fs::read_to_string(path)
        .unwrap_or_default()
        .split_terminator('\n')
        .filter_map(|l| l.parse::<usize>().ok())
        .max()
        .map_or(0, |i| i + 1)
}

/// The sled log of the data dir `dir` (`DIR/db/db`): what a crash tears and a bit
/// flip scribbles on.
pub fn log_path(dir: &Path) -> PathBuf {
    db_path(dir).join("db")
}

/// Cuts the sled log of the data dir `dir` to `quarters`/4 of its length, as a lost
/// tail would.
///
/// # Panics
/// When the log cannot be cut: the test cannot go on.
pub fn truncate_log(dir: &Path, quarters: u64) {
    let log = log_path(dir);
    let len = fs::metadata(&log).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len(len * quarters / 4).unwrap();
}

/// Sets `key` to `value` in the tree `tree` of the (closed) store's database in `dir`
/// through sled itself, as a bug or a bit flip might.
///
/// # Panics
/// When sled cannot write it: the test cannot go on.
pub fn write_raw(dir: &Path, tree: &str, key: &[u8], value: &[u8]) {
    let db = sled::open(db_path(dir)).unwrap();
    db.open_tree(tree).unwrap().insert(key, value).unwrap();
    db.flush().unwrap();
}

/// Empties the tree `tree` of the (closed) store's database in `dir` through sled
/// itself, as a crash between two writes could leave an index.
///
/// # Panics
/// When sled cannot write it: the test cannot go on.
pub fn clear_tree(dir: &Path, tree: &str) {
    let db = sled::open(db_path(dir)).unwrap();
    db.open_tree(tree).unwrap().clear().unwrap();
    db.flush().unwrap();
}

/// Leaves a torn `snap.<lsn>.generating` in the database of `dir`, as a process
/// killed while sled wrote a snapshot does, with the highest lsn so that it sorts
/// last, as the newest snapshot would; its path.
///
/// # Panics
/// When it cannot be written: the test cannot go on.
pub fn plant_torn_snapshot(dir: &Path) -> PathBuf {
    let snap = db_path(dir).join("snap.7FFFFFFFFFFFFFFF.generating");
    fs::write(&snap, [0xde; 40]).unwrap();
    snap
}

/// The names of the files in `dir`.
///
/// # Panics
/// When `dir` cannot be read.
pub fn file_names(dir: &Path) -> Vec<OsString> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect()
}

/// Writes with `put(i)` for `i` = 0, 1, ... into a store on a 3 MB [`Tmpfs`](crate::tmpfs::Tmpfs)
/// until 20 writes were refused (the disk is full: all refused from the first on), at
/// most 20,000; the `i` whose writes were accepted.
///
/// # Panics
/// When the disk never filled, fewer than 100 writes were accepted, or one was
/// accepted after one was refused.
pub fn fill_until_refused(mut put: impl FnMut(u32) -> bool) -> Vec<u32> {
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..20_000 {
        if put(i) {
            accepted.push(i);
        } else {
            refused += 1;
            // A few more after the first refusal: all refused while the disk is full.
            if refused == 20 {
                break;
            }
        }
    }
    assert!(refused > 0, "3 MB never filled");
    assert!(
        accepted.len() > 100,
        "only {} puts accepted",
        accepted.len()
    );
    assert!(
        accepted.iter().enumerate().all(|(n, i)| *i == n as u32),
        "a put accepted after one was refused"
    );
    accepted
}
