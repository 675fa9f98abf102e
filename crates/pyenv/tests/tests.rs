//! agentopt-pyenv against the machine's real Python: interpreter search, venv
//! creation, reuse, adoption and rebuild, pip failures.

use std::path::Path;
use std::process::Command;

use agentopt_pyenv::{
    PyEnvError, READY_MARKER, Venv, VenvOptions, find_interpreter, run, tail_lines,
};

#[test]
fn finds_a_real_interpreter_and_names_rejected_ones() {
    let found = find_interpreter(None, (3, 9)).expect("a Python >= 3.9 on the machine");
    assert!(found.executable.is_absolute() && found.executable.is_file());
    assert!(!found.executable.to_string_lossy().contains("shims"));
    assert!(found.version.starts_with("3."), "{}", found.version);

    let missing = Path::new("/nonexistent/python3");
    match find_interpreter(Some(missing), (3, 9)) {
        Err(error @ PyEnvError::NoPython { .. }) => {
            let message = error.to_string();
            assert!(message.contains("/nonexistent/python3: "), "{message}");
            assert!(message.contains("Python >= 3.9"), "{message}");
        }
        other => panic!("expected NoPython, got {other:?}"),
    }
    match find_interpreter(Some(&found.executable), (99, 0)) {
        Err(PyEnvError::NoPython { tried, minimum }) => {
            assert_eq!(minimum, "99.0");
            assert_eq!(tried[0].0, found.executable);
            assert!(tried[0].1.starts_with("version 3."), "{tried:?}");
            assert!(tried[0].1.ends_with("is older than 99.0"), "{tried:?}");
        }
        other => panic!("expected NoPython, got {other:?}"),
    }
}

/// One venv, built once, then reused, adopted without its marker, and rebuilt
/// when it is a broken leftover.
#[test]
fn a_venv_is_built_once_reused_adopted_or_rebuilt() {
    let root = tempfile::tempdir().expect("temporary directory");
    let options = VenvOptions::new(root.path().join("venv"), (3, 9));
    assert_eq!(options.lock, root.path().join("venv.lock"));

    let built = Venv::ensure(&options).expect("venv built");
    assert!(built.python().is_file());
    assert!(built.dir().join(READY_MARKER).is_file());
    let keep = built.dir().join("keep-me");
    std::fs::write(&keep, "").expect("write");

    let threads: Vec<_> = (0..3)
        .map(|_| {
            let options = options.clone();
            std::thread::spawn(move || Venv::ensure(&options))
        })
        .collect();
    for thread in threads {
        let again = thread.join().expect("thread").expect("ensure");
        assert_eq!(again, built, "a complete venv is reused");
    }
    assert!(keep.is_file(), "reuse does not rebuild");

    // A venv from before markers (or with an old plain-text marker) is adopted.
    std::fs::write(built.dir().join(READY_MARKER), "/usr/bin/python3").expect("write");
    let adopted = Venv::ensure(&options).expect("adopted");
    assert_eq!(adopted.base().version, built.base().version);
    assert!(keep.is_file(), "adoption does not rebuild");

    // Without a working interpreter it is a leftover: rebuilt from scratch.
    std::fs::remove_file(built.dir().join(READY_MARKER)).expect("remove marker");
    std::fs::remove_file(built.python()).expect("remove interpreter");
    let rebuilt = Venv::ensure(&options).expect("rebuilt");
    assert!(rebuilt.python().is_file());
    assert!(!keep.exists(), "the leftover was removed");
}

#[test]
fn pip_failures_carry_the_command_and_output() {
    let root = tempfile::tempdir().expect("temporary directory");
    let venv = Venv::ensure(&VenvOptions::new(root.path().join("venv"), (3, 9))).expect("venv");
    let _lock = venv.lock().expect("lock");
    match venv.install(&["sympy"], &["--no-such-option"]) {
        Err(PyEnvError::Command {
            command, output, ..
        }) => {
            assert!(command.contains("-m pip install"), "{command}");
            assert!(command.ends_with("--no-such-option sympy"), "{command}");
            assert!(output.contains("no such option"), "{output}");
        }
        other => panic!("expected a pip failure, got {other:?}"),
    }
}

#[test]
fn commands_that_cannot_start_or_fail_are_errors() {
    match run(&mut Command::new("/nonexistent/tool")) {
        Err(PyEnvError::Command { status, .. }) => {
            assert!(status.starts_with("could not run: "), "{status}");
        }
        other => panic!("expected Command, got {other:?}"),
    }
    match run(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"])) {
        Err(error @ PyEnvError::Command { .. }) => assert_eq!(
            error.to_string(),
            "`sh -c echo out; echo err >&2; exit 3` failed (exit status: 3); output:\nout\nerr\n"
        ),
        other => panic!("expected Command, got {other:?}"),
    }
    assert_eq!(tail_lines("a\nb\nc", 2), "b\nc");
    assert_eq!(tail_lines("a", 5), "a");
}
