//! What the crash tests of both stores share (feature `testing`): a test binary that
//! re-runs itself as a child writing through a store, kills it with SIGKILL, and
//! reads back how far the child got from a side file it appends to, in the style of
//! sled's own crash test.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

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
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_terminator('\n')
        .filter_map(|l| l.parse::<usize>().ok())
        .max()
        .map_or(0, |i| i + 1)
}
