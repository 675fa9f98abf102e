//! The module's runtime thread, and waiting on it from Python with the GIL released
//! and Ctrl-C honoured.
//!
//! All async work runs on one long-lived thread driving a current-thread tokio
//! runtime and a `LocalSet`. One thread, because the optimizer's step future is not
//! `Send` (it holds the optimizer across awaits); long-lived, because a sandbox
//! worker dies with the thread that spawned it.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use tokio::sync::{mpsc as tokio_mpsc, oneshot};

/// How often a wait looks for a pending signal (Ctrl-C) while the work runs.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// Work for the runtime thread: builds its future there.
type Job = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()>>> + Send>;

static JOBS: OnceLock<tokio_mpsc::UnboundedSender<Job>> = OnceLock::new();

fn runtime_error(message: impl std::fmt::Display) -> PyErr {
    PyRuntimeError::new_err(format!("agentopt runtime: {message}"))
}

/// The runtime thread's job queue, starting the thread on first use.
fn jobs() -> PyResult<&'static tokio_mpsc::UnboundedSender<Job>> {
    if let Some(jobs) = JOBS.get() {
        return Ok(jobs);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(runtime_error)?;
    let (sender, mut receiver) = tokio_mpsc::unbounded_channel::<Job>();
    std::thread::Builder::new()
        .name("agentopt-runtime".to_owned())
        .spawn(move || {
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                while let Some(job) = receiver.recv().await {
                    tokio::task::spawn_local(job());
                }
            });
        })
        .map_err(runtime_error)?;
    // Two threads may race to start one; the loser's queue closes and its thread
    // ends at once.
    Ok(JOBS.get_or_init(|| sender))
}

/// Runs the future `make` builds on the runtime thread and waits for it with the
/// GIL released. Every [`SIGNAL_POLL`] the GIL is taken back to run Python's signal
/// handlers; when one raises (`KeyboardInterrupt` on Ctrl-C) the future is dropped
/// at its next await point and the exception propagates. Callers keep their state
/// consistent under such a drop (the optimizer commits a step only at its end; a
/// sandbox call in flight takes its worker with it).
pub(crate) fn wait<T, F, M>(py: Python<'_>, make: M) -> PyResult<T>
where
    T: Send + 'static,
    F: Future<Output = T> + 'static,
    M: FnOnce() -> F + Send + 'static,
{
    let (result_sender, mut result) = mpsc::channel();
    let (cancel, cancelled) = oneshot::channel::<()>();
    let job: Job = Box::new(move || {
        Box::pin(async move {
            tokio::select! {
                value = make() => {
                    // The waiter is gone only after an interrupt; nobody wants it.
                    let _ = result_sender.send(value);
                }
                _ = cancelled => {}
            }
        })
    });
    jobs()?
        .send(job)
        .map_err(|_| runtime_error("the runtime thread has stopped"))?;
    loop {
        let (receiver, received) = py.detach(move || {
            let received = result.recv_timeout(SIGNAL_POLL);
            (result, received)
        });
        result = receiver;
        match received {
            Ok(value) => return Ok(value),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(runtime_error("the work was dropped before it finished"));
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Err(interrupt) = py.check_signals() {
                    drop(cancel);
                    return Err(interrupt);
                }
            }
        }
    }
}
