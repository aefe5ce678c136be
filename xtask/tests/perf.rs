//! `cargo xtask perf` from the outside: its help and its refusal to run without REF, which
//! need no build of anything (the measuring itself is the lead's to run, not a test's).

use std::process::Command;

fn xtask(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("the xtask binary runs")
}

#[test]
fn help_prints_the_usage_and_exits_0() {
    for args in [&["perf", "--help"][..], &["perf", "-h"], &["help", "perf"]] {
        let out = xtask(args);
        assert!(out.status.success(), "{args:?}: {}", out.status);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("cargo xtask perf --against REF"), "{text}");
        assert!(text.contains("--rate-margin"), "{text}");
    }
}

#[test]
fn without_ref_it_is_a_usage_error() {
    for args in [&["perf"][..], &["perf", "--quick"], &["perf", "--against"]] {
        let out = xtask(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cargo xtask perf --help"), "{err}");
    }
    let err = String::from_utf8_lossy(&xtask(&["perf"]).stderr).into_owned();
    assert!(err.contains("--against REF is required"), "{err}");
}
