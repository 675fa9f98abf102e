//! `cargo xtask compare-runs`: the arms of an experiment side by side, read from
//! their run directories (`report.json` and `transcripts.jsonl`; an arm still going
//! or stopped is read from its journal so far and marked), and each arm's test after
//! training paired with the first arm's on the same problems (exact McNemar). The
//! tables of docs/bench-math/learned-use.md come from here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use agentopt_core::files::read_json_lines;
use agentopt_train::{Phase, TestResult, TrainingReport, UseRate, duration_text, pair_outcomes};
use anyhow::Context as _;
use serde::Deserialize;

/// `cargo xtask compare-runs` flags.
#[derive(clap::Args)]
pub struct CompareRunsArgs {
    /// Run directories, the baseline first: every other arm's test after training
    /// is paired with the baseline's.
    #[arg(required = true, num_args = 1..)]
    pub runs: Vec<PathBuf>,
}

/// What the comparison reads of one run.
pub struct Arm {
    /// The run directory's name.
    pub name: String,
    /// Its `report.json`.
    pub report: TrainingReport,
    /// Tokens of each test-after conversation (its last record per problem).
    pub test_after_tokens: Vec<u64>,
}

/// The part of a `transcripts.jsonl` line the comparison needs.
#[derive(Deserialize)]
struct RecordTokens {
    phase: String,
    #[serde(default)]
    epoch: Option<u32>,
    index: usize,
    tokens: u64,
}

impl Arm {
    /// Reads a run directory: a finished run's report, or what the journal of one
    /// still going (or stopped) holds so far.
    ///
    /// # Errors
    /// A directory with neither `report.json` nor `transcripts.jsonl`, or a file that
    /// cannot be read, named.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let mut report = TrainingReport::read(dir)
            .with_context(|| format!("{}: not a readable run directory", dir.display()))?;
        if report.incomplete.is_some() && !report.test_after.outcomes.is_empty() {
            // Before and after on the same problems: those the test after has reached.
            let reached: BTreeSet<&str> = report
                .test_after
                .outcomes
                .iter()
                .map(|o| o.id.as_str())
                .collect();
            let before = report
                .test_before
                .outcomes
                .iter()
                .filter(|o| reached.contains(o.id.as_str()));
            report.test_before = TestResult::from_outcomes(before.cloned().collect());
        }
        let records: Vec<RecordTokens> = read_json_lines(&dir.join("transcripts.jsonl"))
            .with_context(|| format!("reading {}", dir.join("transcripts.jsonl").display()))?;
        // A resumed run may have re-run a record: the last line of each wins.
        let mut last = BTreeMap::new();
        for record in records {
            last.insert((record.phase, record.epoch, record.index), record.tokens);
        }
        let test_after_tokens = last
            .iter()
            .filter(|((phase, _, _), _)| phase == "test_after")
            .map(|(_, tokens)| *tokens)
            .collect();
        let mut name = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        if report.incomplete.is_some() {
            name.push_str(" (so far)");
        }
        Ok(Self {
            name,
            report,
            test_after_tokens,
        })
    }
}

/// Runs `cargo xtask compare-runs`: prints the tables.
///
/// # Errors
/// A run directory that cannot be read, or arms with no test problem in common.
pub fn run(args: &CompareRunsArgs) -> anyhow::Result<()> {
    let arms = args
        .runs
        .iter()
        .map(|dir| Arm::load(dir))
        .collect::<anyhow::Result<Vec<_>>>()?;
    print!("{}", compare(&arms)?);
    Ok(())
}

/// The two tables, as markdown: each arm's own results, then each arm's test after
/// training against the first arm's.
///
/// # Errors
/// An arm that shares no test problem with the first.
pub fn compare(arms: &[Arm]) -> anyhow::Result<String> {
    let mut md = String::from(
        "| arm | test problems | before | after | p (before→after) | after, exact check | \
         use rate, test after | shadowed, test after | use rate, training | functions | \
         worked examples kept / rejected | assistant tokens per test-after conversation | wall |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|\n",
    );
    for arm in arms {
        own_row(&mut md, arm);
    }
    let Some((baseline, others)) = arms.split_first().filter(|(_, others)| !others.is_empty())
    else {
        return Ok(md);
    };
    let _ = write!(
        md,
        "\nTest after training, paired with `{}` on the same problems:\n\n\
         | arm | paired | both | `{0}` only | arm only | neither | exact McNemar p |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
        baseline.name
    );
    for arm in others {
        if [baseline, arm]
            .iter()
            .any(|arm| arm.report.test_after.outcomes.is_empty())
        {
            let _ = writeln!(md, "| {} | no test after yet | | | | | |", arm.name);
            continue;
        }
        let counts = pair_outcomes(&baseline.report.test_after, &arm.report.test_after);
        let paired = counts.both + counts.before_only + counts.after_only + counts.neither;
        anyhow::ensure!(
            paired > 0,
            "`{}` and `{}` have no test problem in common: not arms of one experiment",
            baseline.name,
            arm.name
        );
        let _ = writeln!(
            md,
            "| {} | {paired} | {} | {} | {} | {} | {:.4} |",
            arm.name,
            counts.both,
            counts.before_only,
            counts.after_only,
            counts.neither,
            counts.mcnemar_exact_p()
        );
    }
    Ok(md)
}

/// One arm's row of the first table.
fn own_row(md: &mut String, arm: &Arm) {
    let report = &arm.report;
    let exact = report
        .other_checks
        .iter()
        .find(|check| check.name == "exact")
        .map_or_else(|| "–".to_owned(), |check| fraction(&check.test_after));
    let examples = report
        .epochs
        .iter()
        .fold((0, 0), |(kept, rejected), epoch| {
            (
                kept + epoch.demonstrations.kept,
                rejected + epoch.demonstrations.rejected,
            )
        });
    let functions: Vec<&str> = report.functions.iter().map(|f| f.name.as_str()).collect();
    let tokens = mean(&arm.test_after_tokens);
    // Phase names as the report writes them ("test after training", "epoch 1").
    let test_after = Phase::TestAfter.name();
    let is_test_after = |phase: &str| phase == test_after;
    let _ = writeln!(
        md,
        "| {} | {} | {} | {} | {:.4} | {exact} | {} | {} | {} | {} | {} / {} | {tokens:.0} | {} |",
        arm.name,
        report.test_after.outcomes.len(),
        fraction(&report.test_before),
        fraction(&report.test_after),
        report.mcnemar_p,
        use_rate(&report.use_rates, is_test_after),
        shadowed(&report.use_rates, is_test_after),
        use_rate(&report.use_rates, |phase| phase.starts_with("epoch")),
        if functions.is_empty() {
            "none".to_owned()
        } else {
            functions.join(", ")
        },
        examples.0,
        examples.1,
        duration_text(report.wall_seconds()),
    );
}

/// `correct/total`.
fn fraction(result: &TestResult) -> String {
    format!("{}/{}", result.accuracy.correct, result.accuracy.total)
}

/// Conversations that called a learned function / those offered one, over the
/// phases `phase` picks ("–" when none was offered one).
fn use_rate(rates: &[UseRate], phase: impl Fn(&str) -> bool) -> String {
    let [offered, called, _] = totals(rates, phase);
    if offered == 0 {
        return "–".to_owned();
    }
    format!(
        "{called}/{offered} ({:.0}%)",
        100.0 * called as f64 / offered as f64
    )
}

/// Conversations whose code shadowed an offered function / those offered one, over
/// the phases `phase` picks ("–" when none was offered one).
fn shadowed(rates: &[UseRate], phase: impl Fn(&str) -> bool) -> String {
    match totals(rates, phase) {
        [0, _, _] => "–".to_owned(),
        [offered, _, shadowed] => format!("{shadowed}/{offered}"),
    }
}

/// Offered, called and shadowed summed over the phases `phase` picks (any function).
fn totals(rates: &[UseRate], phase: impl Fn(&str) -> bool) -> [u64; 3] {
    rates
        .iter()
        .filter(|rate| rate.function.is_none() && phase(&rate.phase))
        .fold([0; 3], |[offered, called, shadowed], rate| {
            [
                offered + rate.offered,
                called + rate.called,
                shadowed + rate.shadowed,
            ]
        })
}

fn mean(values: &[u64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<u64>() as f64 / values.len() as f64
    }
}
