//! `bench-math`'s flags for the levers that get small models to call learned
//! functions (docs/design/learned-use.md), and their mapping onto the library's
//! options. All off by default: AG2's behaviour.

use agentopt_agents::{DemonstrationPlacement, ReplyPrefill};
use agentopt_optimizer::LearnedUseOptions;

use crate::flags::at_least_one;

/// The learned-function-use flags (flattened into `bench-math`'s).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LearnedUseArgs {
    /// Start the assistant's first reply with this text (`\n` for a newline), e.g.
    /// '```python\n': llama.cpp continues it, and the 1.5B model then writes code in
    /// 8 of 8 first replies instead of 2 (docs/bench-math/learned-use-plan.md).
    /// Default: none (AG2's request).
    #[arg(long, value_name = "TEXT", help_heading = "Learned-function use")]
    pub reply_prefill: Option<String>,
    /// Start every assistant reply with --reply-prefill, not only the first (no
    /// effect without it).
    #[arg(long, help_heading = "Learned-function use")]
    pub prefill_every_reply: bool,
    /// End each assistant reply where it writes this text (repeatable; `\n` for a
    /// newline), e.g. '```output': the 1.5B model writes the output it imagines
    /// after its code and answers from it; stopped there, it reads the real one.
    /// Default: none (AG2's request).
    #[arg(long, value_name = "TEXT", help_heading = "Learned-function use")]
    pub reply_stop: Vec<String>,
    /// Worked examples with every learned function: the optimizer writes them with
    /// each function (kept only when running them reproduces the training problem's
    /// answer) and the assistant sees them in its style's format, in the system
    /// message or the first user message. Default: off (AG2).
    #[arg(
        long,
        value_name = "PLACE",
        default_value_t,
        help_heading = "Learned-function use"
    )]
    pub demonstrations: DemonstrationPlacement,
    /// Also give each learned function up to N worked examples read off correct
    /// training conversations that called it (verified the same way).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        help_heading = "Learned-function use"
    )]
    pub bootstrap_demonstrations: usize,
    /// After each step, give each learned function that has no worked example one:
    /// a conversation on the training problem most like it (BM25) whose first reply
    /// is prefilled up to its call ('```python\nprint(NAME('), kept when the answer
    /// is right and the example verifies. Code styles only; the extra conversations
    /// count as the step's spend.
    #[arg(long, help_heading = "Learned-function use")]
    pub forced_call_demonstrations: bool,
    /// Make every conversation offered a function call the most relevant one: its
    /// first reply is prefilled up to the call ('```python\nprint(NAME('), and the
    /// model writes the arguments. Code styles only.
    #[arg(long, help_heading = "Learned-function use")]
    pub force_call: bool,
    /// Call each proposed function on sample arguments of its declared types before
    /// accepting it; one that fails with a code error (undefined name, missing
    /// import, wrong call) is rejected with the error.
    #[arg(long, help_heading = "Learned-function use")]
    pub execution_checks: bool,
    /// Show the optimizer each function's calls and successes in the conversations.
    #[arg(long, help_heading = "Learned-function use")]
    pub use_statistics: bool,
    /// Remove a function no training conversation called in this many consecutive
    /// epochs.
    #[arg(long, value_name = "EPOCHS", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Learned-function use")]
    pub prune_unused_after: Option<u32>,
    /// Offer each problem at most K functions, the most relevant among those that
    /// share a word with it (BM25 of the problem against each function's name,
    /// description and examples; a problem nothing matches is offered none); the
    /// offered set is journaled with each attempt. `--retrieve` alone: K = 3.
    #[arg(long, value_name = "K", num_args = 0..=1, default_missing_value = "3", value_parser = at_least_one, help_heading = "Learned-function use")]
    pub retrieve: Option<usize>,
    /// Also show the optimizer the code of correct training solutions and ask it
    /// to generalise it into a function.
    #[arg(long, help_heading = "Learned-function use")]
    pub from_what_worked: bool,
}

impl LearnedUseArgs {
    /// The reply prefill the flags ask for (`\n` on the command line is a newline).
    pub fn reply_prefill(&self) -> Option<ReplyPrefill> {
        self.reply_prefill.as_ref().map(|text| ReplyPrefill {
            text: with_newlines(text),
            every_reply: self.prefill_every_reply,
        })
    }

    /// The reply stops the flags ask for (`\n` on the command line is a newline).
    pub fn reply_stop(&self) -> Vec<String> {
        self.reply_stop
            .iter()
            .map(|text| with_newlines(text))
            .collect()
    }

    /// The optimizer's levers the flags ask for.
    pub fn optimizer_options(&self) -> LearnedUseOptions {
        LearnedUseOptions {
            demonstrations: self.demonstrations != DemonstrationPlacement::Off,
            execution_checks: self.execution_checks,
            use_statistics: self.use_statistics,
            prune_unused_after: self.prune_unused_after,
            from_what_worked: self.from_what_worked,
        }
    }
}

/// A command-line text with each `\n` read as a newline.
fn with_newlines(text: &str) -> String {
    text.replace("\\n", "\n")
}
