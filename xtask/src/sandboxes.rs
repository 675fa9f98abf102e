//! The sandbox session factories of a MATH training run, as the bench commands set
//! them up.

use std::sync::Arc;
use std::time::Duration;

use agentopt_sandbox::{
    ExecutorFactory, PythonEnvironment, SandboxError, SandboxPolicy, SandboxSessions,
};

/// Time limit of a learned-function call made to check an answer or a proposal.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a run's conversations, answer checks and proposal checks run their code.
pub struct MathSandboxes {
    /// Conversations: a fork server booting now (while the first model calls are on
    /// their way) with a session forked for every conversation that may run at once,
    /// and at most that many alive.
    pub conversations: Arc<dyn ExecutorFactory>,
    /// Symbolic answer checks (every final answer gets one): a fork server booting
    /// now with one session ahead, apart from the conversations' (a capped factory
    /// would deadlock a conversation waiting on its own check).
    pub checker: Arc<dyn ExecutorFactory>,
    /// Tries of proposed functions: one session forked ahead.
    pub proposals: Arc<dyn ExecutorFactory>,
}

impl MathSandboxes {
    /// The factories for `concurrency` conversations at once. Checking an answer or
    /// trying a proposed function is the run's own work: a function that hangs there
    /// is stopped after [`CHECK_TIMEOUT`], not AG2's 600 s.
    ///
    /// # Errors
    /// Outside a tokio runtime, or where the sandbox's isolation is unavailable.
    pub fn start(
        environment: &PythonEnvironment,
        concurrency: usize,
    ) -> Result<Self, SandboxError> {
        let checks = SandboxPolicy {
            function_timeout: CHECK_TIMEOUT,
            ..SandboxPolicy::default()
        };
        let conversations =
            SandboxSessions::warm(environment.clone(), SandboxPolicy::default(), concurrency)?;
        // The checks differ only in their timeout: one fork server serves all three.
        let proposals = conversations.sibling(checks.clone(), 1)?;
        let checker = conversations.sibling(checks, 1)?;
        Ok(Self {
            conversations: Arc::new(conversations.with_max_live(concurrency)),
            proposals: Arc::new(proposals),
            checker: Arc::new(checker),
        })
    }
}
