//! Problem data for the bench commands: a [`DataSpec`] loaded and selected, an
//! unusable record named with the flag that skips it, skipped ones warned about.

use agentopt_mathchat::{LoadOptions, Problem};

use crate::bench_math::cli::DataSpec;

/// The problems of `spec`'s path (in its format) that its selection takes for `set`
/// (`train`, `test`); with `skip_bad_records`, unusable records are skipped with a
/// warning on stderr instead of failing the load.
///
/// # Errors
/// The data's error, naming every unusable record and `--skip-bad-records`; a
/// selection that finds too few problems or an unknown subject.
pub fn load_selected(spec: &DataSpec, set: &str) -> anyhow::Result<Vec<Problem>> {
    let (path, selection) = (&spec.path, &spec.selection);
    let options = LoadOptions {
        format: spec.format,
        skip_bad_records: spec.skip_bad_records,
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
