//! The command line: help and version, and one readable line with a
//! non-zero exit for every bad flag or config value.

use std::process::Command;

fn sluice(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn version_and_help() {
    let (code, out, _) = sluice(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("sluice "), "{out}");
    let (code, out, _) = sluice(&["serve", "--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--listen",
        "--advertised-listener",
        "--data-dir",
        "--node-id",
        "--auto-create-topics",
        "--num-partitions",
        "--log-level",
        "--config",
    ] {
        assert!(out.contains(flag), "help lists {flag}");
    }
}

fn assert_one_line_error(args: &[&str], mentions: &str) {
    let (code, _, err) = sluice(args);
    assert_eq!(code, 2, "{args:?} exits 2; stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line, got {err:?}");
    assert!(err.contains(mentions), "{args:?}: {err:?} names {mentions}");
}

#[test]
fn bad_flags_and_values_are_one_line_errors() {
    assert_one_line_error(&["serve", "--no-such-flag"], "--no-such-flag");
    assert_one_line_error(&["serve", "--num-partitions", "many"], "--num-partitions");
    assert_one_line_error(&["serve", "--num-partitions", "0"], "num-partitions");
    assert_one_line_error(&["serve", "--auto-create-topics", "maybe"], "--auto-create-topics");
    assert_one_line_error(&["serve", "--listen", "localhost"], "listen");
    assert_one_line_error(&["serve", "--log-level", "sluice=loud"], "log-level");
    assert_one_line_error(&["serve", "--config", "/nonexistent/sluice.toml"], "/nonexistent/sluice.toml");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "node-id = \"seven\"\n").unwrap();
    assert_one_line_error(&["serve", "--config", path.to_str().unwrap()], "node-id");
}

#[test]
fn env_vars_configure_like_flags() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_sluice")).args(["serve"]).env("SLUICE_NUM_PARTITIONS", "-4").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("num-partitions"));
}

#[test]
fn unusable_data_dir_is_one_line_and_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let (code, _, err) = sluice(&["serve", "--listen", "127.0.0.1:0", "--data-dir", file.to_str().unwrap()]);
    assert_ne!(code, 0);
    let last = err.trim_end().lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("sluice: cannot open data directory"), "{err}");
}
