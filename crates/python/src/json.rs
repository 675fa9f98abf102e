//! Python objects ↔ `serde_json::Value`, through Python's own `json` module (the
//! values crossing are small: configs, histories, signatures).

use pyo3::prelude::*;
use serde_json::Value;

/// `obj` as JSON; values JSON cannot hold (URLs, enums) become their `str()`.
pub(crate) fn to_json(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    let py = obj.py();
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("default", py.import("builtins")?.getattr("str")?)?;
    let text: String = py
        .import("json")?
        .getattr("dumps")?
        .call((obj,), Some(&kwargs))?
        .extract()?;
    serde_json::from_str(&text).map_err(|error| {
        pyo3::exceptions::PyValueError::new_err(format!("not JSON-compatible: {error}"))
    })
}

/// `value` as plain Python objects (dicts, lists, str, int, float, bool, None).
pub(crate) fn from_json<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?
        .getattr("loads")?
        .call1((value.to_string(),))
}
