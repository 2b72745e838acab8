//! Power loss on a real filesystem: the demo writes into an ext4 image
//! mounted through a loop device, and at a random instant the test cuts the power the way
//! ext4 itself can: `EXT4_IOC_SHUTDOWN` with `EXT4_GOING_FLAGS_NOLOGFLUSH`, which stops the
//! filesystem at once without flushing its journal, so everything not yet made durable is
//! lost, exactly as if the machine had died. Then: kill the (now failing) demo, unmount,
//! mount again (the journal is replayed, as at boot), and check the crash contract (see
//! `support`) plus one thing only a power cut can break: every `committed.log` line
//! that had been fsynced before the cut is still there. The demo writes a line and fsyncs it
//! before writing the next, so of the lines visible just before the cut all but the last
//! were fsynced. After each round `e2fsck -fn` must find the filesystem clean; the next round
//! resumes in the same directory.
//!
//! Needs root, `losetup`, `mkfs.ext4`, `mount`/`umount` (and `e2fsck`, optional), and a
//! kernel that honours the ioctl. Where any of that is missing the test prints
//! `ext4_crash: SKIPPED (did not run): <reason>` and passes *as skipped*;
//! `SNAPSEAL_EXT4_REQUIRED=1` turns a skip into a failure (for machines that must run it).
//! `SNAPSEAL_EXT4_ROUNDS` (default 4), `SNAPSEAL_EXT4_SEED` and `SNAPSEAL_CRASH_SPILL` as
//! for the kill test. Mounts
//! and loop devices are always released, also when the test fails.

// The shutdown ioctl and geteuid are libc calls (each block says why it is sound).
#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{alone, env_u64, inspect, keep_for_debugging, read_log, say};
use crate::support::{seed_from_env, wait_for_write, Demo, Figures, History, Rng, Shape};

/// `_IOR(type, nr, size)` of the Linux ioctl encoding: direction "read" (2) in bits 30-31,
/// the argument size in bits 16-29, the type in bits 8-15, the number in bits 0-7.
const fn ior(ty: u8, nr: u8, size: u64) -> u64 {
    (2 << 30) | (size << 16) | ((ty as u64) << 8) | nr as u64
}

/// `EXT4_IOC_SHUTDOWN = _IOR('X', 125, __u32)` (linux/fs/ext4/ext4.h).
const EXT4_IOC_SHUTDOWN: u64 = ior(b'X', 125, 4);
/// Shut down without flushing the journal: what a power cut does.
const EXT4_GOING_FLAGS_NOLOGFLUSH: u32 = 2;

/// Size of the sparse image: ample for a few snapshots, spilled ones (60 MB) included.
const IMAGE_BYTES: u64 = 1 << 30;

/// A stuck run is a failure, not a test that never ends.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// Why the test cannot run here.
#[derive(Debug)]
struct Skip(String);

/// The external tools, found on PATH or in the sbin directories (not always on a user's PATH).
#[derive(Debug)]
struct Tools {
    losetup: PathBuf,
    mkfs: PathBuf,
    mount: PathBuf,
    umount: PathBuf,
    e2fsck: Option<PathBuf>,
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

impl Tools {
    fn find() -> Result<Tools, Skip> {
        let need = |name: &str| {
            find_tool(name).ok_or_else(|| {
                Skip(format!(
                    "`{name}` not found (Debian packages: mount, e2fsprogs, util-linux)"
                ))
            })
        };
        Ok(Tools {
            losetup: need("losetup")?,
            mkfs: need("mkfs.ext4")?,
            mount: need("mount")?,
            umount: need("umount")?,
            e2fsck: find_tool("e2fsck"),
        })
    }
}

/// Runs a tool; its stdout, or an error carrying the command and its stderr.
fn run<S: AsRef<OsStr>>(tool: &Path, args: &[S]) -> Result<String, String> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", tool.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        let shown: Vec<String> = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        Err(format!(
            "`{} {}` failed ({}): {}",
            tool.display(),
            shown.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// An attached loop device; detached on drop.
#[derive(Debug)]
struct LoopDevice {
    dev: String,
    losetup: PathBuf,
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if let Err(e) = run(&self.losetup, &["-d", self.dev.as_str()]) {
            say(&format!("ext4_crash: cleanup: {e}"));
        }
    }
}

/// A mounted filesystem; unmounted on drop (lazily, as a last resort, so a failing test
/// never leaves a mount behind that blocks the loop device's release).
#[derive(Debug)]
struct Mounted {
    point: PathBuf,
    umount: PathBuf,
}

impl Mounted {
    /// Unmounts; on failure the drop retries (then unmounts lazily).
    fn unmount(mut self) -> Result<(), String> {
        run(&self.umount, &[&self.point])?;
        self.point = PathBuf::new();
        Ok(())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.point.as_os_str().is_empty() {
            return;
        }
        if run(&self.umount, &[&self.point]).is_err() {
            std::thread::sleep(Duration::from_millis(200));
            if let Err(e) = run(&self.umount, &[&self.point]) {
                say(&format!("ext4_crash: cleanup: {e}; unmounting lazily"));
                let lazy = [OsStr::new("-l"), self.point.as_os_str()];
                let _ = run(&self.umount, &lazy);
            }
        }
    }
}

/// The ext4 image, its loop device and its mount. Field order is drop order: unmount first,
/// then detach.
#[derive(Debug)]
struct Ext4 {
    mounted: Option<Mounted>,
    device: LoopDevice,
    point: PathBuf,
    tools: Tools,
}

/// Cuts the power: `EXT4_IOC_SHUTDOWN` with `NOLOGFLUSH` on the filesystem holding `point`.
fn shut_down(point: &Path) -> io::Result<()> {
    let dir = std::fs::File::open(point)?;
    let flags: u32 = EXT4_GOING_FLAGS_NOLOGFLUSH;
    // SAFETY: the fd is open for the whole call, and the kernel reads exactly one u32 through
    // the pointer, which points at a live local.
    let rc = unsafe {
        nix::libc::ioctl(
            dir.as_raw_fd(),
            EXT4_IOC_SHUTDOWN as _,
            &flags as *const u32,
        )
    };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Ext4 {
    /// Image, mkfs, loop device, mount, and a probe that the shutdown ioctl really cuts the
    /// filesystem off (writes fail after it) and that fsynced data survives it.
    fn set_up(scratch: &Path) -> Result<Ext4, Skip> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { nix::libc::geteuid() } != 0 {
            return Err(Skip("not root (loop devices and mounts need root)".into()));
        }
        let tools = Tools::find()?;
        let image = scratch.join("ext4.img");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(IMAGE_BYTES))
            .map_err(|e| Skip(format!("creating the image {}: {e}", image.display())))?;
        run(
            &tools.mkfs,
            &[OsStr::new("-q"), OsStr::new("-F"), image.as_os_str()],
        )
        .map_err(Skip)?;
        let dev = run(
            &tools.losetup,
            &[OsStr::new("-f"), OsStr::new("--show"), image.as_os_str()],
        )
        .map_err(|e| Skip(format!("no loop device: {e}")))?;
        let device = LoopDevice {
            dev,
            losetup: tools.losetup.clone(),
        };
        let point = scratch.join("mnt");
        std::fs::create_dir_all(&point)
            .map_err(|e| Skip(format!("creating {}: {e}", point.display())))?;
        let mut fs = Ext4 {
            mounted: None,
            device,
            point,
            tools,
        };
        fs.mount().map_err(|e| Skip(format!("cannot mount: {e}")))?;
        fs.probe().map_err(Skip)?;
        Ok(fs)
    }

    fn mount(&mut self) -> Result<(), String> {
        run(
            &self.tools.mount,
            &[
                OsStr::new("-t"),
                OsStr::new("ext4"),
                OsStr::new("-o"),
                OsStr::new("data=ordered"),
                OsStr::new(&self.device.dev),
                self.point.as_os_str(),
            ],
        )?;
        self.mounted = Some(Mounted {
            point: self.point.clone(),
            umount: self.tools.umount.clone(),
        });
        Ok(())
    }

    fn unmount(&mut self) -> Result<(), String> {
        match self.mounted.take() {
            Some(m) => m.unmount(),
            None => Ok(()),
        }
    }

    /// Unmount and mount again: the journal replay a reboot would do.
    fn remount(&mut self) -> Result<(), String> {
        self.unmount()?;
        self.mount()
    }

    /// Unmount, `e2fsck -fn` (forced, read-only), mount again. `Ok(false)`: no e2fsck.
    fn fsck(&mut self) -> Result<bool, String> {
        let Some(e2fsck) = self.tools.e2fsck.clone() else {
            return Ok(false);
        };
        self.unmount()?;
        let checked = run(&e2fsck, &["-fn", self.device.dev.as_str()]);
        self.mount()?;
        checked.map(|_| true)
    }

    fn probe(&mut self) -> Result<(), String> {
        let synced = self.point.join("probe-synced");
        let write_synced = || -> io::Result<()> {
            std::fs::write(&synced, b"durable")?;
            std::fs::File::open(&synced)?.sync_all()?;
            std::fs::File::open(&self.point)?.sync_all()
        };
        write_synced().map_err(|e| format!("probe write on the fresh ext4: {e}"))?;
        if let Err(e) = shut_down(&self.point) {
            return Err(format!(
                "the EXT4_IOC_SHUTDOWN ioctl was refused ({e}); cannot simulate power loss"
            ));
        }
        if std::fs::write(self.point.join("probe-after"), b"x").is_ok() {
            return Err(
                "a write still succeeded after EXT4_IOC_SHUTDOWN: the ioctl did not \
                        cut the filesystem off, so it cannot simulate power loss"
                    .into(),
            );
        }
        self.remount()?;
        match std::fs::read(&synced) {
            Ok(b) if b == b"durable" => {}
            other => {
                return Err(format!(
                    "fsynced probe data did not survive the shutdown: {other:?}"
                ))
            }
        }
        std::fs::remove_file(&synced).map_err(|e| format!("removing the probe: {e}"))?;
        let _ = std::fs::remove_file(self.point.join("probe-after"));
        Ok(())
    }
}

#[test]
fn power_loss_on_ext4_never_breaks_a_committed_file_or_loses_an_fsynced_acknowledgement() {
    let _alone = alone();
    let required = env_u64("SNAPSEAL_EXT4_REQUIRED", 0) == 1;
    // Declared before the filesystem, so dropped after it: unmount and detach come first.
    let tmp = tempfile::tempdir().unwrap();
    let mut fs = match Ext4::set_up(tmp.path()) {
        Ok(fs) => fs,
        Err(Skip(reason)) => {
            assert!(!required, "SNAPSEAL_EXT4_REQUIRED=1, but: {reason}");
            say(&format!("ext4_crash: SKIPPED (did not run): {reason}"));
            return;
        }
    };
    let seed = seed_from_env("SNAPSEAL_EXT4_SEED");
    let rounds = env_u64("SNAPSEAL_EXT4_ROUNDS", 4);
    let mut rng = Rng::new(seed);
    let demo = Demo::new(
        tmp.path(),
        fs.point.join("snap"),
        rng.between(1, 1_000),
        3,
        Shape::from_env(),
    );

    let calibration = Demo {
        dir: fs.point.join("calibration"),
        ..demo.clone()
    };
    let started = Instant::now();
    let ended = calibration.spawn(demo.txs).wait(RUN_LIMIT);
    let full_run = started.elapsed();
    assert!(
        ended.status.success(),
        "calibration run:\n{}",
        ended.output()
    );
    std::fs::remove_dir_all(&calibration.dir).unwrap();
    let max_ms = (full_run.as_millis() as u64).max(50);
    say(&format!(
        "ext4_crash: ext4 on {} (data=ordered); seed {seed} (demo seed {}, {:?} state), {rounds} rounds, \
         power cuts uniform in 0..={max_ms} ms or mid-write; repeat: SNAPSEAL_EXT4_SEED={seed} \
         SNAPSEAL_EXT4_ROUNDS={rounds} cargo test --test crash ext4_crash",
        fs.device.dev, demo.seed, demo.shape
    ));

    let mut history = History::default();
    let mut figures = Figures::default();
    let (mut saw_eio, mut fscks, mut fsynced_lines_checked) = (0u64, 0u64, 0usize);
    for round in 1..=rounds {
        let mid_write = rng.next() % 2 == 1;
        let delay = Duration::from_millis(rng.between(0, max_ms));
        let lag = Duration::from_micros(rng.between(0, 5_000));
        let after_cut = Duration::from_millis(rng.between(0, 20));
        let child = demo.spawn(demo.txs);
        let how = if mid_write {
            let seen = wait_for_write(&demo.dir, &history.stale, full_run * 2, lag);
            format!("mid-write (seen {seen}, then {lag:?})")
        } else {
            std::thread::sleep(delay);
            format!("after {delay:?}")
        };
        // Every line visible now but the last had its fsync return before this instant.
        let before_cut = read_log(&demo.dir).unwrap_or_default();
        shut_down(&fs.point).unwrap_or_else(|e| panic!("round {round}: shutdown ioctl: {e}"));
        // Let the demo run into the dead filesystem before it is killed.
        std::thread::sleep(after_cut);
        let ended = child.kill();
        fs.remount()
            .unwrap_or_else(|e| panic!("round {round}: remount after the cut: {e}"));
        let state = inspect(&demo);
        let mut violations = history.round(&state, &ended, true, &mut figures);
        let fsynced = before_cut.lines.len().saturating_sub(1);
        fsynced_lines_checked += fsynced;
        let survived = state
            .log
            .lines
            .iter()
            .zip(&before_cut.lines[..fsynced])
            .take_while(|(now, then)| now.text == then.text)
            .count();
        if survived < fsynced {
            violations.push(format!(
                "committed.log lost fsynced acknowledgements: {fsynced} line(s) were fsynced \
                 before the cut, only the first {survived} survived"
            ));
        }
        if ended
            .stderr
            .iter()
            .any(|l| l.contains("Input/output error") || l.contains("os error 5"))
        {
            saw_eio += 1;
        }
        match fs.fsck() {
            Ok(true) => fscks += 1,
            Ok(false) => {}
            Err(e) => violations.push(format!("the filesystem is not clean after the cut: {e}")),
        }
        if !violations.is_empty() {
            let kept = keep_for_debugging(&demo.dir, "ext4");
            panic!(
                "round {round} (seed {seed}, power cut {how}): {} violation(s):\n  {}\n\
                 directory copied to {}\nchild stderr:\n{}",
                violations.len(),
                violations.join("\n  "),
                kept.display(),
                ended.output()
            );
        }
    }

    let cut = figures.clone();
    // One more run on the filesystem, left to finish: it recovers and exits 0.
    let ended = demo.spawn(demo.short_run()).wait(RUN_LIMIT);
    let state = inspect(&demo);
    let violations = history.round(&state, &ended, false, &mut figures);
    assert!(
        ended.status.success() && ended.recovered() && violations.is_empty(),
        "final run: {:?}, violations {violations:?}\n{}",
        ended.status,
        ended.output()
    );
    assert!(
        state.stale.is_empty(),
        "a finished run leaves no stale file: {:?}",
        state.stale
    );
    fs.unmount().expect("final unmount");

    say(&format!(
        "ext4_crash: seed {seed}: {rounds} power cuts, then 1 run to completion (exit 0, {} \
         acknowledged commits in all). Cuts: the demo saw EIO in {saw_eio} round(s); {} \
         killed after the cut, {} stopped on its own I/O error, {} finished before it; {} cut(s) \
         left a stale uncommitted/pending file ({} with a spilled body); {} restarts got past recovery, removing {} \
         stale file(s); {fsynced_lines_checked} fsynced log lines checked across the cuts; {} \
         committed files never acknowledged; e2fsck clean {fscks} time(s){}; {} violation(s)",
        figures.acknowledged,
        cut.kills,
        cut.stopped_on_io_error,
        cut.finished_first,
        cut.mid_persist,
        cut.mid_spill,
        cut.recovered,
        cut.stale_cleaned,
        cut.committed_unacknowledged,
        if fs.tools.e2fsck.is_none() {
            " (e2fsck not found: not checked)"
        } else {
            ""
        },
        figures.violations.len()
    ));
}

/// The request number must be the kernel's (0x8004587d in linux/fs/ext4/ext4.h terms): a
/// wrong one would make the probe see ENOTTY and skip, hiding the mistake as "not supported".
#[test]
fn the_shutdown_ioctl_number_is_the_kernels() {
    assert_eq!(EXT4_IOC_SHUTDOWN, 0x8004_587d);
}
