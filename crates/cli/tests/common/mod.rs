//! Helpers shared by the CLI's end-to-end tests: run the real binary and check its output.
#![allow(dead_code)] // each test binary uses its own subset

use std::process::{Command, Output};

pub fn lingqiao(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lingqiao"))
        .args(args)
        .output()
        .expect("run lingqiao")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}
