//! Owner tags on what a process leaves outside itself (session directories, cgroups),
//! so the next process can recognise and clean up what a killed owner left behind.

use std::path::Path;
use std::sync::OnceLock;

/// `<pid>.<start time>` of this process: unique even when pids are reused.
pub(crate) fn tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let pid = std::process::id();
        format!("{pid}.{}", start_time(pid).unwrap_or(0))
    })
}

/// The start time (clock ticks after boot) of process `pid`, while it runs.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may itself hold spaces and parentheses.
    let (_, after) = stat.rsplit_once(')')?;
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the owner named by `tag` has ended.
fn is_gone(tag: &str) -> bool {
    let Some((pid, started)) = tag.split_once('.') else {
        return false;
    };
    match (pid.parse::<u32>(), started.parse::<u64>()) {
        (Ok(pid), Ok(started)) => start_time(pid) != Some(started),
        _ => false,
    }
}

/// Calls `remove` on every entry of `dir` named `<prefix><tag>-…` whose owner has ended.
pub(crate) fn sweep(dir: &Path, prefix: &str, remove: impl Fn(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        if let Some((tag, _)) = rest.split_once('-')
            && is_gone(tag)
        {
            remove(&entry.path());
        }
    }
}
