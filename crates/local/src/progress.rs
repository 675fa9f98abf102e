//! Progress output for the slow steps (download, assembly, runtime install, start).
//!
//! On a terminal each step is an indicatif bar or spinner on stderr; elsewhere (CI
//! logs) each step prints one line when it starts and one with its duration when it
//! ends, so logs show where time went.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Whether the slow steps report progress on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Progress {
    /// Bars and spinners on a terminal, one line per step start and end otherwise.
    #[default]
    Show,
    /// Print nothing.
    Quiet,
}

/// One reported step; finish it with [`Step::finish`].
pub(crate) struct Step {
    label: String,
    started: Instant,
    output: StepOutput,
}

enum StepOutput {
    Bar(ProgressBar),
    Lines,
    Silent,
}

impl Progress {
    /// Starts a step measured in bytes (`total` of them).
    pub(crate) fn bytes(self, label: &str, total: u64) -> Step {
        self.start(label, || {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        })
    }

    /// Starts a step of unknown length (a spinner).
    pub(crate) fn spinner(self, label: &str) -> Step {
        self.start(label, || {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        })
    }

    fn start(self, label: &str, make_bar: impl FnOnce() -> ProgressBar) -> Step {
        let output = match self {
            Progress::Quiet => StepOutput::Silent,
            Progress::Show if std::io::stderr().is_terminal() => {
                let bar = make_bar();
                bar.set_message(label.to_owned());
                StepOutput::Bar(bar)
            }
            Progress::Show => {
                eprintln!("agentopt: {label} …");
                StepOutput::Lines
            }
        };
        Step {
            label: label.to_owned(),
            started: Instant::now(),
            output,
        }
    }
}

impl Step {
    /// Advances a byte step.
    pub(crate) fn advance(&self, bytes: u64) {
        if let StepOutput::Bar(bar) = &self.output {
            bar.inc(bytes);
        }
    }

    /// Replaces the step's message (e.g. "3/6 wheels") on a terminal.
    pub(crate) fn set_detail(&self, detail: &str) {
        if let StepOutput::Bar(bar) = &self.output {
            bar.set_message(format!("{} {detail}", self.label));
        }
    }

    /// Ends the step and reports its duration.
    pub(crate) fn finish(self) {
        let elapsed = self.started.elapsed();
        match &self.output {
            StepOutput::Bar(bar) => bar.finish_with_message(format!(
                "{}: done in {:.1} s",
                self.label,
                elapsed.as_secs_f64()
            )),
            StepOutput::Lines => {
                eprintln!(
                    "agentopt: {}: done in {:.1} s",
                    self.label,
                    elapsed.as_secs_f64()
                );
            }
            StepOutput::Silent => {}
        }
    }
}
