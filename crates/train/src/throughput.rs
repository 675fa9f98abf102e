//! Problems per hour: a task run once over a set of problems at a given
//! concurrency, without training or a journal (for choosing a concurrency and
//! sizing runs).

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::{FunctionSet, Task};

/// What one pass over the problems took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Attempts run at once.
    pub concurrency: usize,
    /// Problems attempted.
    pub problems: usize,
    /// Problems solved.
    pub solved: usize,
    /// Attempts stopped by infrastructure.
    pub infrastructure: usize,
    /// Model tokens spent (prompt + completion).
    pub tokens: u64,
    /// Wall time of the whole pass.
    pub wall: Duration,
}

impl Throughput {
    /// Problems finished per hour of wall time.
    pub fn problems_per_hour(&self) -> f64 {
        per_second(self.problems as f64, self.wall) * 3600.0
    }

    /// Model tokens per second of wall time.
    pub fn tokens_per_second(&self) -> f64 {
        per_second(self.tokens as f64, self.wall)
    }
}

fn per_second(count: f64, wall: Duration) -> f64 {
    let seconds = wall.as_secs_f64();
    if seconds > 0.0 { count / seconds } else { 0.0 }
}

/// Runs every problem once with `functions` installed, `concurrency` at a time,
/// and says how long that took.
pub async fn measure_throughput<T: Task>(
    task: &T,
    problems: &[T::Problem],
    functions: &FunctionSet,
    concurrency: usize,
) -> Throughput {
    let started = Instant::now();
    let attempts: Vec<_> = futures::stream::iter(problems)
        .map(|problem| task.attempt(problem, functions))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    Throughput {
        concurrency,
        problems: attempts.len(),
        solved: attempts.iter().filter(|a| a.outcome.is_solved()).count(),
        infrastructure: attempts
            .iter()
            .filter(|a| a.outcome.infrastructure().is_some())
            .count(),
        tokens: attempts.iter().map(|attempt| attempt.tokens).sum(),
        wall: started.elapsed(),
    }
}
