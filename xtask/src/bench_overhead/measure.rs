//! Instruments for one training run: wrappers around the model, the conversations'
//! sandbox sessions and the task that time what each attempt spends waiting on the
//! server and in Python, so the rest is the orchestration's own time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentopt_llm::{ChatModel, ChatRequest, ChatResponse, ChatWrapper, LlmError};
use agentopt_sandbox::{
    CellOutcome, Executor, ExecutorFactory, LearnedFunction, Protections, SandboxError,
};
use agentopt_train::{Attempt, Event, FunctionSet, Observer, Task};
use async_trait::async_trait;
use serde_json::{Map, Value};

tokio::task_local! {
    /// The attempt the current future belongs to (unset in the optimizer's step).
    static ATTEMPT: Arc<AttemptClock>;
}

use agentopt_core::lock;

/// What one attempt spent, filled in while it runs.
#[derive(Debug, Default)]
struct AttemptClock {
    inner: Mutex<Spent>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Spent {
    model_calls: u32,
    model_wait: Duration,
    python: Duration,
}

/// One finished attempt.
#[derive(Debug, Clone, Copy)]
pub struct AttemptSample {
    /// Index of its phase in the run (0 = test before).
    pub phase: usize,
    /// Model calls it made.
    pub model_calls: u32,
    /// Its wall time.
    pub wall: Duration,
    /// Time inside the model client (request sent to answer parsed).
    pub model_wait: Duration,
    /// Time getting its sandbox session and inside its cells and function calls.
    pub python: Duration,
}

/// Everything the instruments saw in one run.
#[derive(Debug, Default)]
pub struct Recorder {
    attempts: Mutex<Vec<AttemptSample>>,
    /// From asking for a conversation's session to its first cell's answer.
    first_cells: Mutex<Vec<Duration>>,
    /// Model calls made outside any attempt (the optimizer's).
    optimizer_calls: Mutex<u32>,
    /// Phases started so far.
    phases: Mutex<usize>,
}

impl Recorder {
    /// The finished attempts, in finishing order.
    pub fn attempts(&self) -> Vec<AttemptSample> {
        lock(&self.attempts).clone()
    }

    /// First-cell latencies of the conversations that ran code.
    pub fn first_cells(&self) -> Vec<Duration> {
        lock(&self.first_cells).clone()
    }

    /// Model calls made outside attempts.
    pub fn optimizer_calls(&self) -> u32 {
        *lock(&self.optimizer_calls)
    }
}

/// Counts phases as the trainer starts them (phases run one after another).
pub struct PhaseCounter(pub Arc<Recorder>);

impl Observer for PhaseCounter {
    fn event(&self, event: Event<'_>) {
        if let Event::PhaseStarted { .. } = event {
            *lock(&self.0.phases) += 1;
        }
    }
}

/// A model that times every call and books it on the attempt making it.
pub struct TimedModel {
    inner: Arc<dyn ChatModel>,
    recorder: Arc<Recorder>,
}

impl TimedModel {
    /// Times `inner`'s calls into `recorder`.
    pub fn new(inner: Arc<dyn ChatModel>, recorder: Arc<Recorder>) -> Self {
        Self { inner, recorder }
    }
}

#[async_trait]
impl ChatWrapper for TimedModel {
    fn inner(&self) -> &dyn ChatModel {
        self.inner.as_ref()
    }

    async fn wrapped_chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let attempt = ATTEMPT.try_with(Arc::clone).ok();
        let started = Instant::now();
        let response = self.inner.chat(request).await;
        match attempt {
            Some(clock) => {
                let mut spent = lock(&clock.inner);
                spent.model_calls += 1;
                spent.model_wait += started.elapsed();
            }
            None => *lock(&self.recorder.optimizer_calls) += 1,
        }
        response
    }
}

/// Conversation sessions whose first-cell latency and cell time are recorded.
pub struct TimedSessions {
    inner: Arc<dyn ExecutorFactory>,
    recorder: Arc<Recorder>,
}

impl TimedSessions {
    /// Times the sessions of `inner` into `recorder`.
    pub fn new(inner: Arc<dyn ExecutorFactory>, recorder: Arc<Recorder>) -> Self {
        Self { inner, recorder }
    }
}

#[async_trait]
impl ExecutorFactory for TimedSessions {
    async fn start(&self) -> Result<Box<dyn Executor>, SandboxError> {
        let asked = Instant::now();
        let session = self.inner.start().await?;
        let attempt = ATTEMPT.try_with(Arc::clone).ok();
        if let Some(clock) = &attempt {
            lock(&clock.inner).python += asked.elapsed();
        }
        Ok(Box::new(TimedExecutor {
            inner: session,
            asked: Some(asked),
            attempt,
            recorder: Arc::clone(&self.recorder),
        }))
    }
}

struct TimedExecutor {
    inner: Box<dyn Executor>,
    /// When the session was asked for, until its first cell has answered.
    asked: Option<Instant>,
    attempt: Option<Arc<AttemptClock>>,
    recorder: Arc<Recorder>,
}

impl TimedExecutor {
    /// Books the time since `started` as Python's, and a cell's answer as the
    /// session's first one if it is.
    fn book(&mut self, started: Instant, cell: bool) {
        if let Some(asked) = self.asked.take_if(|_| cell) {
            lock(&self.recorder.first_cells).push(asked.elapsed());
        }
        if let Some(clock) = &self.attempt {
            lock(&clock.inner).python += started.elapsed();
        }
    }
}

#[async_trait]
impl Executor for TimedExecutor {
    async fn run_cell(&mut self, code: &str) -> Result<CellOutcome, SandboxError> {
        let started = Instant::now();
        let outcome = self.inner.run_cell(code).await;
        self.book(started, true);
        outcome
    }

    async fn call_function(
        &mut self,
        function: &LearnedFunction,
        arguments: &Map<String, Value>,
    ) -> Result<CellOutcome, SandboxError> {
        let started = Instant::now();
        let outcome = self.inner.call_function(function, arguments).await;
        self.book(started, true);
        outcome
    }

    async fn restart(&mut self) -> Result<(), SandboxError> {
        self.inner.restart().await
    }

    async fn define_functions(
        &mut self,
        functions: &[LearnedFunction],
    ) -> Result<CellOutcome, SandboxError> {
        let started = Instant::now();
        let outcome = self.inner.define_functions(functions).await;
        self.book(started, false);
        outcome
    }

    fn protections(&self) -> Protections {
        self.inner.protections()
    }
}

/// A task whose attempts are timed: wall time, and (through [`TimedModel`] and
/// [`TimedSessions`]) the model's and Python's share of it.
pub struct TimedTask<T> {
    inner: T,
    recorder: Arc<Recorder>,
}

impl<T> TimedTask<T> {
    /// Times `inner`'s attempts into `recorder`.
    pub fn new(inner: T, recorder: Arc<Recorder>) -> Self {
        Self { inner, recorder }
    }
}

#[async_trait]
impl<T: Task> Task for TimedTask<T> {
    type Problem = T::Problem;

    fn problem_id(&self, problem: &Self::Problem) -> String {
        self.inner.problem_id(problem)
    }

    fn models(&self) -> Vec<Arc<dyn ChatModel>> {
        self.inner.models()
    }

    async fn attempt(&self, problem: &Self::Problem, functions: &FunctionSet) -> Attempt {
        let clock = Arc::new(AttemptClock::default());
        let phase = lock(&self.recorder.phases).saturating_sub(1);
        let started = Instant::now();
        let attempt = ATTEMPT
            .scope(Arc::clone(&clock), self.inner.attempt(problem, functions))
            .await;
        let wall = started.elapsed();
        let spent = *lock(&clock.inner);
        lock(&self.recorder.attempts).push(AttemptSample {
            phase,
            model_calls: spent.model_calls,
            wall,
            model_wait: spent.model_wait,
            python: spent.python,
        });
        attempt
    }
}
