//! The run's results (`report.json`) and their renderings: `report.md` and the
//! terminal summary that mirrors the seed notebook's final print.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use agentopt_optimizer::{Interval, PairedCounts, Z_95, wilson_interval};

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use agentopt_core::files::{read_json, read_json_lines};
use agentopt_core::{CoreError, FunctionSet};
use agentopt_llm::{SpendEntry, UsageReport, UsageTotals};

use crate::journal::{
    ConversationRecord, DemonstrationCounts, Phase, PhaseRecord, RoleUsage, RunDir, StepRecord,
};
use crate::{CallCounts, FailureKind, TrainError};

/// Format version of `report.json`.
pub const REPORT_VERSION: u32 = 2;

/// Everything a run reports. Pure data: built from the run directory, read by the
/// renderers and plots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingReport {
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// What was run.
    pub setup: Setup,
    /// Test set, before training.
    pub test_before: TestResult,
    /// The same test set, after training.
    pub test_after: TestResult,
    /// Before/after pairs on the same problems.
    pub paired: PairedCounts,
    /// Exact McNemar p-value of `paired`.
    pub mcnemar_p: f64,
    /// The same test, scored by the task's other answer checks (those in
    /// [`crate::Attempt::checks`]; the main result is the check that drove training).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_checks: Vec<CheckResult>,
    /// One entry per training epoch that ran.
    pub epochs: Vec<EpochResult>,
    /// The functions the agents hold after training.
    pub functions: Vec<FunctionUsage>,
    /// How often conversations called the learned functions they were offered, per
    /// phase: for any function, then per function (reports from before: empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub use_rates: Vec<UseRate>,
    /// Tokens and cost per caller role (assistant, optimizer, preflight …): every
    /// metered call of the run, in every process that worked on it.
    pub usage: Vec<RoleUsage>,
    /// The same per endpoint: which config-list entry answered and which failed.
    #[serde(default)]
    pub endpoints: Vec<RoleUsage>,
    /// Wall time per phase, in run order.
    pub phases: Vec<PhaseTime>,
    /// Why training ended before the planned epochs, if it did.
    pub stopped_early: Option<String>,
    /// Attempts stopped by infrastructure, per phase (left out of every accuracy
    /// and never given to the optimizer; a resume runs them again).
    pub infrastructure: Vec<InfrastructureCounts>,
    /// Why the run stopped before its end (infrastructure errors to re-run, a
    /// budget), if it did; `None` for a finished run.
    pub incomplete: Option<String>,
}

/// The test before and after training, scored by one of the task's other answer
/// checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name (MATH: `exact`, AG2's string rule, or `symbolic`).
    pub name: String,
    /// Before training, under this check (attempts it could not decide left out).
    pub test_before: TestResult,
    /// After training, under this check.
    pub test_after: TestResult,
    /// Before/after pairs under this check.
    pub paired: PairedCounts,
    /// Exact McNemar p-value of `paired`.
    pub mcnemar_p: f64,
}

/// Infrastructure errors of one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfrastructureCounts {
    /// Phase name.
    pub phase: String,
    /// Attempts stopped by infrastructure, per kind.
    pub by_kind: Vec<(FailureKind, u64)>,
    /// The first error's message, for a first look.
    pub first_message: String,
}

impl InfrastructureCounts {
    /// All errors of the phase.
    pub fn total(&self) -> u64 {
        self.by_kind.iter().map(|(_, count)| count).sum()
    }
}

/// The run's settings, as shown in the report (given by the front end).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    /// The task's name (`MATH`, …).
    pub task: String,
    /// Model answering the problems.
    pub model: String,
    /// Model proposing functions.
    pub optimizer_model: String,
    /// Endpoint kind and address (no secrets).
    pub endpoint: String,
    /// Data source(s).
    pub data: String,
    /// Subject/level/shuffle filters.
    pub selection: String,
    /// Training problems per epoch.
    pub train_problems: usize,
    /// Test problems.
    pub test_problems: usize,
    /// Epochs planned.
    pub epochs: u32,
    /// Optimizer actions allowed per step.
    pub max_actions_per_step: u32,
    /// Task settings worth stating beside the result, as (name, value) rows (the
    /// function style, the answer check that drove training …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<(String, String)>,
}

/// One problem's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemOutcome {
    /// The problem's id (`file:line`).
    pub id: String,
    /// Whether the agents' answer matched the reference.
    pub correct: bool,
}

/// Accuracy on a set of problems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Problems solved.
    pub correct: u64,
    /// Problems attempted (infrastructure errors left out).
    pub total: u64,
    /// `correct / total` (0 when nothing was attempted).
    pub rate: f64,
    /// 95 % Wilson interval of `rate`.
    pub interval: Interval,
}

impl Accuracy {
    /// The accuracy of `correct` out of `total`.
    pub fn new(correct: u64, total: u64) -> Self {
        Self {
            correct,
            total,
            rate: if total == 0 {
                0.0
            } else {
                correct as f64 / total as f64
            },
            interval: wilson_interval(correct, total, Z_95),
        }
    }

    /// `correct/total (rate%, 95 % CI low–high%)`.
    pub fn summary(&self) -> String {
        format!(
            "{}/{} ({}, 95% CI {}–{})",
            self.correct,
            self.total,
            percent(self.rate),
            percent(self.interval.low),
            percent(self.interval.high)
        )
    }
}

/// A test phase's result, per problem and overall.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// Overall accuracy.
    pub accuracy: Accuracy,
    /// Per problem, in test-set order.
    pub outcomes: Vec<ProblemOutcome>,
}

impl TestResult {
    /// Scores a list of outcomes.
    pub fn from_outcomes(outcomes: Vec<ProblemOutcome>) -> Self {
        let correct = outcomes.iter().filter(|outcome| outcome.correct).count() as u64;
        Self {
            accuracy: Accuracy::new(correct, outcomes.len() as u64),
            outcomes,
        }
    }
}

/// Pairs the outcomes of the problems present in both results, by id.
pub fn pair_outcomes(before: &TestResult, after: &TestResult) -> PairedCounts {
    PairedCounts::from_pairs(before.outcomes.iter().filter_map(|first| {
        after
            .outcomes
            .iter()
            .find(|second| second.id == first.id)
            .map(|second| (first.correct, second.correct))
    }))
}

/// One training epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochResult {
    /// 1-based epoch number.
    pub epoch: u32,
    /// Accuracy on the training problems with the functions in force this epoch.
    pub accuracy: Accuracy,
    /// Whether the optimizer kept this epoch's function list as the best so far
    /// (false: rolled back).
    pub kept: bool,
    /// Actions the optimizer applied in its step after this epoch.
    pub actions: u32,
    /// Optimizer replies rejected and retried in that step.
    #[serde(default)]
    pub rejected: u32,
    /// Function names in force after the step.
    pub functions_after: Vec<String>,
    /// The step did not run (its model failed after its retries): why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Worked examples the step kept and rejected.
    #[serde(default, skip_serializing_if = "DemonstrationCounts::is_empty")]
    pub demonstrations: DemonstrationCounts,
    /// Functions the step removed as unused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<String>,
}

/// A learned function and how it was used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionUsage {
    /// Function name.
    pub name: String,
    /// Its description, as the assistant sees it.
    pub description: String,
    /// Calls during training conversations.
    pub training: CallCounts,
    /// Calls during the test after training.
    pub test_after: CallCounts,
}

/// In one phase, the conversations offered a learned function (or any) and those
/// that called it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UseRate {
    /// Phase name (`test before`, `epoch 1`, `test after`, …).
    pub phase: String,
    /// The function; `None`: any learned function offered.
    pub function: Option<String>,
    /// Conversations (infrastructure errors aside) that were offered it.
    pub offered: u64,
    /// Of those, the conversations that called it at least once.
    pub called: u64,
    /// Of those, the conversations whose code shadowed it: bound its name to its own
    /// version (a `def`, an import of the same name), which is why an offered
    /// function so often goes uncalled. Runs journaled before it was counted read 0.
    #[serde(default)]
    pub shadowed: u64,
}

impl UseRate {
    /// `called / offered` (0 when nothing was offered).
    pub fn rate(&self) -> f64 {
        if self.offered == 0 {
            0.0
        } else {
            self.called as f64 / self.offered as f64
        }
    }
}

/// Use rates of every phase that offered functions, in phase order: the phase's
/// rate for any function first, then each function's.
fn use_rates(records: &BTreeMap<(Phase, usize), &ConversationRecord>) -> Vec<UseRate> {
    let mut by_phase: BTreeMap<Phase, BTreeMap<Option<&str>, [u64; 3]>> = BTreeMap::new();
    for ((phase, _), record) in records {
        let attempt = &record.attempt;
        if record.offered.is_empty() || attempt.outcome.infrastructure().is_some() {
            continue;
        }
        let called = |name: &String| attempt.calls.get(name).is_some_and(|c| c.calls > 0);
        let shadowed = |name: &String| attempt.shadowed.contains(name);
        let rates = by_phase.entry(*phase).or_default();
        let any = rates.entry(None).or_default();
        any[0] += 1;
        any[1] += u64::from(record.offered.iter().any(called));
        any[2] += u64::from(record.offered.iter().any(shadowed));
        for name in &record.offered {
            let rate = rates.entry(Some(name.as_str())).or_default();
            rate[0] += 1;
            rate[1] += u64::from(called(name));
            rate[2] += u64::from(shadowed(name));
        }
    }
    by_phase
        .into_iter()
        .flat_map(|(phase, rates)| {
            rates
                .into_iter()
                .map(move |(function, [offered, called, shadowed])| UseRate {
                    phase: phase.name(),
                    function: function.map(str::to_owned),
                    offered,
                    called,
                    shadowed,
                })
        })
        .collect()
}

/// Wall time of one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseTime {
    /// Phase name (`test before`, `epoch 1`, `step 1`, `test after`, …).
    pub phase: String,
    /// Seconds.
    pub seconds: f64,
}

/// A usage table (one row per role or endpoint, and the total); with `shares`,
/// each row's share of the calls answered (what each replica served).
fn usage_table(md: &mut String, label: &str, rows: &[RoleUsage], shares: bool) {
    let share_header = if shares { " share of calls |" } else { "" };
    let share_rule = if shares { "---:|" } else { "" };
    let _ = writeln!(
        md,
        "| {label} | calls |{share_header} retried | failed | prompt tokens | completion tokens | cost (USD) |\n\
         |---|---:|{share_rule}---:|---:|---:|---:|---:|"
    );
    let mut total = RoleUsage::empty("total");
    for row in rows {
        total.merge(row);
    }
    for row in rows.iter().chain(std::iter::once(&total)) {
        let share = if shares {
            let of = row.calls as f64 / total.calls.max(1) as f64;
            format!(" {} |", percent(of))
        } else {
            String::new()
        };
        let _ = writeln!(
            md,
            "| {} | {} |{share} {} | {} | {} | {} | {:.4} |",
            cell(&row.role),
            row.calls,
            row.retries,
            row.failed_calls,
            row.prompt_tokens,
            row.completion_tokens,
            row.cost_usd
        );
    }
}

/// `0.5` → `50.0%`.
fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// A duration for people: `42.0 s`, `3 min 05 s`, `1 h 02 min`.
pub fn duration_text(seconds: f64) -> String {
    let whole = seconds.round() as u64;
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else if whole < 3600 {
        format!("{} min {:02} s", whole / 60, whole % 60)
    } else {
        format!("{} h {:02} min", whole / 3600, (whole % 3600) / 60)
    }
}

/// Markdown table cells must not contain `|` or line breaks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

impl TrainingReport {
    /// `report.md`: a self-contained summary for people.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        self.setup_markdown(&mut md);
        self.test_markdown(&mut md);
        self.epochs_markdown(&mut md);
        self.functions_markdown(&mut md);
        self.use_rates_markdown(&mut md);
        self.usage_markdown(&mut md);
        self.wall_time_markdown(&mut md);
        md
    }

    /// The title and the settings table (with the run's state).
    fn setup_markdown(&self, md: &mut String) {
        let setup = &self.setup;
        let _ = writeln!(md, "# AgentOptimizer on {}\n", setup.task);
        let _ = writeln!(md, "![learning curve](learning_curve.svg)\n");
        let _ = writeln!(md, "| setting | value |\n|---|---|");
        let _ = writeln!(md, "| model | `{}` |", cell(&setup.model));
        let _ = writeln!(
            md,
            "| optimizer model | `{}` |",
            cell(&setup.optimizer_model)
        );
        let _ = writeln!(md, "| endpoint | {} |", cell(&setup.endpoint));
        let _ = writeln!(md, "| data | {} |", cell(&setup.data));
        let _ = writeln!(md, "| selection | {} |", cell(&setup.selection));
        let _ = writeln!(
            md,
            "| problems | {} train, {} test |",
            setup.train_problems, setup.test_problems
        );
        let epochs_ran = self.epochs.len();
        let _ = writeln!(
            md,
            "| training | {epochs_ran} of {} epochs, at most {} actions per step |",
            setup.epochs, setup.max_actions_per_step
        );
        for (name, value) in &setup.settings {
            let _ = writeln!(md, "| {} | {} |", cell(name), cell(value));
        }
        if let Some(reason) = &self.stopped_early {
            let _ = writeln!(md, "| stopped early | {} |", cell(reason));
        }
        if let Some(reason) = &self.incomplete {
            let _ = writeln!(md, "| **incomplete** | {} |", cell(reason));
        }
        self.infrastructure_markdown(md);
    }

    /// Test accuracy before and after, paired, for every check.
    fn test_markdown(&self, md: &mut String) {
        let _ = writeln!(md, "\n## Test accuracy before and after training\n");
        let _ = writeln!(
            md,
            "| agents | solved | success rate | 95% Wilson interval |\n|---|---:|---:|---|"
        );
        let main = [
            ("before training".to_owned(), &self.test_before),
            ("after training".to_owned(), &self.test_after),
        ];
        let others = self.other_checks.iter().flat_map(|check| {
            [
                (
                    format!("before training, {} check", check.name),
                    &check.test_before,
                ),
                (
                    format!("after training, {} check", check.name),
                    &check.test_after,
                ),
            ]
        });
        for (label, result) in main.into_iter().chain(others) {
            let accuracy = &result.accuracy;
            let _ = writeln!(
                md,
                "| {label} | {}/{} | {} | {}–{} |",
                accuracy.correct,
                accuracy.total,
                percent(accuracy.rate),
                percent(accuracy.interval.low),
                percent(accuracy.interval.high)
            );
        }
        let paired = &self.paired;
        let _ = writeln!(
            md,
            "\nPaired on the same {} problems: {} solved only after training, {} only \
             before, {} both times, {} neither time. Exact McNemar test: p = {:.4}{}.",
            paired.both + paired.before_only + paired.after_only + paired.neither,
            paired.after_only,
            paired.before_only,
            paired.both,
            paired.neither,
            self.mcnemar_p,
            if self.mcnemar_p < 0.05 {
                " (significant at 5%)"
            } else {
                " (not significant at 5%)"
            }
        );

        for check in &self.other_checks {
            let _ = writeln!(
                md,
                "\nUnder the {} check (reported, not used for training): {} solved only \
                 after training, {} only before; exact McNemar p = {:.4}.",
                cell(&check.name),
                check.paired.after_only,
                check.paired.before_only,
                check.mcnemar_p
            );
        }
    }

    /// Training accuracy and the step's decision per epoch.
    fn epochs_markdown(&self, md: &mut String) {
        let _ = writeln!(md, "\n## Training accuracy per epoch\n");
        if self.epochs.is_empty() {
            let _ = writeln!(md, "No training epoch ran.");
        } else {
            let _ = writeln!(
                md,
                "| epoch | solved | accuracy | 95% Wilson interval | step | actions | functions after step |\n\
                 |---:|---:|---:|---|---|---:|---|"
            );
            for epoch in &self.epochs {
                let accuracy = &epoch.accuracy;
                let functions = if epoch.functions_after.is_empty() {
                    "—".to_owned()
                } else {
                    epoch
                        .functions_after
                        .iter()
                        .map(|name| format!("`{}`", cell(name)))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let _ = writeln!(
                    md,
                    "| {} | {}/{} | {} | {}–{} | {} | {} | {functions} |",
                    epoch.epoch,
                    accuracy.correct,
                    accuracy.total,
                    percent(accuracy.rate),
                    percent(accuracy.interval.low),
                    percent(accuracy.interval.high),
                    match (&epoch.skipped, epoch.kept) {
                        (Some(reason), _) => format!("skipped ({})", cell(reason)),
                        (None, true) => "kept".to_owned(),
                        (None, false) => "rolled back".to_owned(),
                    },
                    if epoch.rejected == 0 {
                        epoch.actions.to_string()
                    } else {
                        format!("{} ({} rejected)", epoch.actions, epoch.rejected)
                    }
                );
            }
            for epoch in &self.epochs {
                let examples = epoch.demonstrations;
                if !examples.is_empty() {
                    let _ = writeln!(
                        md,
                        "\nStep {}: {} worked examples kept, {} rejected.",
                        epoch.epoch, examples.kept, examples.rejected
                    );
                }
                if !epoch.pruned.is_empty() {
                    let _ = writeln!(
                        md,
                        "\nStep {}: pruned as unused: {}.",
                        epoch.epoch,
                        epoch.pruned.join(", ")
                    );
                }
            }
        }
    }

    /// The functions in force at the end and their calls.
    fn functions_markdown(&self, md: &mut String) {
        let _ = writeln!(md, "\n## Functions learned\n");
        if self.functions.is_empty() {
            let _ = writeln!(
                md,
                "None: the agents end with the functions they started with."
            );
        } else {
            let _ = writeln!(
                md,
                "| function | description | calls in training (ok) | calls in test after (ok) |\n\
                 |---|---|---:|---:|"
            );
            for function in &self.functions {
                let _ = writeln!(
                    md,
                    "| `{}` | {} | {} ({}) | {} ({}) |",
                    cell(&function.name),
                    cell(&function.description),
                    function.training.calls,
                    function.training.succeeded,
                    function.test_after.calls,
                    function.test_after.succeeded
                );
            }
        }
    }

    /// Conversations that called a learned function among those offered one.
    fn use_rates_markdown(&self, md: &mut String) {
        if self.use_rates.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "\n## Learned-function use\n\nConversations that called a function, of those \
             offered it; \"shadowed\": those whose code bound its name to a version of \
             its own (a `def`, an import of the same name).\n\n\
             | phase | function | offered | called | use rate | shadowed |\n\
             |---|---|---:|---:|---:|---:|"
        );
        for rate in &self.use_rates {
            let function = rate
                .function
                .as_deref()
                .map_or_else(|| "any".to_owned(), |name| format!("`{}`", cell(name)));
            let _ = writeln!(
                md,
                "| {} | {function} | {} | {} | {} | {} |",
                rate.phase,
                rate.offered,
                rate.called,
                percent(rate.rate()),
                rate.shadowed
            );
        }
    }

    /// Tokens, cost, retries and failures per role and endpoint.
    fn usage_markdown(&self, md: &mut String) {
        let _ = writeln!(md, "\n## Tokens and cost\n");
        usage_table(md, "role", &self.usage, false);
        if !self.endpoints.is_empty() {
            let _ = writeln!(
                md,
                "\nPer endpoint (with a config list, which entry answered):\n"
            );
            usage_table(md, "endpoint", &self.endpoints, true);
        }
        let _ = writeln!(
            md,
            "\nCached replies cost nothing and are not counted. Retried: failed attempts \
             the client retried (429, 5xx, transport faults, malformed replies); failed: \
             calls that still failed after their retries."
        );
    }

    /// The run's wall time: its phases' summed.
    pub fn wall_seconds(&self) -> f64 {
        self.phases.iter().map(|phase| phase.seconds).sum()
    }

    /// Wall time per phase.
    fn wall_time_markdown(&self, md: &mut String) {
        let _ = writeln!(md, "\n## Wall time\n");
        let _ = writeln!(md, "| phase | time |\n|---|---:|");
        for phase in &self.phases {
            let _ = writeln!(
                md,
                "| {} | {} |",
                cell(&phase.phase),
                duration_text(phase.seconds)
            );
        }
        let _ = writeln!(md, "| total | {} |", duration_text(self.wall_seconds()));
    }

    /// The infrastructure section, when any attempt was stopped by infrastructure.
    fn infrastructure_markdown(&self, md: &mut String) {
        if self.infrastructure.is_empty() {
            return;
        }
        let _ = writeln!(
            md,
            "\n## Infrastructure errors\n\nNot training signal: left out of every accuracy \
             and never shown to the optimizer; a resume runs them again.\n"
        );
        let _ = writeln!(
            md,
            "| phase | errors | kinds | first error |\n|---|---:|---|---|"
        );
        for counts in &self.infrastructure {
            let kinds: Vec<String> = counts
                .by_kind
                .iter()
                .map(|(kind, count)| format!("{kind:?} × {count}"))
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                cell(&counts.phase),
                counts.total(),
                kinds.join(", "),
                cell(&counts.first_message)
            );
        }
    }

    /// The final terminal print: the seed notebook's "Functions learned" and
    /// "Summary" sections, with intervals and the paired test added.
    pub fn terminal_summary(&self) -> String {
        let rule = "-".repeat(48);
        let mut out = String::new();
        let _ = writeln!(out, "{rule}Functions learned{rule}");
        if self.functions.is_empty() {
            let _ = writeln!(out, "(none)\n");
        }
        for function in &self.functions {
            let _ = writeln!(out, "{}: {}\n", function.name, function.description);
        }
        let _ = writeln!(out, "{rule}Summary{rule}\n");
        let _ = writeln!(
            out,
            "success_rate_without_agent_training: {}\n",
            self.test_before.accuracy.summary()
        );
        let _ = writeln!(
            out,
            "success_rate_with_agent_training: {}\n",
            self.test_after.accuracy.summary()
        );
        let _ = writeln!(
            out,
            "paired on the same problems: +{} / -{}, exact McNemar p = {:.4}",
            self.paired.after_only, self.paired.before_only, self.mcnemar_p
        );
        let after = self
            .use_rates
            .iter()
            .find(|rate| rate.phase == Phase::TestAfter.name() && rate.function.is_none());
        if let Some(rate) = after {
            let _ = writeln!(
                out,
                "learned-function use after training: {}/{} conversations offered one called one",
                rate.called, rate.offered
            );
        }
        for check in &self.other_checks {
            let _ = writeln!(
                out,
                "{} check (not used for training): before {}, after {}, McNemar p = {:.4}",
                check.name,
                check.test_before.accuracy.summary(),
                check.test_after.accuracy.summary(),
                check.mcnemar_p
            );
        }
        let errors: u64 = self
            .infrastructure
            .iter()
            .map(InfrastructureCounts::total)
            .sum();
        if errors > 0 {
            let _ = writeln!(out, "infrastructure errors (not counted above): {errors}");
        }
        for epoch in &self.epochs {
            if let Some(reason) = &epoch.skipped {
                let _ = writeln!(
                    out,
                    "optimizer step after epoch {} skipped: {reason}",
                    epoch.epoch
                );
            }
        }
        if let Some(reason) = self.training_failed() {
            let _ = writeln!(out, "TRAINING FAILED: {reason}");
        }
        if let Some(reason) = &self.incomplete {
            let _ = writeln!(out, "INCOMPLETE: {reason}");
        }
        out
    }

    /// Why training learned nothing, when every optimizer step that was due failed
    /// (its model failed after its retries): the steps and their reasons. `None`
    /// when a step ran, or no step was due.
    pub fn training_failed(&self) -> Option<String> {
        let reasons: Vec<String> = self
            .epochs
            .iter()
            .map(|epoch| {
                epoch
                    .skipped
                    .as_ref()
                    .map(|reason| format!("after epoch {}: {reason}", epoch.epoch))
            })
            .collect::<Option<_>>()?;
        (!reasons.is_empty()).then(|| {
            format!(
                "every optimizer step failed, so no function was learned ({})",
                reasons.join("; ")
            )
        })
    }
}

impl TrainingReport {
    /// The report of the run in `run_dir`: its `report.json`; for a run still going
    /// or stopped before its end, one built from its journal so far and marked
    /// incomplete (its test phases hold the problems done, so a before → after pair
    /// counts only problems done in both).
    ///
    /// # Errors
    /// [`TrainError::File`] naming the file when neither `report.json` nor
    /// `transcripts.jsonl` exists, a file cannot be read or a line does not parse.
    pub fn read(run_dir: &Path) -> Result<Self, TrainError> {
        let dir = RunDir::at(run_dir);
        match read_json(&dir.report_json_path()) {
            Ok(report) => Ok(report),
            Err(error) if is_missing(&error) && dir.transcripts_path().is_file() => {
                report_so_far(&dir)
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// The functions in force at the end of the run in `dir` (none before it wrote any).
pub(crate) fn functions_at_end(dir: &RunDir) -> Result<FunctionSet, TrainError> {
    match FunctionSet::load(&dir.functions_path()) {
        Ok(functions) => Ok(functions),
        Err(error) if is_missing(&error) => Ok(FunctionSet::default()),
        Err(error) => Err(error.into()),
    }
}

fn is_missing(error: &CoreError) -> bool {
    matches!(error, CoreError::Io(io) if io.source.kind() == std::io::ErrorKind::NotFound)
}

/// The report of a run that has not written `report.json`, from its journal.
fn report_so_far(dir: &RunDir) -> Result<TrainingReport, TrainError> {
    let functions = functions_at_end(dir)?;
    let records: Vec<ConversationRecord> = read_json_lines(&dir.transcripts_path())?;
    let latest: BTreeMap<(Phase, usize), &ConversationRecord> = records
        .iter()
        .map(|record| ((record.phase, record.index), record))
        .collect();
    let steps: Vec<StepRecord> = read_json_lines(&dir.steps_path())?;
    let phases = read_json_lines(&dir.phases_path())?;
    let spend: Vec<SpendEntry> = read_json_lines(&dir.spend_path())?;
    let problems_in = |phase: Phase| latest.range((phase, 0)..=(phase, usize::MAX)).count();
    let setup = Setup {
        task: format!("the run in {}", dir.root().display()),
        train_problems: problems_in(Phase::Train { epoch: 1 }),
        test_problems: problems_in(Phase::TestBefore),
        epochs: u32::try_from(steps.len()).unwrap_or(u32::MAX),
        ..Setup::default()
    };
    Ok(build(Inputs {
        setup,
        records: &latest,
        steps: &steps,
        phases: &phases,
        spend: &spend,
        functions: &functions,
        stopped_early: None,
        incomplete: Some(
            "no report.json: the run is still going or was stopped before its end; this \
             shows what its journal holds so far"
                .to_owned(),
        ),
    }))
}

/// What [`build`] reads: the run's files, already parsed.
pub(crate) struct Inputs<'a> {
    pub(crate) setup: Setup,
    /// The latest record of each (phase, index).
    pub(crate) records: &'a BTreeMap<(Phase, usize), &'a ConversationRecord>,
    pub(crate) steps: &'a [StepRecord],
    pub(crate) phases: &'a [PhaseRecord],
    /// Every metered event of the run (`spend.jsonl`).
    pub(crate) spend: &'a [SpendEntry],
    /// The functions in force at the end.
    pub(crate) functions: &'a FunctionSet,
    pub(crate) stopped_early: Option<String>,
    pub(crate) incomplete: Option<String>,
}

/// The report of a run, from its records: a continued run reports what an
/// uninterrupted one does (wall times and the spend of interrupted phases aside).
pub(crate) fn build(inputs: Inputs<'_>) -> TrainingReport {
    let counted = |phase: Phase| -> Vec<&ConversationRecord> {
        inputs
            .records
            .range((phase, 0)..=(phase, usize::MAX))
            .map(|(_, record)| *record)
            .filter(|record| record.attempt.outcome.infrastructure().is_none())
            .collect()
    };
    let test_result = |phase| {
        TestResult::from_outcomes(
            counted(phase)
                .into_iter()
                .map(|record| ProblemOutcome {
                    id: record.problem_id.clone(),
                    correct: record.attempt.outcome.is_solved(),
                })
                .collect(),
        )
    };
    let test_before = test_result(Phase::TestBefore);
    let test_after = test_result(Phase::TestAfter);
    let paired = pair_outcomes(&test_before, &test_after);
    let other_checks = other_checks(&counted(Phase::TestBefore), &counted(Phase::TestAfter));
    let epochs = inputs
        .steps
        .iter()
        .map(|step| {
            let records = counted(Phase::Train { epoch: step.epoch });
            let solved = records
                .iter()
                .filter(|r| r.attempt.outcome.is_solved())
                .count();
            EpochResult {
                epoch: step.epoch,
                accuracy: Accuracy::new(solved as u64, records.len() as u64),
                kept: step.kept,
                actions: step.actions,
                rejected: step.rejected,
                functions_after: step.functions_after.clone(),
                skipped: step.skipped.clone(),
                demonstrations: step.demonstrations,
                pruned: step.pruned.clone(),
            }
        })
        .collect();
    let phases = phase_times(inputs.phases);
    let spent = UsageReport::from_entries(inputs.spend);
    let rows = |totals: &BTreeMap<String, UsageTotals>| -> Vec<RoleUsage> {
        totals
            .iter()
            .map(|(role, totals)| RoleUsage::from_totals(role, totals))
            .collect()
    };
    let (usage, endpoints) = (rows(&spent.by_caller), rows(&spent.by_endpoint));
    TrainingReport {
        version: REPORT_VERSION,
        setup: inputs.setup,
        mcnemar_p: paired.mcnemar_exact_p(),
        paired,
        other_checks,
        test_before,
        test_after,
        epochs,
        functions: function_usage(inputs.records, inputs.functions),
        use_rates: use_rates(inputs.records),
        usage,
        endpoints,
        phases,
        stopped_early: inputs.stopped_early,
        infrastructure: infrastructure_counts(inputs.records),
        incomplete: inputs.incomplete,
    }
}

/// The test before and after under each other answer check the attempts carry, by
/// name.
fn other_checks(before: &[&ConversationRecord], after: &[&ConversationRecord]) -> Vec<CheckResult> {
    let names: BTreeSet<&String> = before
        .iter()
        .chain(after)
        .flat_map(|record| record.attempt.checks.keys())
        .collect();
    let scored = |records: &[&ConversationRecord], name: &str| {
        TestResult::from_outcomes(
            records
                .iter()
                .filter_map(|record| {
                    record
                        .attempt
                        .checks
                        .get(name)
                        .map(|correct| ProblemOutcome {
                            id: record.problem_id.clone(),
                            correct: *correct,
                        })
                })
                .collect(),
        )
    };
    names
        .into_iter()
        .map(|name| {
            let (test_before, test_after) = (scored(before, name), scored(after, name));
            let paired = pair_outcomes(&test_before, &test_after);
            CheckResult {
                name: name.clone(),
                mcnemar_p: paired.mcnemar_exact_p(),
                paired,
                test_before,
                test_after,
            }
        })
        .collect()
}

/// Calls of each function in force, in training and in the test after training.
fn function_usage(
    records: &BTreeMap<(Phase, usize), &ConversationRecord>,
    functions: &FunctionSet,
) -> Vec<FunctionUsage> {
    let mut training: BTreeMap<&str, CallCounts> = BTreeMap::new();
    let mut test_after: BTreeMap<&str, CallCounts> = BTreeMap::new();
    for ((phase, _), record) in records {
        let counts = match phase {
            Phase::Train { .. } => &mut training,
            Phase::TestAfter => &mut test_after,
            Phase::TestBefore | Phase::Validation { .. } => continue,
        };
        for (name, calls) in &record.attempt.calls {
            counts.entry(name.as_str()).or_default().merge(*calls);
        }
    }
    functions
        .iter()
        .map(|function| FunctionUsage {
            name: function.name.clone(),
            description: function.description.clone(),
            training: training
                .get(function.name.as_str())
                .copied()
                .unwrap_or_default(),
            test_after: test_after
                .get(function.name.as_str())
                .copied()
                .unwrap_or_default(),
        })
        .collect()
}

/// Wall time per phase: a phase continued by several processes has one line per
/// process, summed here.
fn phase_times(records: &[PhaseRecord]) -> Vec<PhaseTime> {
    let mut phases: Vec<PhaseTime> = Vec::new();
    for record in records {
        match phases.iter_mut().find(|phase| phase.phase == record.phase) {
            Some(phase) => phase.seconds += record.seconds,
            None => phases.push(PhaseTime {
                phase: record.phase.clone(),
                seconds: record.seconds,
            }),
        }
    }
    phases
}

/// Infrastructure errors still standing (not re-run successfully), per phase.
fn infrastructure_counts(
    records: &BTreeMap<(Phase, usize), &ConversationRecord>,
) -> Vec<InfrastructureCounts> {
    let mut by_phase: BTreeMap<Phase, (BTreeMap<FailureKind, u64>, String)> = BTreeMap::new();
    for ((phase, _), record) in records {
        if let Some(error) = record.attempt.outcome.infrastructure() {
            let (kinds, _) = by_phase
                .entry(*phase)
                .or_insert_with(|| (BTreeMap::new(), error.message.clone()));
            *kinds.entry(error.kind).or_default() += 1;
        }
    }
    by_phase
        .into_iter()
        .map(|(phase, (kinds, first_message))| InfrastructureCounts {
            phase: phase.name(),
            by_kind: kinds.into_iter().collect(),
            first_message,
        })
        .collect()
}
