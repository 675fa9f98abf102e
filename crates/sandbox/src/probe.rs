//! Files the host reads around every request, kept open.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;

/// A procfs, cgroup or capture file re-read from offset 0: a read of an open procfs
/// or cgroup file regenerates its text with no path walk, which costs more than the
/// read on a VM's cold caches; and an open `/proc/<pid>` file keeps naming that
/// process, never one that reused its pid. Where it cannot be opened, it is read by
/// path each time.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    path: String,
    file: Option<File>,
}

impl Probe {
    pub(crate) fn open(path: String) -> Self {
        let file = File::open(&path).ok();
        Self { path, file }
    }

    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// Its text, regenerated; an error of kind `NotFound` when its process is gone.
    pub(crate) fn text(&self) -> std::io::Result<String> {
        let bytes = self.bytes(4096)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Its first `limit` bytes (fewer when it is shorter).
    pub(crate) fn bytes(&self, limit: usize) -> std::io::Result<Vec<u8>> {
        let Some(file) = &self.file else {
            let mut bytes = std::fs::read(&self.path)?;
            bytes.truncate(limit);
            return Ok(bytes);
        };
        let mut bytes = vec![0; limit.min(1 << 16)];
        let mut filled = 0;
        loop {
            if filled == bytes.len() {
                if filled >= limit {
                    break;
                }
                bytes.resize((filled * 2).min(limit), 0);
            }
            match file.read_at(&mut bytes[filled..], filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                // A /proc file of a process that has exited.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                    return Err(std::io::Error::new(ErrorKind::NotFound, e));
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        bytes.truncate(filled);
        Ok(bytes)
    }
}
