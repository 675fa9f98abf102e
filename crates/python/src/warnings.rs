//! Python `UserWarning`s from Rust, wherever the code runs (the runtime thread
//! included).

use std::ffi::CString;

use pyo3::exceptions::PyUserWarning;
use pyo3::prelude::*;

/// Issues `message` as a `UserWarning`, attributed to the caller of the agentopt
/// class whose Python wrapper called in (stack level 2); on the runtime thread
/// there is no Python caller. Under a filter that turns warnings into errors on a
/// thread that cannot raise, Python reports it as unraisable.
pub(crate) fn warn(message: &str) {
    Python::attach(|py| {
        let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
        let category = py.get_type::<PyUserWarning>();
        if let Err(error) = PyErr::warn(py, &category, &text, 2) {
            error.write_unraisable(py, None);
        }
    });
}
