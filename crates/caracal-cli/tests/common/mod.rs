//! Helpers shared by the command-line tests that run the built binary.

use std::process::Command;

/// Run `caracal` with `args`: (success, stdout, stderr).
pub fn caracal(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_caracal"))
        .args(args)
        .output()
        .expect("runs");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[allow(dead_code)] // not every test file writes inputs
/// Write `text` to `name` in a per-process temporary folder for the test
/// file `group`, and return the path.
pub fn tmp(group: &str, name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("caracal_{group}_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}
