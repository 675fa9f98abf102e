//! Logging of the long-running xtask commands: the full log in a file, the lines
//! that matter on stderr, drawn through any progress bars on screen.

use std::io::Write as _;
use std::path::Path;

use agentopt_core::CoreError;
use indicatif::MultiProgress;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Sets the global tracing subscriber: everything at `info` (or `RUST_LOG`) into
/// `log_path`; on stderr, warnings and errors when `bars` are shown (each line
/// drawn through them, so it does not tear them), `info` when not.
///
/// # Errors
/// [`CoreError::Io`] when the log file cannot be opened.
pub fn init_tracing(log_path: &Path, bars: Option<MultiProgress>) -> Result<(), CoreError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(agentopt_core::io_error("open", log_path))?;
    let file_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr_level = if bars.is_some() { "warn" } else { "info" };
    let file_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .with_filter(file_filter);
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_writer(StderrWriter { bars })
        .with_filter(EnvFilter::new(stderr_level));
    // A second initialisation (tests running several benches in one process)
    // keeps the first subscriber; that is fine.
    let _ = tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr_layer)
        .try_init();
    Ok(())
}

/// Writes each tracing event to stderr, suspending the bars while it does.
#[derive(Debug, Clone)]
struct StderrWriter {
    bars: Option<MultiProgress>,
}

impl<'a> MakeWriter<'a> for StderrWriter {
    type Writer = StderrLine;

    fn make_writer(&'a self) -> Self::Writer {
        StderrLine {
            bars: self.bars.clone(),
            buffer: Vec::new(),
        }
    }
}

/// One event's text, written out when tracing drops the writer.
#[derive(Debug)]
struct StderrLine {
    bars: Option<MultiProgress>,
    buffer: Vec<u8>,
}

impl std::io::Write for StderrLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for StderrLine {
    fn drop(&mut self) {
        let write = || {
            // Losing a log line on a closed stderr is acceptable; the file has it.
            let _ = std::io::stderr().write_all(&self.buffer);
        };
        match &self.bars {
            Some(bars) => bars.suspend(write),
            None => write(),
        }
    }
}
