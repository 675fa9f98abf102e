//! Problem data for the bench commands: a [`DataSpec`] loaded and selected, an
//! unusable record named with the flag that skips it, skipped ones warned about.

use agentopt_mathchat::{LoadOptions, MATH_SUBJECTS, Problem};

use crate::bench_math::cli::DataSpec;

/// The problems of `spec`'s path (in its format; with a CRAFT split, that split of
/// the layout under the path, only the selection's subjects read) that its selection
/// takes for `set` (`train`, `test`); with `skip_bad_records`, unusable records are
/// skipped with a warning on stderr instead of failing the load.
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
    let loaded = match spec.craft_split {
        Some(split) => {
            // An unknown subject: every file, so the selection names the real ones.
            let known = selection
                .subjects
                .iter()
                .all(|s| MATH_SUBJECTS.contains(&s.as_str()));
            let subjects = if known { &selection.subjects[..] } else { &[] };
            agentopt_mathchat::load_craft_with(path, split, subjects, spec.skip_bad_records)
        }
        None => agentopt_mathchat::load_with(path, options),
    };
    let loaded = loaded.map_err(|error| {
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
