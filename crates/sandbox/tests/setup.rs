//! The managed Python environment: idempotent setup and the package allowlist.

use agentopt_sandbox::{EnvironmentOptions, PACKAGE_ALLOWLIST, PythonEnvironment, SandboxError};

use crate::python_environment;

#[test]
fn ensure_is_idempotent_across_threads() {
    let first = python_environment();
    let handles: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(PythonEnvironment::ensure))
        .collect();
    for handle in handles {
        let again = handle.join().expect("thread").expect("ensure");
        assert_eq!(again, first);
    }
    assert!(first.interpreter.starts_with(&first.venv));
    assert!(first.packages.iter().any(|p| p.starts_with("sympy")));
    assert!(first.packages.iter().any(|p| p.starts_with("numpy")));
    assert!(!first.base_prefix.to_string_lossy().contains("shims"));
}

#[test]
fn packages_off_the_allowlist_are_refused() {
    let check = |package: &str| {
        let options = EnvironmentOptions {
            extra_packages: vec![package.to_owned()],
            ..EnvironmentOptions::default()
        };
        match PythonEnvironment::ensure_with(&options) {
            Err(SandboxError::PackageNotAllowed { package: named }) => assert_eq!(named, package),
            other => panic!("{package}: expected PackageNotAllowed, got {other:?}"),
        }
    };
    for package in [
        "requests",
        "sympy==1.0",
        "git+https://example.invalid/x",
        "../evil",
        "numpy; os_name",
    ] {
        check(package);
    }
    assert!(PACKAGE_ALLOWLIST.contains(&"scipy"));
}

#[test]
fn allowlisted_packages_already_installed_need_no_work() {
    let options = EnvironmentOptions {
        extra_packages: vec!["SymPy".to_owned()],
        ..EnvironmentOptions::default()
    };
    let environment = PythonEnvironment::ensure_with(&options).expect("ensure");
    assert!(environment.packages.contains("sympy"));
}
