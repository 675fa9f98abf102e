//! The escape suite: hostile cells must be contained, the host unharmed, and the next
//! cell must work (or be told that its state was reset).

use std::time::Duration;

use agentopt_sandbox::{CellOutcome, CellStatus, PythonSession, SandboxPolicy, WorkerPool};

use crate::{python_environment, session, session_with};

/// Runs `code` after defining `marker`, checks the outcome, then checks the session
/// still works: with `marker` intact, or with the reset reported.
async fn check(code: &str, expect: impl Fn(&CellOutcome) -> bool) -> CellOutcome {
    let mut s = session().await;
    let setup = run(&mut s, "marker = 'still here'").await;
    assert!(setup.succeeded(), "{setup:?}");
    let uid = s.protections().unprivileged_uid;
    let outcome = run(&mut s, code).await;
    assert!(
        expect(&outcome),
        "unexpected outcome for {code:?}: {outcome:#?}"
    );
    let next = run(&mut s, "print(globals().get('marker'))").await;
    assert!(next.succeeded(), "{next:?}");
    if outcome.state_lost {
        assert!(next.state_reset_before, "{next:?}");
        assert_eq!(next.stdout, "None\n");
    } else {
        assert!(!next.state_reset_before, "{next:?}");
        assert_eq!(next.stdout, "still here\n");
    }
    // After a restart the worker has a fresh uid: the old one must have no process left.
    if let Some(uid) = uid.filter(|_| running_as_root()) {
        assert_no_processes_of(uid, outcome.state_lost).await;
    }
    outcome
}

async fn run(s: &mut PythonSession, code: &str) -> CellOutcome {
    match s.run_cell(code).await {
        Ok(outcome) => outcome,
        Err(e) => panic!("run_cell({code:?}) failed: {e}"),
    }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Host-side check: after a killed worker, no process of the sandbox uid survives;
/// after a normal cell, only the worker itself (bwrap's init runs as root).
async fn assert_no_processes_of(uid: u32, killed: bool) {
    let allowed = if killed { 0 } else { 1 };
    let mut found = Vec::new();
    // A dropped idle session ends by itself at the lowest priority (killed after
    // two seconds): on a loaded machine that can take a while.
    for _ in 0..500 {
        found = processes_of(uid);
        if found.len() <= allowed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("processes of sandbox uid {uid} survived on the host: {found:?}");
}

fn processes_of(uid: u32) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter(|status| {
            status.lines().any(|l| {
                l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(&uid.to_string())
            })
        })
        .filter_map(|status| status.lines().next().map(str::to_owned))
        .collect()
}

fn raised(outcome: &CellOutcome, needle: &str) -> bool {
    matches!(&outcome.status, CellStatus::Raised { traceback } if traceback.contains(needle))
}

#[tokio::test]
async fn protections_are_all_active() {
    let s = session().await;
    let p = s.protections();
    assert!(p.namespaces && p.seccomp && p.scrubbed_env, "{p:?}");
    assert!(p.landlock_abi.is_some(), "{p:?}");
    assert!(p.unprivileged_uid.is_some(), "{p:?}");
    assert_eq!(p.rlimits.len(), 5, "{p:?}");
    assert!(p.is_fully_isolated());
    assert!(
        !p.missing.iter().any(|m| m.contains("request has ended")),
        "{p:?}"
    );
}

#[tokio::test]
async fn network_connect_is_denied() {
    check(
        "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=1)",
        |o| raised(o, "PermissionError"),
    )
    .await;
    check(
        "import socket\nsocket.socket(socket.AF_INET6, socket.SOCK_DGRAM)",
        |o| raised(o, "PermissionError"),
    )
    .await;
}

#[tokio::test]
async fn dns_lookup_fails() {
    check(
        "import socket\nsocket.getaddrinfo('example.com', 80)",
        |o| raised(o, "gaierror"),
    )
    .await;
}

#[tokio::test]
async fn writes_outside_the_temp_dir_fail() {
    let environment = python_environment();
    let venv_probe = environment.venv.join("escaped.txt");
    for path in [
        "/usr/escaped.txt",
        "/etc/escaped.txt",
        "/escaped.txt",
        "/root/escaped.txt",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([venv_probe.display().to_string()])
    {
        check(&format!("open({path:?}, 'w').write('x')"), |o| {
            matches!(o.status, CellStatus::Raised { .. })
        })
        .await;
        assert!(
            !std::path::Path::new(&path).exists(),
            "{path} was created on the host"
        );
    }
    let inside = check(
        "open('notes.txt', 'w').write('ok')\nprint(open('notes.txt').read())",
        |o| o.succeeded(),
    )
    .await;
    assert_eq!(inside.stdout, "ok\n");
}

#[tokio::test]
async fn host_secrets_are_out_of_reach() {
    let secret_dir = tempfile::tempdir().expect("temp dir");
    let secret = secret_dir.path().join("secret.txt");
    std::fs::write(&secret, "hunter2").expect("write secret");
    for path in [
        secret.display().to_string(),
        "/etc/shadow".to_owned(),
        "/root/.bash_history".to_owned(),
    ] {
        check(&format!("print(open({path:?}).read())"), |o| {
            matches!(o.status, CellStatus::Raised { .. }) && !o.stdout.contains("hunter2")
        })
        .await;
    }
    // Host trees that exist but are not part of the sandbox's view are simply absent.
    let source_tree = env!("CARGO_MANIFEST_DIR");
    assert!(std::path::Path::new(source_tree).exists());
    let seen = check(
        &format!("import os\nprint(os.path.exists({source_tree:?}))"),
        |o| o.succeeded(),
    )
    .await;
    assert_eq!(seen.stdout, "False\n");
}

#[tokio::test]
async fn parent_environment_and_api_keys_are_invisible() {
    // SAFETY: set once by this test; the sandbox clears the environment regardless.
    unsafe { std::env::set_var("OPENAI_API_KEY", "sk-agentopt-fake-key") };
    let code = "import os, glob\n\
                found = [k for k, v in os.environ.items() if 'sk-agentopt' in v or 'API_KEY' in k]\n\
                for p in glob.glob('/proc/*/environ'):\n    \
                    try:\n        found += [p] if b'sk-agentopt' in open(p, 'rb').read() else []\n    \
                    except OSError:\n        pass\n\
                print(found)";
    let outcome = check(code, |o| o.succeeded()).await;
    assert_eq!(outcome.stdout, "[]\n");
}

#[tokio::test]
async fn fork_bomb_is_contained() {
    check(
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        |o| o.timed_out() && o.state_lost,
    )
    .await;
}

#[tokio::test]
async fn memory_bomb_raises_memory_error() {
    check("x = bytearray(16 * 1024 ** 3)", |o| {
        raised(o, "MemoryError")
    })
    .await;
    check("text = 'x' * (3 * 1024 ** 3)", |o| raised(o, "MemoryError")).await;
}

#[tokio::test]
async fn infinite_loops_time_out() {
    check("while True:\n    pass", |o| o.timed_out() && o.state_lost).await;
    check("10 ** 10 ** 8", |o| o.timed_out() && o.state_lost).await;
}

#[tokio::test]
async fn cpu_rlimit_is_a_backstop() {
    let mut s = session_with(SandboxPolicy {
        preload: Vec::new(),
        cell_timeout: Duration::from_secs(30),
        cpu_seconds_per_cell: 1,
        ..SandboxPolicy::default()
    })
    .await;
    let outcome = run(&mut s, "while True:\n    pass").await;
    assert!(
        matches!(&outcome.status, CellStatus::Crashed { reason } if reason.contains("SIGXCPU")),
        "{outcome:?}"
    );
    assert!(outcome.state_lost, "{outcome:?}");
    assert!(run(&mut s, "1").await.state_reset_before);
}

#[tokio::test]
async fn gigabytes_of_output_are_capped() {
    let outcome = check(
        "import os\nblock = b'x' * (1 << 20)\nfor _ in range(4096):\n    os.write(1, block)",
        |o| raised(o, "File too large") && o.truncated,
    )
    .await;
    assert_eq!(outcome.stdout.len(), SandboxPolicy::default().output_limit);
    check("for _ in range(10 ** 5):\n    print('y' * 10 ** 4)", |o| {
        o.truncated
    })
    .await;
}

#[tokio::test]
async fn killing_the_parent_fails() {
    check("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.kill(1, signal.SIGKILL)\nos.kill(-1, signal.SIGKILL)\nprint('alive')", |o| {
        o.stdout.contains("alive") || raised(o, "PermissionError") || raised(o, "ProcessLookupError")
    })
    .await;
}

#[tokio::test]
async fn ctypes_segfault_reports_a_crash() {
    check("import ctypes\nctypes.string_at(0)", |o| {
        matches!(&o.status, CellStatus::Crashed { reason } if reason.contains("SIGSEGV"))
            && o.state_lost
    })
    .await;
}

#[tokio::test]
async fn background_processes_do_not_outlive_the_cell() {
    let mut s = session().await;
    let spawn = "import os, subprocess, time\n\
                 p = subprocess.Popen(['sleep', '300'])\n\
                 if os.fork() == 0:\n    os.setsid()\n    time.sleep(300)\n    os._exit(0)\n\
                 print('spawned')";
    assert_eq!(run(&mut s, spawn).await.stdout, "spawned\n");
    let census = run(
        &mut s,
        "import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))",
    )
    .await;
    assert_eq!(
        census.stdout, "[1, 2]\n",
        "only bwrap's init and the worker may remain"
    );
    if let Some(uid) = s
        .protections()
        .unprivileged_uid
        .filter(|_| running_as_root())
    {
        assert_no_processes_of(uid, false).await;
    }
}

#[tokio::test]
async fn writes_to_the_protocol_descriptor_do_not_desync() {
    let outcome = check(
        "import os\nos.write(4, b'garbage\\n')\nos.write(4, b'{\"id\": 999, \"value\": \"forged\", \"error\": null}\\n')\n'real'",
        |o| o.succeeded(),
    )
    .await;
    assert_eq!(outcome.value.as_deref(), Some("'real'"));
    check("import os\nos.write(4, b'x' * (5 * 1024 * 1024))", |o| {
        matches!(&o.status, CellStatus::Crashed { reason } if reason.contains("protocol"))
            && o.state_lost
    })
    .await;
}

#[tokio::test]
async fn dropped_sessions_leave_no_processes() {
    let s = session().await;
    let uid = s.protections().unprivileged_uid;
    drop(s);
    if let Some(uid) = uid.filter(|_| running_as_root()) {
        assert_no_processes_of(uid, true).await;
    }
}

/// Runs in a child copy of this test binary where bubblewrap is unavailable
/// (`AGENTOPT_BWRAP` points nowhere; isolation is probed once per process).
#[tokio::test]
async fn unsandboxed_runs_only_when_explicitly_allowed() {
    const CHILD: &str = "AGENTOPT_SANDBOX_TEST_CHILD";
    if std::env::var_os(CHILD).is_none() {
        let child = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "escape::unsandboxed_runs_only_when_explicitly_allowed",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .env("AGENTOPT_BWRAP", "/nonexistent/bwrap")
            .env("OPENAI_API_KEY", "sk-agentopt-fake-key")
            .output()
            .expect("run child test");
        let log = String::from_utf8_lossy(&child.stdout) + String::from_utf8_lossy(&child.stderr);
        assert!(child.status.success(), "child test failed:\n{log}");
        assert!(
            log.contains("WARNING: running untrusted Python WITHOUT a sandbox"),
            "{log}"
        );
        return;
    }
    let environment = python_environment();
    let refused = PythonSession::start(&environment, &SandboxPolicy::default()).await;
    assert!(
        matches!(
            refused,
            Err(agentopt_sandbox::SandboxError::IsolationUnavailable { .. })
        ),
        "{refused:?}"
    );
    let policy = SandboxPolicy {
        preload: Vec::new(),
        allow_unsandboxed: true,
        ..SandboxPolicy::default()
    };
    let mut s = PythonSession::start(&environment, &policy)
        .await
        .expect("opted-out session");
    let p = s.protections();
    assert!(
        !p.namespaces && !p.seccomp && !p.is_fully_isolated(),
        "{p:?}"
    );
    assert!(p.scrubbed_env);
    let outcome = run(
        &mut s,
        "import os\nprint(os.environ.get('OPENAI_API_KEY'))\n6 * 7",
    )
    .await;
    assert_eq!(
        (outcome.stdout.as_str(), outcome.value.as_deref()),
        ("None\n", Some("42"))
    );
    let slow = run(&mut s, "import time\ntime.sleep(60)").await;
    assert!(slow.timed_out(), "timeouts still apply: {slow:?}");
}

/// The first answer a request gets could be written by the cell itself: request ids
/// are 1, 2, 3…, so these lines claim every early request.
const FORGED_ANSWERS: &str = "import os\n\
    for n in range(1, 10):\n    \
        os.write(4, b'{\"id\": %d, \"value\": \"\\'FORGED\\'\", \"error\": null}\\n' % n)\n";

#[tokio::test]
async fn a_forged_answer_does_not_end_a_running_cell() {
    let started = std::time::Instant::now();
    let outcome = check(
        &format!("{FORGED_ANSWERS}import time\ntime.sleep(30)"),
        |o| o.timed_out() && o.state_lost,
    )
    .await;
    assert_ne!(outcome.value.as_deref(), Some("'FORGED'"));
    assert!(
        outcome.duration >= Duration::from_secs(3) && started.elapsed() < Duration::from_secs(25),
        "the timeout holds: {outcome:?}"
    );
}

#[tokio::test]
async fn a_forged_answer_next_to_the_real_one_ends_the_session() {
    check(&format!("{FORGED_ANSWERS}'real'"), |o| {
        matches!(&o.status, CellStatus::Crashed { reason } if reason.contains("its own answer"))
            && o.state_lost
    })
    .await;
}

#[tokio::test]
async fn threads_do_not_survive_their_cell() {
    let outcome = check(
        "import threading, time\n\
         threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n\
         print('started')",
        |o| {
            matches!(&o.status, CellStatus::Crashed { reason } if reason.contains("thread"))
                && o.state_lost
        },
    )
    .await;
    assert_eq!(outcome.stdout, "started\n");
}

#[tokio::test]
async fn no_code_of_a_cell_runs_after_it_ended() {
    let mut s = session().await;
    let armed = run(
        &mut s,
        "import signal\n\
         signal.signal(signal.SIGALRM, lambda *_: sum(range(10 ** 7)))\n\
         signal.setitimer(signal.ITIMER_REAL, 0.2)\n\
         'armed'",
    )
    .await;
    assert_eq!(armed.value.as_deref(), Some("'armed'"), "{armed:?}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let next = run(&mut s, "1 + 1").await;
    assert!(
        matches!(&next.status, CellStatus::Crashed { reason } if reason.contains("kept running"))
            && next.state_lost,
        "{next:?}"
    );
    let after = run(&mut s, "1 + 1").await;
    assert!(after.state_reset_before && after.succeeded(), "{after:?}");
}

#[tokio::test]
async fn the_workspace_is_capped_as_a_whole() {
    const LIMIT: u64 = 32 * 1024 * 1024;
    let mut s = session_with(SandboxPolicy {
        preload: Vec::new(),
        workspace_limit: LIMIT,
        ..SandboxPolicy::default()
    })
    .await;
    assert_eq!(s.protections().workspace_cap, Some(LIMIT));
    // Each file stays under the per-file cap; together they are 4 times the workspace.
    let outcome = run(
        &mut s,
        "import os\n\
         block = b'x' * (1 << 20)\n\
         written = 0\n\
         try:\n    \
             for path in ['/work/a', '/work/b', '/tmp/c', '/tmp/d']:\n        \
                 with open(path, 'wb') as f:\n            \
                     for _ in range(32):\n                \
                         f.write(block)\n                \
                         written += len(block)\n\
         finally:\n    \
             print(written)",
    )
    .await;
    assert!(raised(&outcome, "No space left on device"), "{outcome:?}");
    let written: u64 = outcome.stdout.trim().parse().expect("bytes written");
    assert!(written <= LIMIT, "{written} bytes written");
}

#[tokio::test]
async fn directories_left_by_a_killed_owner_are_removed() {
    let mut dead = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    dead.wait().expect("wait");
    let stale = std::env::temp_dir().join(format!("agentopt-sandbox-{}.1-stale", dead.id()));
    std::fs::create_dir_all(stale.join("0/io")).expect("stale dir");
    std::fs::write(stale.join("0/io/stdout"), "left behind").expect("stale file");
    // A session cgroup of the same dead owner, where we may create cgroups.
    let stale_cgroup = own_memory_cgroup()
        .map(|dir| dir.join(format!("agentopt-{}.1-0", dead.id())))
        .filter(|dir| std::fs::create_dir(dir).is_ok());
    let _s = session().await;
    assert!(!stale.exists(), "{} is still there", stale.display());
    match stale_cgroup {
        Some(cgroup) => assert!(!cgroup.exists(), "{} is still there", cgroup.display()),
        None => not_checked(
            "the removal of a dead owner's cgroup (no writable cgroup v1 memory hierarchy \
             here); only its directories were checked",
        ),
    }
}

/// Says on the terminal that a passing test did not check `what`: written to the
/// process's stderr directly, which the test harness does not capture (`eprintln!`
/// output of a passing test is never shown).
fn not_checked(what: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "NOT CHECKED: {what}");
}

/// Our own cgroup v1 memory directory, where the hierarchy is mounted at the usual place.
fn own_memory_cgroup() -> Option<std::path::PathBuf> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroups.lines().find_map(|line| {
        line.strip_prefix(|c: char| c.is_ascii_digit())
            .and_then(|l| {
                l.trim_start_matches(|c: char| c.is_ascii_digit())
                    .strip_prefix(":memory:")
            })
    })?;
    let dir = std::path::Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/'));
    dir.is_dir().then_some(dir)
}

#[tokio::test]
async fn session_memory_is_capped_as_a_whole() {
    const CAP: u64 = 384 * 1024 * 1024;
    let mut s = session_with(SandboxPolicy {
        preload: Vec::new(),
        session_memory_limit: CAP,
        cell_timeout: Duration::from_secs(10),
        ..SandboxPolicy::default()
    })
    .await;
    let p = s.protections().clone();
    let Some(cap) = p.memory_cap else {
        assert!(p.missing.iter().any(|m| m.contains("memory")), "{p:?}");
        not_checked(&format!(
            "the session-wide memory cap (no memory cgroup here: {:?})",
            p.missing
        ));
        return;
    };
    assert_eq!(cap, CAP);
    // Four processes of 200 MB each: every one is within RLIMIT_AS, together over the cap.
    let outcome = run(
        &mut s,
        "import os, select, time\n\
         read, write = os.pipe()\n\
         for _ in range(4):\n    \
             if os.fork() == 0:\n        \
                 data = bytearray(200 * 1024 * 1024)\n        \
                 os.write(write, b'+')\n        \
                 time.sleep(30)\n\
         os.close(write)\n\
         held = 0\n\
         deadline = time.time() + 4\n\
         while held < 4 and select.select([read], [], [], max(0, deadline - time.time()))[0]:\n    \
             held += len(os.read(read, 4))\n\
         print(held)",
    )
    .await;
    let all_four = outcome.succeeded() && outcome.stdout == "4\n";
    assert!(!all_four, "800 MB held under a {CAP}-byte cap: {outcome:?}");
}

#[tokio::test]
async fn session_processes_are_capped_as_a_whole() {
    let mut s = session_with(SandboxPolicy {
        preload: Vec::new(),
        max_processes: 16,
        ..SandboxPolicy::default()
    })
    .await;
    let p = s.protections().clone();
    match p.process_cap {
        Some(cap) => assert_eq!(cap, 16),
        None => {
            assert!(p.missing.iter().any(|m| m.contains("pids")), "{p:?}");
            not_checked(&format!(
                "the cgroup process cap (no pids cgroup here: {:?}); the fork limit below \
                 is still checked",
                p.missing
            ));
        }
    }
    let outcome = run(
        &mut s,
        "import os\n\
         started = 0\n\
         try:\n    \
             for _ in range(64):\n        \
                 if os.fork() == 0:\n            \
                     import time; time.sleep(30)\n        \
                 started += 1\n\
         except OSError as error:\n    \
             print(type(error).__name__)\n\
         print(started)",
    )
    .await;
    assert!(outcome.succeeded(), "{outcome:?}");
    let started: u64 = outcome
        .stdout
        .lines()
        .last()
        .and_then(|l| l.parse().ok())
        .expect("a count");
    assert!(started < 16, "{started} processes started: {outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_sees_nothing_of_an_earlier_one() -> anyhow::Result<()> {
    let pool = WorkerPool::new(
        python_environment(),
        SandboxPolicy {
            preload: Vec::new(),
            ..SandboxPolicy::default()
        },
        1,
    )?;
    let mut first = pool.session().await?;
    let left = first
        .run_cell(
            "import os, subprocess\n\
             secret = 'first'\n\
             open('/work/left.txt', 'w').write('first')\n\
             open('/tmp/left.txt', 'w').write('first')\n\
             subprocess.Popen(['sleep', '300'], start_new_session=True)\n\
             os.listdir('/work')",
        )
        .await?;
    assert_eq!(left.value.as_deref(), Some("['left.txt']"), "{left:?}");
    let first_uid = first.protections().unprivileged_uid;
    drop(first);
    let mut second = pool.session().await?;
    if let Some(uid) = first_uid.filter(|_| running_as_root()) {
        assert_ne!(second.protections().unprivileged_uid, first_uid);
        assert_no_processes_of(uid, true).await;
    }
    let seen = second
        .run_cell(
            "import os\n\
             ('secret' in globals(), os.listdir('/work'), os.path.exists('/tmp/left.txt'),\n \
              sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))",
        )
        .await?;
    assert_eq!(
        seen.value.as_deref(),
        Some("(False, [], False, [1, 2])"),
        "{seen:?}"
    );
    Ok(())
}
