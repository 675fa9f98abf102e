//! Whole-session caps on memory and processes through the cgroup v1 `memory` and
//! `pids` controllers, where the host offers them (and we may write there); where it
//! does not, sessions run without them and [`crate::Protections`] says why.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::owner;
use crate::probe::Probe;

/// The prefix of every cgroup this crate creates (followed by the owner tag).
const PREFIX: &str = "agentopt-";

/// Our own cgroup directory in each controller, or why it cannot be used.
struct Roots {
    memory: Result<PathBuf, String>,
    pids: Result<PathBuf, String>,
}

fn roots() -> &'static Roots {
    static ROOTS: OnceLock<Roots> = OnceLock::new();
    ROOTS.get_or_init(|| Roots {
        memory: own_dir("memory"),
        pids: own_dir("pids"),
    })
}

/// Kills what is left in, and removes, the session cgroups of owners that have ended.
pub(crate) fn sweep_stale() {
    let roots = roots();
    for dir in [&roots.memory, &roots.pids].into_iter().flatten() {
        owner::sweep(dir, PREFIX, |stale| {
            kill_members(stale);
            remove_dir(stale);
        });
    }
}

/// The directory of our own cgroup in a v1 `controller` hierarchy, checked writable.
fn own_dir(controller: &str) -> Result<PathBuf, String> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("reading /proc/self/cgroup: {e}"))?;
    let own = cgroups
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':').skip(1);
            fields.next().zip(fields.next())
        })
        .find(|(controllers, _)| controllers.split(',').any(|c| c == controller))
        .map(|(_, path)| path.to_owned())
        .ok_or_else(|| format!("no cgroup v1 {controller} controller here"))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
    let (root, mount_point) = mountinfo
        .lines()
        .filter_map(|line| {
            let (mount, fs) = line.split_once(" - ")?;
            let mut fs_fields = fs.split_whitespace();
            let is_controller = fs_fields.next() == Some("cgroup")
                && fs_fields
                    .nth(1)
                    .is_some_and(|options| options.split(',').any(|o| o == controller));
            let fields: Vec<&str> = mount.split_whitespace().collect();
            let (root, mount_point) = (fields.get(3)?, fields.get(4)?);
            is_controller.then(|| (root.to_string(), mount_point.to_string()))
        })
        .next()
        .ok_or_else(|| format!("the cgroup v1 {controller} hierarchy is not mounted"))?;
    let relative = own
        .strip_prefix(&root)
        .ok_or_else(|| format!("our {controller} cgroup {own} is outside the mounted {root}"))?;
    let dir = Path::new(&mount_point).join(relative.trim_start_matches('/'));
    let probe = dir.join(format!("{PREFIX}{}-probe", owner::tag()));
    std::fs::create_dir(&probe).map_err(|e| {
        format!(
            "cannot create a {controller} cgroup in {}: {e}",
            dir.display()
        )
    })?;
    remove_dir(&probe);
    Ok(dir)
}

/// One session's cgroups. Dropping it does not remove them; [`Self::remove`] does,
/// once the session's processes are gone.
#[derive(Debug, Default)]
pub(crate) struct SessionCgroups {
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    /// `pids.current` of `pids`, read after every request.
    tasks: Option<Probe>,
}

/// What a session got: the caps in force, and why any is missing.
#[derive(Debug, Default)]
pub(crate) struct Caps {
    pub(crate) memory: Option<u64>,
    pub(crate) processes: Option<u64>,
    pub(crate) missing: Vec<String>,
}

impl SessionCgroups {
    /// Creates the session's cgroups with a cap of `memory` bytes (swap included where
    /// the kernel accounts it) and `processes` tasks; whatever cannot be had is
    /// reported in [`Caps::missing`] instead of failing.
    pub(crate) fn create(memory: u64, processes: u64) -> (Self, Caps) {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{PREFIX}{}-{}",
            owner::tag(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut caps = Caps::default();
        let mut cgroups = Self::default();
        let memory_settings = [
            ("memory.limit_in_bytes", memory),
            // Exists only with swap accounting; without it there is no swap to escape to.
            ("memory.memsw.limit_in_bytes", memory),
        ];
        match make(&roots().memory, &name, &memory_settings) {
            Ok(dir) => {
                caps.memory = Some(memory);
                cgroups.memory = Some(dir);
            }
            Err(why) => caps.missing.push(format!("no memory cap: {why}")),
        }
        match make(&roots().pids, &name, &[("pids.max", processes)]) {
            Ok(dir) => {
                caps.processes = Some(processes);
                cgroups.tasks = Some(Probe::open(dir.join("pids.current").display().to_string()));
                cgroups.pids = Some(dir);
            }
            Err(why) => caps.missing.push(format!("no pids cap: {why}")),
        }
        (cgroups, caps)
    }

    fn dirs(&self) -> impl Iterator<Item = &PathBuf> {
        self.memory.iter().chain(&self.pids)
    }

    /// Moves process `pid` (and the children it starts from now on) into the cgroups.
    pub(crate) fn add(&self, pid: i32) -> Result<(), String> {
        for dir in self.dirs() {
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, pid.to_string())
                .map_err(|e| format!("adding {pid} to {}: {e}", procs.display()))?;
        }
        Ok(())
    }

    /// SIGKILLs every process in the cgroups (a process that escaped its namespace's
    /// tree or process group included), waiting until they are gone.
    pub(crate) fn kill_all(&self) {
        for dir in self.dirs() {
            kill_members(dir);
        }
    }

    /// SIGKILLs every process in the cgroups now, without waiting for them to go
    /// (a SIGKILLed Python takes milliseconds to exit): for paths that must not
    /// block, such as a session's drop on an async runtime's thread.
    pub(crate) fn signal_all(&self) {
        for dir in self.dirs() {
            signal_members(dir);
        }
    }

    /// Tasks (threads of every process) now in the pids cgroup; `None` without one.
    pub(crate) fn tasks(&self) -> Option<u64> {
        self.tasks.as_ref()?.text().ok()?.trim().parse().ok()
    }

    /// Whether the kernel's OOM killer acted in the memory cgroup.
    pub(crate) fn out_of_memory(&self) -> bool {
        self.memory.as_ref().is_some_and(|dir| {
            std::fs::read_to_string(dir.join("memory.oom_control")).is_ok_and(|text| {
                text.lines()
                    .any(|l| l.strip_prefix("oom_kill ").is_some_and(|n| n.trim() != "0"))
            })
        })
    }

    /// Removes the (empty) cgroups.
    pub(crate) fn remove(&self) {
        for dir in self.dirs() {
            remove_dir(dir);
        }
    }
}

/// Creates cgroup `name` under `root` with `settings` written; the first one is the
/// cap itself and must succeed, the others are best effort.
fn make(
    root: &Result<PathBuf, String>,
    name: &str,
    settings: &[(&str, u64)],
) -> Result<PathBuf, String> {
    let dir = root.as_ref().map_err(Clone::clone)?.join(name);
    std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    for (index, (file, value)) in settings.iter().enumerate() {
        if let Err(e) = std::fs::write(dir.join(file), value.to_string())
            && index == 0
        {
            remove_dir(&dir);
            return Err(format!("setting {file} in {}: {e}", dir.display()));
        }
    }
    Ok(dir)
}

fn kill_members(dir: &Path) {
    for _ in 0..100 {
        if !signal_members(dir) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// SIGKILLs the processes now in the cgroup `dir`; false when there were none.
fn signal_members(dir: &Path) -> bool {
    let members = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    let pids: Vec<i32> = members.lines().filter_map(|p| p.parse().ok()).collect();
    for &pid in &pids {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    !pids.is_empty()
}

/// rmdir, retried briefly: a cgroup is busy until its last task is fully gone.
fn remove_dir(dir: &Path) {
    for _ in 0..50 {
        match std::fs::remove_dir(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            _ => return,
        }
    }
    tracing::warn!("could not remove the session cgroup {}", dir.display());
}
