//! Problem data for the bench commands: a path loaded and a selection applied, an
//! unusable record named with the flag that skips it, skipped ones warned about.

use std::path::Path;

use agentopt_mathchat::{DataFormat, LoadOptions, Problem, Selection};

/// The problems of `path` (in `format`) that `selection` takes for `set` (`train`,
/// `test`); with `skip_bad_records`, unusable records are skipped with a warning on
/// stderr instead of failing the load.
///
/// # Errors
/// The data's error, naming every unusable record and `--skip-bad-records`; a
/// selection that finds too few problems or an unknown subject.
pub fn load_selected(
    path: &Path,
    format: DataFormat,
    skip_bad_records: bool,
    selection: &Selection,
    set: &str,
) -> anyhow::Result<Vec<Problem>> {
    let options = LoadOptions {
        format,
        skip_bad_records,
    };
    let loaded = agentopt_mathchat::load_with(path, options).map_err(|error| {
        let hint = error
            .is_bad_record()
            .then_some(" (--skip-bad-records skips them)");
        anyhow::anyhow!("{error}{}", hint.unwrap_or_default())
    })?;
    if let Some(skipped) = loaded.skipped_summary() {
        eprintln!("warning: {} skipped: {skipped}", path.display());
    }
    Ok(selection.apply(loaded.problems, set)?)
}
