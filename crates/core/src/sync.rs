//! The one poison-tolerant lock helper of the workspace.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, taking the guard even when a holder panicked. Every state the
/// workspace keeps under a mutex stays consistent across a panic (each update is a
/// single assignment or push), and one panic must not turn into a second one here.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
