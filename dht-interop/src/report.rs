//! The interop matrix: one cell per check (who put, who stored or got, what), printed
//! as a table and as one JSON line.

use serde_json::json;

/// How a cell ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The check held.
    Pass,
    /// The check failed: counted in `failed`, the run exits non-zero.
    Fail(String),
    /// Failed as a documented quirk of another implementation predicts (see
    /// docs/INTEROP.md); shown, not counted as failed.
    Quirk(String),
    /// The implementation could not run here (why): never a pass. The runner decides
    /// whether that fails the run (the IPFS matrix: when node and npm are present).
    Missing(String),
}

/// One check of the matrix.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The implementation that put or announced.
    pub putter: String,
    /// The implementation that stored it (`stored_*` checks) or looked it up.
    pub getter: String,
    /// `stored_immutable`, `stored_mutable`, `stored_peer`, `get_immutable`,
    /// `get_mutable`, `get_peers`, or `put_*` / `announce` for the write itself.
    pub check: String,
    /// The result.
    pub outcome: Outcome,
}

impl Cell {
    fn mark(&self) -> &'static str {
        match self.outcome {
            Outcome::Pass => "ok",
            Outcome::Fail(_) => "FAIL",
            Outcome::Quirk(_) => "quirk",
            Outcome::Missing(_) => "missing",
        }
    }
}

/// Prints one table per check kind: rows putters, columns getters.
pub fn print_matrix(impls: &[String], cells: &[Cell]) {
    print_matrix_with(impls, cells, |_| "rows: putter, columns: storer or getter");
}

/// As [`print_matrix`], with each check's legend (what its rows and columns are).
pub fn print_matrix_with(impls: &[String], cells: &[Cell], legend: impl Fn(&str) -> &'static str) {
    let mut checks: Vec<&str> = Vec::new();
    for c in cells {
        if !checks.contains(&c.check.as_str()) {
            checks.push(&c.check);
        }
    }
    let width = impls.iter().map(String::len).max().unwrap_or(4).max(8) + 2;
    for check in checks {
        println!("\n{check} ({})", legend(check));
        print!("{:width$}", "");
        for g in impls {
            print!("{g:>width$}");
        }
        println!();
        for p in impls {
            print!("{p:width$}");
            for g in impls {
                let mark = cells
                    .iter()
                    .find(|c| c.check == check && &c.putter == p && &c.getter == g)
                    .map_or("-", Cell::mark);
                print!("{mark:>width$}");
            }
            println!();
        }
    }
    let notes: Vec<&Cell> = cells
        .iter()
        .filter(|c| c.outcome != Outcome::Pass)
        .collect();
    if !notes.is_empty() {
        println!();
    }
    let mut missing_told: Vec<&str> = Vec::new();
    for c in notes {
        // One line per missing implementation, not one per cell it would have filled.
        if let Outcome::Missing(why) = &c.outcome {
            if missing_told.contains(&why.as_str()) {
                continue;
            }
            missing_told.push(why);
            println!("missing: {why}");
            continue;
        }
        let why = match &c.outcome {
            Outcome::Fail(w) | Outcome::Quirk(w) | Outcome::Missing(w) => w,
            Outcome::Pass => "",
        };
        println!(
            "{:5} {} by {} / {}: {why}",
            c.mark(),
            c.check,
            c.putter,
            c.getter
        );
    }
}

/// Cells counted as failed.
pub fn failed(cells: &[Cell]) -> usize {
    cells
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Fail(_)))
        .count()
}

/// The one JSON line of `--json`.
pub fn json_line(impls: &[String], missing: &[String], cells: &[Cell]) -> String {
    let cells: Vec<_> = cells
        .iter()
        .map(|c| {
            let (result, detail) = match &c.outcome {
                Outcome::Pass => ("pass", String::new()),
                Outcome::Fail(w) => ("fail", w.clone()),
                Outcome::Quirk(w) => ("quirk", w.clone()),
                Outcome::Missing(w) => ("missing", w.clone()),
            };
            json!({
                "putter": c.putter,
                "getter": c.getter,
                "check": c.check,
                "result": result,
                "detail": detail,
            })
        })
        .collect();
    let failed = cells.iter().filter(|c| c["result"] == "fail").count();
    json!({
        "implementations": impls,
        "missing": missing,
        "cells": cells,
        "failed": failed,
    })
    .to_string()
}
