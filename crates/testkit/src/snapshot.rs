//! Snapshot helpers: JSON with its run-to-run noise taken out.

use serde_json::Value;

/// Fields that hold a measured time, replaced by [`scrub_timings`].
pub const TIMING_FIELDS: &[&str] = &["duration", "elapsed", "wall_time"];

/// `value` with every field named in [`TIMING_FIELDS`] (at any depth) replaced by
/// the string `"[duration]"`, so serialised transcripts and outcomes snapshot the
/// same on every run.
#[must_use]
pub fn scrub_timings(mut value: Value) -> Value {
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, field) in map.iter_mut() {
                    if TIMING_FIELDS.contains(&key.as_str()) {
                        *field = Value::String("[duration]".to_owned());
                    } else {
                        walk(field);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}
