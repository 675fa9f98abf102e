//! Memory of processes as Linux reports it under `/proc`: a process's resident
//! set and its peak (`status`), its proportional share (`smaps_rollup`: shared
//! pages split among the processes sharing them, so that the shares add up), and
//! the processes a process started, sampled while they run.

use std::collections::HashMap;
use std::time::Duration;

/// A `kB` field (`VmHWM`, `VmRSS`, `Pss`, …) of `/proc/PROCESS/FILE`, where
/// `process` is a pid or `self`.
pub fn kib(process: &str, file: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{process}/{file}")).ok()?;
    let value = text
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?;
    let value = value.trim().trim_end_matches("kB").trim();
    value.parse().ok()
}

/// Every process below `root` (children, their children, …), from each
/// process's parent in `/proc/PID/stat`.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // `PID (COMMAND) STATE PPID …`; the command may hold spaces and parentheses.
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse().ok());
        if let Some(parent) = parent {
            children.entry(parent).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut pending = vec![root];
    while let Some(pid) = pending.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            found.push(child);
            pending.push(child);
        }
    }
    found
}

/// The highest total memory of a process's descendants seen while sampling.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TreeMemory {
    /// Processes at the sample with the highest PSS.
    pub processes: usize,
    /// Their summed resident sets (pages shared among them counted in each), MiB.
    pub rss_mib: f64,
    /// Their summed proportional sets (shared pages split among them), MiB: what
    /// they take of the machine.
    pub pss_mib: f64,
}

/// Samples the memory of `root`'s descendants every `every` while `root` is
/// there (until it is reaped), keeping the sample with the highest PSS in `peak`.
pub async fn sample_descendants(root: u32, every: Duration, peak: &std::sync::Mutex<TreeMemory>) {
    while std::path::Path::new(&format!("/proc/{root}")).exists() {
        let pids = descendants(root);
        let sum = |file: &str, field: &str| -> u64 {
            pids.iter()
                .filter_map(|pid| kib(&pid.to_string(), file, field))
                .sum()
        };
        let sample = TreeMemory {
            processes: pids.len(),
            rss_mib: sum("status", "VmRSS") as f64 / 1024.0,
            pss_mib: sum("smaps_rollup", "Pss") as f64 / 1024.0,
        };
        {
            let mut peak = agentopt_core::lock(peak);
            if sample.pss_mib > peak.pss_mib {
                *peak = sample;
            }
        }
        tokio::time::sleep(every).await;
    }
}
