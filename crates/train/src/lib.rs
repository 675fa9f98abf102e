//! Training as a library. Implement [`Task`] for your problems — run one problem
//! with a [`FunctionSet`] installed and say what happened — and the [`Trainer`] does
//! the rest of AgentOptimizer's training run: test before → epochs of (training
//! conversations, optional validation batch, optimizer step, new functions) → test
//! after, with bounded concurrency, roll-back, patience, budgets, a crash-safe run
//! journal with exact resume, progress events, and a typed [`TrainingReport`].
//!
//! **An infrastructure error is never training signal**: an [`Attempt`] whose
//! [`Outcome`] is [`Outcome::Infrastructure`] (the model failed after retries, a
//! malformed reply, the sandbox, an undecided checker, the budget) is kept in the
//! journal but never given to the optimizer, never counted as a wrong answer, shown
//! as its own count in the report, and run again on resume.
//!
//! ```no_run
//! use agentopt_train::{Attempt, FunctionSet, Outcome, Task};
//!
//! struct Arithmetic;
//!
//! #[async_trait::async_trait]
//! impl Task for Arithmetic {
//!     type Problem = (String, i64);
//!     fn problem_id(&self, problem: &Self::Problem) -> String {
//!         problem.0.clone()
//!     }
//!     async fn attempt(&self, problem: &Self::Problem, functions: &FunctionSet) -> Attempt {
//!         // Build agents, `agentopt_agents::install` the functions, chat, check.
//!         # let _ = functions;
//!         Attempt::new(Outcome::Solved, Vec::new())
//!     }
//! }
//! ```

mod claim;
mod error;
mod html;
mod journal;
mod progress;
mod report;
mod retrieval;
mod tape;
mod task;
mod throughput;
mod trainer;

pub use agentopt_agents::FailureKind;
pub use agentopt_core::{FunctionSet, LearnedFunction};
pub use agentopt_sandbox::CallCounts;
pub use error::TrainError;
pub use html::{learning_curve_svg, write_report_html};
pub use journal::{
    ConversationRecord, DemonstrationCounts, ForcedCallRecord, Phase, PhaseRecord, RoleUsage,
    RunDir, StepRecord,
};
pub use progress::{Event, NoProgress, Observer};
pub use report::{
    Accuracy, CheckResult, EpochResult, FunctionUsage, InfrastructureCounts, PhaseTime,
    ProblemOutcome, REPORT_VERSION, Setup, TestResult, TrainingReport, UseRate, duration_text,
    pair_outcomes,
};
pub use retrieval::{DEFAULT_RETRIEVAL_K, most_similar, retrieve};
pub use tape::{OptimizerExchange, StepDetail};
pub use task::{Attempt, InfraError, Outcome, Task};
pub use throughput::{Throughput, measure_throughput};
pub use trainer::{Problems, Trainer, TrainerOptions};
