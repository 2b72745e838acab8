//! The node processes: start, kill -9, pause and resume, stop; each node's stderr and stdout
//! go to its log file in the run's directory (appended across restarts).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// How every node is started.
pub(crate) struct Launcher {
    pub(crate) bin: PathBuf,
    pub(crate) remote: String,
    pub(crate) remote_opts: Vec<String>,
    pub(crate) snapshot_every: u64,
    pub(crate) keep_logs: u64,
    pub(crate) key_seed_hex: String,
    pub(crate) logs: PathBuf,
}

/// One node (one id: a rejoined node gets a new one).
pub(crate) struct Node {
    pub(crate) id: u64,
    pub(crate) addr: SocketAddr,
    pub(crate) dir: PathBuf,
    pub(crate) routes: PathBuf,
    pub(crate) child: Option<Child>,
    pub(crate) paused: bool,
}

impl Node {
    pub(crate) fn pid(&self) -> Option<Pid> {
        let raw = self.child.as_ref()?.id()?;
        i32::try_from(raw).ok().map(Pid::from_raw)
    }

    /// Whether the process is running (a child that exited is reaped and forgotten).
    pub(crate) fn running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_))) | Some(Err(_)) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    pub(crate) fn log_file(&self, launcher: &Launcher) -> PathBuf {
        launcher.logs.join(format!("node-{}.log", self.id))
    }
}

impl Launcher {
    /// Starts `node`'s process.
    pub(crate) fn start(
        &self,
        node: &mut Node,
        restore: bool,
        bootstrap: Option<&str>,
    ) -> Result<()> {
        let log_path = node.log_file(self);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            // A link or FIFO planted in the run directory is refused, never followed or
            // blocked on: the name is ours to append to, nothing else.
            .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let log2 = log.try_clone().context("duplicating the log fd")?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("node")
            .arg("--id")
            .arg(node.id.to_string())
            .arg("--listen")
            .arg(node.addr.to_string())
            .arg("--dir")
            .arg(&node.dir)
            .arg("--remote")
            .arg(&self.remote)
            .arg("--routes")
            .arg(&node.routes)
            .arg("--snapshot-every")
            .arg(self.snapshot_every.to_string())
            .arg("--keep-logs")
            .arg(self.keep_logs.to_string())
            .arg("--key-seed")
            .arg(&self.key_seed_hex);
        for opt in &self.remote_opts {
            cmd.arg("--remote-opt").arg(opt);
        }
        if restore {
            cmd.arg("--restore");
        }
        if let Some(b) = bootstrap {
            cmd.arg("--bootstrap").arg(b);
        }
        // The pipe's other end is the driver's (kept in the `Child`): if the driver dies, even
        // by SIGKILL, the node sees its stdin end and stops instead of running on orphaned.
        cmd.arg("--stop-with-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .kill_on_drop(true);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {} for node {}", self.bin.display(), node.id))?;
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }
}

/// Sends `sig` to `node`'s process, if it runs.
pub(crate) fn signal(node: &Node, sig: Signal) {
    if let Some(pid) = node.pid() {
        // ESRCH: it exited meanwhile; the next `running` reaps it.
        let _ = kill(pid, sig);
    }
}

/// kill -9, and reap it (bounded).
pub(crate) async fn kill9(node: &mut Node) {
    signal(node, Signal::SIGKILL);
    if let Some(child) = node.child.as_mut() {
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    }
    node.child = None;
    node.paused = false;
}

/// SIGTERM (after SIGCONT, so a paused node can act on it), a bounded wait, then SIGKILL.
/// Returns the exit status code if it exited on its own.
pub(crate) async fn stop(node: &mut Node) -> Option<i32> {
    signal(node, Signal::SIGCONT);
    signal(node, Signal::SIGTERM);
    let mut code = None;
    if let Some(child) = node.child.as_mut() {
        match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
            Ok(Ok(status)) => code = status.code(),
            _ => {
                let _ = child.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            }
        }
    }
    node.child = None;
    node.paused = false;
    code
}

/// A free loopback port (bound and released: another process could take it in between, which
/// only makes a node fail to start, and the driver reports that).
pub(crate) fn free_addr() -> Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    l.local_addr().context("finding a free port")
}

/// The bootstrap argument: `1=ADDR,2=ADDR,...`.
pub(crate) fn bootstrap_arg(nodes: &BTreeMap<u64, Node>) -> String {
    nodes
        .values()
        .map(|n| format!("{}={}", n.id, n.addr))
        .collect::<Vec<_>>()
        .join(",")
}

/// Why the run has no mount namespace of its own, once [`private_mounts`] ran (`None`: it
/// has one).
static NOT_PRIVATE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Moves this process into a mount namespace of its own whose mounts do not propagate back,
/// so the tmpfs [`mount_tmpfs`] makes is seen only by this run and its node processes, and
/// goes away with the last of them even when the run is killed before [`unmount`] (a
/// `SIGKILL` left it mounted on the host). Call it before any thread starts: `unshare`
/// refuses a process with several. When it cannot (no root, no `CAP_SYS_ADMIN`),
/// [`mount_tmpfs`] says why and mounts nothing.
pub(crate) fn private_mounts() {
    let _ = NOT_PRIVATE.set(enter_private_mounts().err());
}

fn enter_private_mounts() -> Result<(), String> {
    use nix::mount::{mount, MsFlags};
    use nix::sched::{unshare, CloneFlags};
    if !nix::unistd::geteuid().is_root() {
        return Err("not running as root: no tmpfs can be mounted".into());
    }
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
    // The new namespace copies the host's mounts with their propagation: a shared `/` (as
    // systemd makes it) would still carry the tmpfs back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making / private in the run's mount namespace: {e}"))
}

/// Mounts a small tmpfs at `dir` (the full-disk fault's node), or says why not.
pub(crate) fn mount_tmpfs(dir: &Path, bytes: u64) -> Result<(), String> {
    use nix::mount::{mount, MsFlags};
    // Mounted on the host, it would outlive a killed run.
    match NOT_PRIVATE.get() {
        Some(None) => {}
        Some(Some(why)) => return Err(format!("no mount namespace of the run's own: {why}")),
        None => {
            return Err("no mount namespace of the run's own: private_mounts() not called".into())
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let opts = format!("size={bytes}");
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(opts.as_str()),
    )
    .map_err(|e| format!("mounting a tmpfs at {}: {e}", dir.display()))
}

/// Unmounts what [`mount_tmpfs`] mounted (lazily, so a straggling process cannot keep it).
pub(crate) fn unmount(dir: &Path) {
    let _ = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH);
}

/// Fills the filesystem holding `dir` with a file `dir/chaos-fill` until it is full (bounded).
/// Returns the bytes written.
pub(crate) fn fill(dir: &Path, max_bytes: u64) -> u64 {
    use std::io::Write;
    let Ok(mut f) = std::fs::File::create(dir.join("chaos-fill")) else {
        return 0;
    };
    let chunk = vec![0xa5u8; 1 << 20];
    let mut written = 0u64;
    while written < max_bytes {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    // Without a sync the pages are already charged to the tmpfs; on another fs it pushes them.
    let _ = f.sync_all();
    written
}

/// Frees what [`fill`] took.
pub(crate) fn unfill(dir: &Path) {
    let _ = std::fs::remove_file(dir.join("chaos-fill"));
}
