//! The production `snapseal` binary ships no simulator: neither `snapseal-sim` nor persist's
//! simulated filesystem (its `sim` feature) is among the command's normal dependencies, not
//! even transitively. Dev-dependencies may use both (they only build tests).
//!
//! The same check as a shell line (CI):
//! `! cargo tree -p snapseal-cli -e normal,features --prefix none --offline | grep -E '^snapseal-sim |^snapseal-persist .*feature "sim"'`

use std::path::Path;
use std::process::Command;

/// `cargo tree` of the command's normal dependencies with their features, one per line.
fn normal_dependency_tree() -> String {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let out = Command::new(cargo)
        .args(["tree", "-p", "snapseal-cli", "-e", "normal,features"])
        .args(["--prefix", "none", "--offline", "--manifest-path"])
        .arg(&workspace)
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("cargo tree prints UTF-8")
}

#[test]
fn the_snapseal_command_depends_on_neither_the_simulator_nor_the_simulated_filesystem() {
    let tree = normal_dependency_tree();
    assert!(
        tree.lines().any(|l| l.starts_with("snapseal-ledger ")),
        "the tree lists the command's dependencies (the reference ledger among them):\n{tree}"
    );
    let offending: Vec<&str> = tree
        .lines()
        .filter(|l| {
            l.starts_with("snapseal-sim ")
                || (l.starts_with("snapseal-persist ") && l.contains("feature \"sim\""))
        })
        .collect();
    assert!(
        offending.is_empty(),
        "the snapseal binary pulls in the simulator: {offending:?}"
    );
}
