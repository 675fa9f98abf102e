//! Running setup commands: their failures carry the command line and output.

use std::process::{Command, Output, Stdio};

use crate::PyEnvError;

/// Runs `command` to completion with no stdin, capturing its output.
///
/// # Errors
/// [`PyEnvError::Command`] when it cannot start or exits unsuccessfully.
pub fn run(command: &mut Command) -> Result<Output, PyEnvError> {
    let description = describe(command);
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| PyEnvError::not_started(&description, &error))?;
    check(&description, output)
}

/// `output` if its status is success, else [`PyEnvError::Command`] with
/// `description`, the status and stdout + stderr.
///
/// # Errors
/// As said.
pub fn check(description: &str, output: Output) -> Result<Output, PyEnvError> {
    if output.status.success() {
        return Ok(output);
    }
    Err(PyEnvError::Command {
        command: description.to_owned(),
        status: output.status.to_string(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}

/// The command line of `command`, for messages.
#[must_use]
pub fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The last `count` lines of `text`.
#[must_use]
pub fn tail_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}
