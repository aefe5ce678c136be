//! One `dht-ipfs-bench` process: started (pinned to a CPU with taskset, or not), fed
//! lines on its stdin, its stdout read line by line with a deadline; killed when
//! dropped, so that no process outlives the bench, on success or on error.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::Error;

#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Proc {
    /// Starts `bin ARGS`, on CPU `cpu` when given.
    pub fn start(bin: &Path, cpu: Option<usize>, args: &[String]) -> Result<Proc, Error> {
        let mut cmd = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let name = format!("dht-ipfs-bench {}", args.join(" "));
        let mut child = cmd
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error::Failed(format!("ipfs-bench: cannot start {name}: {e}")))?;
        let stdout = child.stdout.take();
        let (tx, lines) = mpsc::channel();
        if let Some(stdout) = stdout {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Proc {
            name,
            stdin: child.stdin.take(),
            child,
            lines,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn send(&mut self, line: &str) -> Result<(), Error> {
        let sent = self
            .stdin
            .as_mut()
            .map(|s| writeln!(s, "{line}").and_then(|()| s.flush()));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(Error::Failed(format!(
                "ipfs-bench: {} stopped reading its commands",
                self.name
            ))),
        }
    }

    /// The rest of the first line starting with `prefix` within `wait`; other lines
    /// are skipped.
    pub fn expect(&mut self, prefix: &str, wait: Duration) -> Result<String, Error> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest.trim().to_string());
                    }
                    if let Some(err) = line.strip_prefix("err ") {
                        return Err(Error::Failed(format!("ipfs-bench: {}: {err}", self.name)));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(Error::Failed(format!(
                        "ipfs-bench: {} did not say `{prefix}` within {:.0} s",
                        self.name,
                        wait.as_secs_f64()
                    )))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::Failed(format!(
                        "ipfs-bench: {} ended before it said `{prefix}` (its stderr is above)",
                        self.name
                    )))
                }
            }
        }
    }

    /// `command` answered by a line starting with `prefix`.
    pub fn ask(&mut self, command: &str, prefix: &str, wait: Duration) -> Result<String, Error> {
        self.send(command)?;
        self.expect(prefix, wait)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Closing stdin ends the servers and the table; a process still running a
        // moment later is killed.
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
