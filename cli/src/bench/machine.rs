//! [`Machine`]: where and from what a bench run ran, so a saved result says which machine it is
//! a baseline for and which commit it measured. Every fact is best-effort: a missing `uname`
//! or `git` leaves a field empty, never fails the run.

use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

/// The machine and the build of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    /// The host's name (`uname -n`): the name a per-machine baseline is kept under.
    pub hostname: Option<String>,
    /// CPUs this process may use.
    pub cpus: usize,
    /// Kernel name and release (`uname -sr`).
    pub kernel: Option<String>,
    /// The CPU architecture snapseal was built for.
    pub arch: String,
    /// snapseal's version.
    pub snapseal: String,
    /// Built without optimisations: its figures say little.
    pub debug_build: bool,
    /// The git commit measured, when known.
    pub commit: Option<String>,
    /// Where [`commit`](Self::commit) came from: `build` (`SNAPSEAL_GIT_COMMIT` set when the
    /// binary was built) or `source tree at run time` (`git rev-parse HEAD` in the directory
    /// it was built from, which may have moved on since: then [`dirty`](Self::dirty) or a
    /// newer commit tells).
    pub commit_from: Option<String>,
    /// The source tree had uncommitted changes to tracked files at run time (only with
    /// `commit_from = "source tree at run time"`).
    pub dirty: Option<bool>,
}

impl Machine {
    /// This machine and build, now.
    pub fn here() -> Machine {
        let uname = |flag: &str| output("uname", &[flag], None);
        let (commit, commit_from, dirty) = match option_env!("SNAPSEAL_GIT_COMMIT") {
            Some(c) if is_commit(c) => (Some(c.to_owned()), Some("build".to_owned()), None),
            _ => {
                let src = Path::new(env!("CARGO_MANIFEST_DIR"));
                match output("git", &["rev-parse", "HEAD"], Some(src)).filter(|c| is_commit(c)) {
                    Some(c) => {
                        // `--porcelain` lists changed tracked files, nothing for a clean tree.
                        let changes = output(
                            "git",
                            &["status", "--porcelain", "--untracked-files=no"],
                            Some(src),
                        );
                        (
                            Some(c),
                            Some("source tree at run time".to_owned()),
                            changes.map(|s| !s.is_empty()),
                        )
                    }
                    None => (None, None, None),
                }
            }
        };
        Machine {
            hostname: uname("-n"),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: uname("-sr"),
            arch: std::env::consts::ARCH.to_owned(),
            snapseal: env!("CARGO_PKG_VERSION").to_owned(),
            debug_build: cfg!(debug_assertions),
            commit,
            commit_from,
            dirty,
        }
    }
}

/// A full hexadecimal object name (SHA-1 or SHA-256).
fn is_commit(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The trimmed stdout of `program args` (in `dir`) when it succeeds with printable text;
/// `None` otherwise (not installed, not a repository, odd output).
fn output(program: &str, args: &[&str], dir: Option<&Path>) -> Option<String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        // git: never take a lock in a tree someone else may be working in.
        .env("GIT_OPTIONAL_LOCKS", "0");
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    // A fact for a file and a terminal: short, and nothing a terminal would interpret.
    (text.len() <= 4096 && !text.chars().any(|c| c.is_control() && c != '\n'))
        .then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_full_hexadecimal_object_name_is_a_commit() {
        assert!(is_commit(&"a".repeat(40)));
        assert!(is_commit(&"0".repeat(64)));
        assert!(!is_commit("abc123"));
        assert!(!is_commit(&"g".repeat(40)));
        assert!(!is_commit(&format!("{}\n", "a".repeat(39))));
    }

    #[test]
    fn a_missing_program_is_no_fact_rather_than_an_error() {
        assert_eq!(output("snapseal-no-such-program", &[], None), None);
    }
}
