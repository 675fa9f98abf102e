//! The run's results (`report.json`) and their renderings: `report.md` and the
//! terminal summary that mirrors the seed notebook's final print.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::stats::{Interval, PairedCounts, Z_95, wilson_interval};

/// Format version of `report.json`.
pub const REPORT_VERSION: u32 = 1;

/// Everything a finished run reports. Pure data: built by the run, read by the
/// renderers and the plot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
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
    /// One entry per training epoch that ran.
    pub epochs: Vec<EpochResult>,
    /// The functions the agents hold after training.
    pub functions: Vec<FunctionUsage>,
    /// Tokens and cost per caller role (assistant, optimizer …), metered calls only.
    pub usage: Vec<RoleUsage>,
    /// Wall time per phase, in run order.
    pub phases: Vec<PhaseTime>,
    /// Why training ended before the planned epochs, if it did.
    pub stopped_early: Option<String>,
}

/// The run's settings, as shown in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setup {
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
    /// Problems attempted.
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
    fn summary(&self) -> String {
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
    /// Function names in force after the step.
    pub functions_after: Vec<String>,
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

/// How often a function was called and how often that worked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCounts {
    /// Calls.
    pub calls: u64,
    /// Calls that returned without error.
    pub succeeded: u64,
}

/// Metered usage of one caller role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleUsage {
    /// Caller label (`assistant`, `optimizer`, …).
    pub role: String,
    /// Uncached calls.
    pub calls: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Cost in US dollars (0 for unpriced models).
    pub cost_usd: f64,
}

/// Wall time of one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseTime {
    /// Phase name (`test before`, `epoch 1`, `step 1`, `test after`, …).
    pub phase: String,
    /// Seconds.
    pub seconds: f64,
}

/// `0.5` → `50.0%`.
fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// A duration for people: `42.0 s`, `3 min 05 s`, `1 h 02 min`.
fn duration(seconds: f64) -> String {
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

impl Report {
    /// `report.md`: a self-contained summary for people.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let setup = &self.setup;
        let _ = writeln!(md, "# AgentOptimizer on MATH\n");
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
        if let Some(reason) = &self.stopped_early {
            let _ = writeln!(md, "| stopped early | {} |", cell(reason));
        }

        let _ = writeln!(md, "\n## Test accuracy before and after training\n");
        let _ = writeln!(
            md,
            "| agents | solved | success rate | 95% Wilson interval |\n|---|---:|---:|---|"
        );
        for (label, result) in [
            ("before training", &self.test_before),
            ("after training", &self.test_after),
        ] {
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
                    if epoch.kept { "kept" } else { "rolled back" },
                    epoch.actions
                );
            }
        }

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

        let _ = writeln!(md, "\n## Tokens and cost\n");
        let _ = writeln!(
            md,
            "| role | calls | prompt tokens | completion tokens | cost (USD) |\n|---|---:|---:|---:|---:|"
        );
        let mut total = RoleUsage {
            role: "total".to_owned(),
            calls: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_usd: 0.0,
        };
        for usage in &self.usage {
            total.calls += usage.calls;
            total.prompt_tokens += usage.prompt_tokens;
            total.completion_tokens += usage.completion_tokens;
            total.cost_usd += usage.cost_usd;
        }
        for usage in self.usage.iter().chain(std::iter::once(&total)) {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.4} |",
                cell(&usage.role),
                usage.calls,
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cost_usd
            );
        }
        let _ = writeln!(md, "\nCached replies cost nothing and are not counted.");

        let _ = writeln!(md, "\n## Wall time\n");
        let _ = writeln!(md, "| phase | time |\n|---|---:|");
        let mut total_seconds = 0.0;
        for phase in &self.phases {
            total_seconds += phase.seconds;
            let _ = writeln!(
                md,
                "| {} | {} |",
                cell(&phase.phase),
                duration(phase.seconds)
            );
        }
        let _ = writeln!(md, "| total | {} |", duration(total_seconds));
        md
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
        out
    }
}
