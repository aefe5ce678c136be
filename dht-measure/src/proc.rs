//! What /proc tells about a process: CPU time and resident memory. Both load generators
//! report how busy they were (was the tool itself the bottleneck?), and `dht-quic-load`
//! reads the target's CPU time and memory too.
//!
//! Read from /proc because std has no getrusage, the workspace forbids unsafe code, and
//! another process's figures are only there anyway. Linux only: elsewhere the readers
//! return `None` or an error and the reports print "unknown".

use std::time::Duration;

/// CPU time (user + system) this process has used so far, all threads together; `None`
/// off Linux.
pub fn process_cpu_time() -> Option<Duration> {
    cpu_time_of("self")
}

/// CPU time (user + system) process `pid` has used, all threads together; `None` off
/// Linux or for a process that is gone.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    cpu_time_of(&pid.to_string())
}

/// Reads `/proc/PID/stat`. Resolution 10 ms.
fn cpu_time_of(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces or ')': count fields after the last ')'.
    let mut rest = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    // utime and stime are fields 14 and 15 of proc(5): the 12th and 13th after the name.
    let user: u64 = rest.nth(11)?.parse().ok()?;
    let system: u64 = rest.next()?.parse().ok()?;
    // In USER_HZ ticks, which Linux fixes at 100 for user space on every architecture.
    Some(Duration::from_millis((user + system).saturating_mul(10)))
}

/// Resident memory of process `pid` in bytes (`VmRSS` of `/proc/PID/status`).
pub fn rss_bytes(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| {
            let kib = line.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?;
            kib.trim().parse::<u64>().ok()
        })
        .map(|kib| kib * 1024)
        .ok_or_else(|| std::io::Error::other(format!("/proc/{pid}/status has no VmRSS line")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_rss_is_read() {
        if cfg!(target_os = "linux") {
            assert!(rss_bytes(std::process::id()).unwrap() > 0);
            assert!(rss_bytes(u32::MAX).is_err());
            assert!(cpu_time(std::process::id()).is_some());
            assert!(process_cpu_time().is_some());
        }
    }

    #[test]
    fn process_cpu_time_grows_with_work() {
        let Some(before) = process_cpu_time() else {
            return; // not Linux
        };
        let spin_until = std::time::Instant::now() + Duration::from_millis(50);
        let mut x = 0u64;
        while std::time::Instant::now() < spin_until {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(process_cpu_time().unwrap() >= before);
    }
}
