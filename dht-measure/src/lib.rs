//! # dht-measure: how the workspace measures, in one place
//!
//! Two tools that report a p99 must compute it the same way, and a record written by one
//! program and read by another must be one type. This crate holds what the measuring tools
//! share: `cargo xtask load` (UDP), `dht-quic-load` (QUIC), `cargo xtask testnet` and
//! `dht-workload`.
//!
//! - [`Histogram`] and [`quantile`]: the latency histogram (1/64 bucket precision) and the
//!   nearest-rank rule every p50 / p95 / p99 uses.
//! - [`krpc`]: the KRPC query templates the load generators send and the envelope reader
//!   for what comes back.
//! - [`LoadReport`] / [`LoadSummary`]: the figures both load generators print, with the
//!   `--json` field names.
//! - [`proc`]: CPU time and resident memory of a process, from /proc.
//! - `workload` (feature `serde`): the per-operation records of `dht-workload`'s report.
//!
//! Std only, but for serde behind the `serde` feature: xtask builds this crate in release
//! mode on every `cargo xtask`, so it must build in seconds; and it does not depend on
//! dht-core, so that the load generators measure a node from outside. The records live
//! here rather than in dht-workload because a library dependency on dht-workload would
//! bring dht-node and tokio into xtask's build; serde's derive is the one cost xtask pays.

// Every public item says what it is (issue 28); CI turns the warning into an error.
#![warn(missing_docs)]

mod histogram;
pub mod krpc;
pub mod proc;
mod report;
#[cfg(feature = "serde")]
pub mod workload;

pub use histogram::{quantile, Histogram};
pub use report::{cpus, round, LoadReport, LoadSummary};
