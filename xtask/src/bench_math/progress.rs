//! What a person watching the run sees: one progress bar per phase (count, solved
//! so far, tokens, ETA), or with `--quiet` plain log lines; the full log goes into
//! the run directory ([`crate::logging`]).

use std::path::Path;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use agentopt_train::{Event, Observer, Outcome};

use super::error::BenchError;

/// One phase's bar: name, bar, count, solved so far and tokens, time and ETA.
const PHASE_TEMPLATE: &str =
    "{prefix:>20.bold} [{bar:20.cyan/blue}] {pos}/{len} {msg} · {elapsed_precise} (ETA {mean_eta})";

/// An optimizer step's spinner: name, what it is doing, time.
const STEP_TEMPLATE: &str = "{prefix:>20.bold} {spinner:.cyan} {msg} · {elapsed_precise}";

/// Time left at the mean pace of the conversations finished so far, `?` before the
/// first: a phase is a handful of minute-long conversations, where indicatif's
/// decaying rate estimate swings from 0 s to hours (seen: "ETA 2h" after 1 of 5).
fn mean_eta(state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write) {
    let done = state.pos();
    let text = eta_text(done, state.len().unwrap_or(done), state.elapsed());
    let _ = out.write_str(&text);
}

/// `?` before the first of `total` is `done`, else the mean pace times what is left,
/// as `HH:MM:SS` like `{elapsed_precise}`.
fn eta_text(done: u64, total: u64, elapsed: Duration) -> String {
    if done == 0 {
        return "?".to_owned();
    }
    let left = total.saturating_sub(done);
    let seconds = (elapsed.as_secs_f64() / done as f64 * left as f64).round() as u64;
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// Progress display for a run: bars on stderr, or nothing but logs.
#[derive(Debug, Clone)]
pub struct Progress {
    bars: Option<MultiProgress>,
}

impl Progress {
    /// Bars unless `quiet` (or stderr is not a terminal, where bars would be noise).
    pub fn new(quiet: bool) -> Self {
        let bars = (!quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self { bars }
    }

    /// Whether bars are drawn.
    pub fn shows_bars(&self) -> bool {
        self.bars.is_some()
    }

    /// Starts the display of a phase of `total` conversations.
    pub fn phase(&self, name: &str, total: u64) -> PhaseProgress {
        let bar = self.bars.as_ref().map(|multi| {
            let bar = multi.add(ProgressBar::new(total));
            bar.set_style(
                ProgressStyle::with_template(PHASE_TEMPLATE)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .with_key("mean_eta", mean_eta)
                    .progress_chars("=> "),
            );
            bar.set_prefix(name.to_owned());
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        });
        tracing::info!(phase = name, conversations = total, "phase started");
        let phase = PhaseProgress {
            bar,
            name: name.to_owned(),
            total,
            done: 0,
            solved: 0,
            tokens: 0,
            infrastructure: 0,
            started: std::time::Instant::now(),
            resumed: 0,
        };
        if let Some(bar) = &phase.bar {
            bar.set_message(phase.message());
        }
        phase
    }

    /// Starts the display of an optimizer step; `finish` it with what it decided.
    pub fn step(&self, name: &str) -> StepProgress {
        let spinner = self.bars.as_ref().map(|multi| {
            let spinner = multi.add(ProgressBar::new_spinner());
            spinner.set_style(
                ProgressStyle::with_template(STEP_TEMPLATE)
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            spinner.set_prefix(name.to_owned());
            spinner.set_message("the optimizer model is reading the conversations");
            spinner.enable_steady_tick(Duration::from_millis(200));
            spinner
        });
        StepProgress { spinner }
    }
}

/// The display of one phase.
#[derive(Debug)]
pub struct PhaseProgress {
    bar: Option<ProgressBar>,
    name: String,
    total: u64,
    done: u64,
    solved: u64,
    tokens: u64,
    infrastructure: u64,
    /// When the phase started in this process.
    started: std::time::Instant,
    /// Conversations counted from the journal (no time spent on them here).
    resumed: u64,
}

impl PhaseProgress {
    /// Counts a conversation that was already recorded (on `--resume`).
    pub fn resumed(&mut self, correct: bool, tokens: u64) {
        self.resumed += 1;
        self.count(correct, tokens);
        if let Some(bar) = &self.bar {
            bar.set_message(self.message());
        }
    }

    /// Counts a finished conversation.
    pub fn record(&mut self, outcome: &Outcome, tokens: u64) {
        self.count(outcome.is_solved(), tokens);
        let verdict = match outcome {
            Outcome::Solved => "correct".to_owned(),
            Outcome::Failed { .. } => "wrong".to_owned(),
            Outcome::Infrastructure(error) => {
                self.infrastructure += 1;
                format!("infrastructure error, not counted: {}", error.message)
            }
        };
        // The pace of the conversations run here, not of those read back.
        let eta = eta_text(
            self.done - self.resumed,
            self.total - self.resumed,
            self.started.elapsed(),
        );
        tracing::info!(
            phase = %self.name,
            done = self.done,
            total = self.total,
            solved = self.solved,
            tokens = self.tokens,
            eta = %eta,
            "conversation finished ({verdict})"
        );
        if let Some(bar) = &self.bar {
            bar.set_message(self.message());
        }
    }

    fn count(&mut self, correct: bool, tokens: u64) {
        self.done += 1;
        self.solved += u64::from(correct);
        self.tokens += tokens;
        if let Some(bar) = &self.bar {
            bar.set_position(self.done);
        }
    }

    /// `solved 2/3 (67%) · 12.3k tokens`, or `solved 0/0 · 0 tokens` before the first.
    fn message(&self) -> String {
        let rate = if self.done == 0 {
            String::new()
        } else {
            format!(" ({:.0}%)", self.solved as f64 * 100.0 / self.done as f64)
        };
        let errors = if self.infrastructure == 0 {
            String::new()
        } else {
            format!(" · {} infrastructure errors", self.infrastructure)
        };
        format!(
            "solved {}/{}{rate}{errors} · {} tokens",
            self.solved,
            self.done - self.infrastructure,
            compact(self.tokens)
        )
    }

    /// Ends the phase display.
    pub fn finish(self) {
        tracing::info!(
            phase = %self.name,
            solved = self.solved,
            total = self.done,
            tokens = self.tokens,
            "phase finished"
        );
        if let Some(bar) = &self.bar {
            bar.finish_with_message(self.message());
        }
    }
}

/// The display of one optimizer step.
#[derive(Debug)]
pub struct StepProgress {
    spinner: Option<ProgressBar>,
}

impl StepProgress {
    /// Ends the display with what the step decided.
    pub fn finish(self, summary: &str) {
        if let Some(spinner) = self.spinner {
            spinner.set_style(
                ProgressStyle::with_template("{prefix:>20.bold} {msg} · {elapsed_precise}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            spinner.finish_with_message(summary.to_owned());
        }
    }
}

/// `12345` → `12.3k`.
fn compact(count: u64) -> String {
    match count {
        0..1_000 => count.to_string(),
        1_000..1_000_000 => format!("{:.1}k", count as f64 / 1e3),
        _ => format!("{:.2}M", count as f64 / 1e6),
    }
}

/// Sets the global tracing subscriber ([`crate::logging::init_tracing`]) with the
/// full log in `log_path` and stderr lines drawn through the bars.
///
/// # Errors
/// [`BenchError::File`] when the log file cannot be opened.
pub fn init_tracing(log_path: &Path, progress: &Progress) -> Result<(), BenchError> {
    Ok(crate::logging::init_tracing(
        log_path,
        progress.bars.clone(),
    )?)
}

/// The trainer's events on the [`Progress`] display: a bar per phase, a spinner per
/// optimizer step.
pub struct ProgressObserver {
    progress: Progress,
    phase: std::sync::Mutex<Option<PhaseProgress>>,
    step: std::sync::Mutex<Option<StepProgress>>,
}

impl ProgressObserver {
    /// Renders on `progress`.
    pub fn new(progress: Progress) -> Self {
        Self {
            progress,
            phase: std::sync::Mutex::new(None),
            step: std::sync::Mutex::new(None),
        }
    }
}

impl Observer for ProgressObserver {
    fn event(&self, event: Event<'_>) {
        let mut phase = agentopt_core::lock(&self.phase);
        match event {
            Event::PhaseStarted {
                phase: started,
                total,
            } => {
                *phase = Some(self.progress.phase(&started.name(), total as u64));
            }
            Event::Resumed {
                outcome, tokens, ..
            } => {
                if let Some(display) = phase.as_mut() {
                    display.resumed(outcome.is_solved(), tokens);
                }
            }
            Event::Finished {
                outcome, tokens, ..
            } => {
                if let Some(display) = phase.as_mut() {
                    display.record(outcome, tokens);
                }
            }
            Event::PhaseFinished { .. } => {
                if let Some(display) = phase.take() {
                    display.finish();
                }
            }
            Event::StepStarted { epoch } => {
                let mut step = agentopt_core::lock(&self.step);
                *step = Some(self.progress.step(&format!("step {epoch}")));
            }
            Event::StepFinished { step: record } => {
                let mut step = agentopt_core::lock(&self.step);
                if let Some(display) = step.take() {
                    display.finish(&record.summary());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_templates_parse() {
        for template in [super::PHASE_TEMPLATE, super::STEP_TEMPLATE] {
            assert!(indicatif::ProgressStyle::with_template(template).is_ok());
        }
    }

    #[test]
    fn eta_is_the_mean_pace_and_unknown_before_the_first() {
        let minute = std::time::Duration::from_secs(60);
        assert_eq!(super::eta_text(0, 5, minute), "?");
        assert_eq!(super::eta_text(2, 5, 2 * minute), "00:03:00");
        assert_eq!(super::eta_text(3, 5, 100 * minute), "01:06:40");
        assert_eq!(super::eta_text(5, 5, minute), "00:00:00");
    }

    #[test]
    fn compact_counts() {
        for (count, text) in [
            (0, "0"),
            (999, "999"),
            (12_345, "12.3k"),
            (4_560_000, "4.56M"),
        ] {
            assert_eq!(super::compact(count), text);
        }
    }
}
