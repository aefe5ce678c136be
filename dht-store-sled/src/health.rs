//! Write failures seen from outside the store: [`WriteHealth`], a handle that a
//! runtime keeps while the store itself moves into the node task, and
//! [`FailureLog`], which says when to log them: when they start, again at most once
//! a minute while they last, and once when they clear, however many puts fail.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often a failure that lasts is logged again.
pub const LOG_FAILURE_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct State {
    /// Why writes are failing now, or `None`.
    failing: Option<String>,
    /// How many times writes started failing (so a failure that started and cleared
    /// between two looks is still seen).
    episodes: u64,
    /// Why they failed the last time.
    last_why: String,
    /// Writes refused since the store was opened.
    refused: u64,
}

/// Whether the store's writes are failing (a full disk, most likely), shared with
/// whoever reports it: [`SledStore::health`](crate::SledStore::health).
#[derive(Clone, Debug, Default)]
pub struct WriteHealth(Arc<Mutex<State>>);

impl WriteHealth {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Why writes are failing, or `None` when the last write and flush succeeded.
    pub fn failure(&self) -> Option<String> {
        self.with(|s| s.failing.clone())
    }

    /// Writes refused (answered with an error) since the store was opened.
    pub fn refused(&self) -> u64 {
        self.with(|s| s.refused)
    }

    pub(crate) fn fail(&self, why: &str) {
        self.with(|s| {
            if s.failing.is_none() {
                s.episodes += 1;
            }
            s.failing = Some(why.to_string());
            why.clone_into(&mut s.last_why);
        });
    }

    pub(crate) fn refuse(&self) {
        self.with(|s| s.refused += 1);
    }

    pub(crate) fn clear(&self) {
        self.with(|s| s.failing = None);
    }
}

/// What [`FailureLog::poll`] says to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// Writes are failing (or failed since the last poll): puts are refused until a
    /// write succeeds again.
    Failing {
        /// The error.
        why: String,
        /// Writes refused since the last report.
        refused: u64,
    },
    /// Writes succeed again.
    Recovered {
        /// Writes refused since the last report.
        refused: u64,
    },
}

/// Rate limit for logging a [`WriteHealth`]: poll it often (every second, say) and
/// log what it returns.
#[derive(Debug)]
pub struct FailureLog {
    health: WriteHealth,
    /// Episodes already reported.
    seen: u64,
    /// Refusals already reported.
    refused: u64,
    /// When a failure was last reported, while it is not reported cleared.
    logged: Option<Instant>,
}

impl FailureLog {
    /// Reports on `health`, from its present state on.
    pub fn new(health: WriteHealth) -> FailureLog {
        let (seen, refused) = health.with(|s| (s.episodes, s.refused));
        FailureLog {
            health,
            seen,
            refused,
            logged: None,
        }
    }

    /// What to log now, if anything: a failure when it starts and then at most every
    /// [`LOG_FAILURE_EVERY`] while it lasts, and its end once.
    pub fn poll(&mut self, now: Instant) -> Option<Report> {
        let (failing, episodes, last_why, refused) = self
            .health
            .with(|s| (s.failing.clone(), s.episodes, s.last_why.clone(), s.refused));
        let new_refusals = refused - self.refused;
        let report = match self.logged {
            // A new failure, even one that already cleared: it is reported now and
            // its end at the next poll.
            None if episodes > self.seen => {
                self.logged = Some(now);
                Some(Report::Failing {
                    why: failing.unwrap_or(last_why),
                    refused: new_refusals,
                })
            }
            None => None,
            Some(_) if failing.is_none() => {
                self.logged = None;
                Some(Report::Recovered {
                    refused: new_refusals,
                })
            }
            Some(at) if now.duration_since(at) >= LOG_FAILURE_EVERY => {
                self.logged = Some(now);
                failing.map(|why| Report::Failing {
                    why,
                    refused: new_refusals,
                })
            }
            Some(_) => None,
        };
        self.seen = episodes;
        if report.is_some() {
            self.refused = refused;
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_when_it_starts_once_a_minute_while_it_lasts_and_when_it_clears() {
        let h = WriteHealth::default();
        let mut log = FailureLog::new(h.clone());
        let t0 = Instant::now();
        assert_eq!(log.poll(t0), None);
        h.fail("No space left on device");
        h.refuse();
        assert_eq!(
            log.poll(t0),
            Some(Report::Failing {
                why: "No space left on device".into(),
                refused: 1
            })
        );
        // Many refused puts and polls within the minute: nothing more.
        for s in 1..60 {
            h.fail("No space left on device");
            h.refuse();
            assert_eq!(log.poll(t0 + Duration::from_secs(s)), None, "at {s} s");
        }
        assert_eq!(
            log.poll(t0 + LOG_FAILURE_EVERY),
            Some(Report::Failing {
                why: "No space left on device".into(),
                refused: 59
            })
        );
        assert_eq!(log.poll(t0 + LOG_FAILURE_EVERY), None);
        h.clear();
        assert_eq!(
            log.poll(t0 + LOG_FAILURE_EVERY + Duration::from_secs(1)),
            Some(Report::Recovered { refused: 0 })
        );
        assert_eq!(log.poll(t0 + 3 * LOG_FAILURE_EVERY), None);
    }

    #[test]
    fn a_failure_that_cleared_between_polls_is_still_reported() {
        let h = WriteHealth::default();
        let mut log = FailureLog::new(h.clone());
        let t0 = Instant::now();
        h.fail("EIO");
        h.clear();
        assert_eq!(
            log.poll(t0),
            Some(Report::Failing {
                why: "EIO".into(),
                refused: 0
            })
        );
        assert_eq!(log.poll(t0), Some(Report::Recovered { refused: 0 }));
        assert_eq!(log.poll(t0), None);
    }
}
