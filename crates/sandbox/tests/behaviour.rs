//! Normal behaviour: state, values, exceptions, timeouts, learned functions, pools.

use std::time::Duration;

use agentopt_sandbox::{CellStatus, Executor, LearnedFunction, SandboxPolicy, WorkerPool};
use serde_json::json;

use crate::{python_environment, session, session_with};

fn arguments(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        other => panic!("arguments must be an object, got {other}"),
    }
}

#[tokio::test]
async fn state_persists_across_cells() -> anyhow::Result<()> {
    let mut s = session().await;
    let first = s.run_cell("x = 6 * 7\nimport math").await?;
    assert!(first.succeeded(), "{first:?}");
    assert_eq!(first.value, None);
    let second = s.run_cell("print(x)\nmath.gcd(x, 35) + 1").await?;
    assert_eq!(second.stdout, "42\n");
    assert_eq!(second.value.as_deref(), Some("8"));
    assert!(!second.state_reset_before && !second.state_lost);
    Ok(())
}

/// What a cell's value is (`Ok`), or what its error names (`Err`): the last statement
/// counts only when it is an expression, whatever its shape.
#[tokio::test]
async fn a_cell_s_value_is_its_trailing_expression() -> anyhow::Result<()> {
    let mut s = session().await;
    let cases: [(&str, Result<Option<&str>, &str>); 17] = [
        ("1 + 1", Ok(Some("2"))),
        ("x = 5\nx * 2", Ok(Some("10"))),
        ("for i in range(3):\n    pass\ni", Ok(Some("2"))),
        ("print('shown')", Ok(None)),
        ("x = 1", Ok(None)),
        ("import math", Ok(None)),
        ("x = [1,\n2]\nx", Ok(Some("[1, 2]"))),
        ("y = (1 +\n2)", Ok(None)),
        ("y = (1 +\n2)\ny # the sum", Ok(Some("3"))),
        ("s = '''\nabc\n'''\ns", Ok(Some("'\\nabc\\n'"))),
        ("s = '''\nabc\nlen(s)'''", Ok(None)),
        ("a = 4; a", Ok(Some("4"))),
        ("x = 1\n(x\n + 1)", Ok(Some("2"))),
        ("if True:\n    3", Ok(None)),
        ("x = 1\n\n1 / 0", Err("line 3")),
        ("def f():\n    return 1 / 0\nf()", Err("line 2, in f")),
        ("x = (1,\nlen(x)", Err("SyntaxError")),
    ];
    for (code, expected) in cases {
        let outcome = s.run_cell(code).await?;
        match (expected, &outcome.status) {
            (Ok(value), CellStatus::Completed) => {
                assert_eq!(outcome.value.as_deref(), value, "{code:?}");
            }
            (Err(part), CellStatus::Raised { traceback }) => {
                assert!(traceback.contains(part), "{code:?}: {traceback}");
            }
            _ => panic!("{code:?}: expected {expected:?}, got {outcome:?}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn exceptions_carry_tracebacks_free_of_host_paths() -> anyhow::Result<()> {
    let environment = python_environment();
    let mut s = session().await;
    let outcome = s
        .run_cell(
            "import sympy\n\ndef parse(text):\n    return sympy.sympify(text)\n\nparse('1 +* 2')",
        )
        .await?;
    let CellStatus::Raised { traceback } = &outcome.status else {
        panic!("expected an exception: {outcome:?}");
    };
    assert!(
        traceback.starts_with("Traceback (most recent call last):\n"),
        "{traceback}"
    );
    assert!(
        traceback.contains("File \"<cell>\", line 4, in parse"),
        "{traceback}"
    );
    assert!(traceback.contains("sympy/core/sympify.py"), "{traceback}");
    assert!(traceback.contains("SympifyError"), "{traceback}");
    let venv = environment.venv.display().to_string();
    let base = environment.base_prefix.display().to_string();
    for host_path in [
        venv.as_str(),
        base.as_str(),
        "site-packages",
        "<agentopt-worker>",
    ] {
        assert!(
            !traceback.contains(host_path),
            "{host_path} leaked into {traceback}"
        );
    }
    assert_eq!(outcome.error_text().as_deref(), Some(traceback.as_str()));
    Ok(())
}

#[tokio::test]
async fn output_is_captured_at_the_descriptor_level() -> anyhow::Result<()> {
    let mut s = session().await;
    let code = "import os, sys, ctypes\n\
                print('print')\n\
                os.write(1, b'fd one\\n')\n\
                ctypes.CDLL(None).puts(b'from C')\n\
                ctypes.CDLL(None).fflush(None)\n\
                print('err', file=sys.stderr)\n\
                os.write(2, b'fd two\\n')";
    let outcome = s.run_cell(code).await?;
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(outcome.stdout, "print\nfd one\nfrom C\n");
    assert_eq!(outcome.stderr, "err\nfd two\n");
    Ok(())
}

#[tokio::test]
async fn output_is_captured_after_a_cell_closed_or_replaced_its_descriptors() -> anyhow::Result<()>
{
    let mut s = session().await;
    // fds 1 and 2, then every descriptor above the protocol's (the worker keeps the
    // capture files open there), closed or pointed elsewhere.
    let cells = [
        "import os\nos.close(1)\nos.close(2)",
        "import os\nfor fd in range(5, 256):\n    try:\n        os.close(fd)\n    except OSError:\n        pass",
        "import os\nnull = os.open('/dev/null', os.O_WRONLY)\nfor fd in range(5, 64):\n    os.dup2(null, fd)",
    ];
    for cell in cells {
        let outcome = s.run_cell(cell).await?;
        assert!(outcome.succeeded(), "{cell}: {outcome:?}");
        let next = s
            .run_cell("import sys\nprint('out')\nprint('err', file=sys.stderr)")
            .await?;
        assert_eq!(
            (next.stdout.as_str(), next.stderr.as_str()),
            ("out\n", "err\n"),
            "after {cell}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn output_beyond_the_limit_is_truncated() -> anyhow::Result<()> {
    let mut s = session_with(SandboxPolicy {
        preload: Vec::new(),
        output_limit: 10,
        ..SandboxPolicy::default()
    })
    .await;
    let outcome = s.run_cell("print('0123456789abcdef')").await?;
    assert_eq!(outcome.stdout, "0123456789");
    assert!(outcome.truncated);
    let short = s.run_cell("print('ok')").await?;
    assert!(!short.truncated);
    Ok(())
}

#[tokio::test]
async fn timeout_kills_and_the_next_cell_is_told() -> anyhow::Result<()> {
    let mut s = session_with(SandboxPolicy {
        preload: Vec::new(),
        cell_timeout: Duration::from_millis(500),
        ..SandboxPolicy::default()
    })
    .await;
    s.run_cell("kept = 1").await?;
    let slow = s
        .run_cell("import time\nprint('before', flush=True)\ntime.sleep(30)")
        .await?;
    assert!(slow.timed_out() && slow.state_lost, "{slow:?}");
    assert_eq!(
        slow.stdout, "before\n",
        "output printed before the timeout is kept"
    );
    assert!(slow.duration < Duration::from_secs(5), "{slow:?}");
    let next = s.run_cell("kept").await?;
    assert!(next.state_reset_before && !next.state_lost, "{next:?}");
    assert!(
        matches!(&next.status, CellStatus::Raised { traceback } if traceback.contains("NameError"))
    );
    let after = s.run_cell("1 + 1").await?;
    assert!(!after.state_reset_before);
    assert_eq!(after.value.as_deref(), Some("2"));
    Ok(())
}

#[tokio::test]
async fn concurrent_sessions_do_not_see_each_other() -> anyhow::Result<()> {
    let (mut a, mut b) = tokio::join!(session(), session());
    let (set_a, set_b) = tokio::join!(
        a.run_cell("secret = 'a'\nopen('mine.txt', 'w').write('a')"),
        b.run_cell("secret = 'b'\nopen('mine.txt', 'w').write('b')")
    );
    assert!(set_a?.succeeded() && set_b?.succeeded());
    let probe = "import os\nprint(secret, open('mine.txt').read(), sorted(os.listdir('.')), len([p for p in os.listdir('/proc') if p.isdigit()]))";
    let (seen_a, seen_b) = tokio::join!(a.run_cell(probe), b.run_cell(probe));
    assert_eq!(seen_a?.stdout, "a a ['mine.txt'] 2\n");
    assert_eq!(seen_b?.stdout, "b b ['mine.txt'] 2\n");
    Ok(())
}

#[tokio::test]
async fn learned_functions_run_their_own_code() -> anyhow::Result<()> {
    let mut s = session().await;
    s.run_cell("def f(a, b):\n    return 'session global'\nshared = 1")
        .await?;
    let add = LearnedFunction::new(
        "f",
        "def f(a, b):\n    print('adding', a, b)\n    return a + b",
    );
    let concat = LearnedFunction::new("f", "def f(a, b):\n    return [a, b]");
    let added = s
        .call_function(&add, &arguments(json!({"a": 2, "b": 3})))
        .await?;
    assert!(added.succeeded(), "{added:?}");
    assert_eq!(
        (added.stdout.as_str(), added.value.as_deref()),
        ("adding 2 3\n", Some("5"))
    );
    let joined = s
        .call_function(&concat, &arguments(json!({"a": "x", "b": [1.5, null]})))
        .await?;
    assert_eq!(joined.value.as_deref(), Some("['x', [1.5, None]]"));
    let leak = LearnedFunction::new("g", "def g():\n    return shared");
    let leaked = s.call_function(&leak, &serde_json::Map::new()).await?;
    assert!(
        matches!(&leaked.status, CellStatus::Raised { traceback } if traceback.contains("NameError")),
        "{leaked:?}"
    );
    let global = s.run_cell("f(1, 2)").await?;
    assert_eq!(
        global.value.as_deref(),
        Some("'session global'"),
        "calls never touch the session's globals"
    );
    Ok(())
}

#[tokio::test]
async fn learned_function_errors_are_reported() -> anyhow::Result<()> {
    let mut s = session().await;
    let check = async |s: &mut agentopt_sandbox::PythonSession,
                       function: LearnedFunction,
                       args,
                       needle: &str| {
        let outcome = s
            .call_function(&function, &arguments(args))
            .await
            .expect("call");
        assert!(
            matches!(&outcome.status, CellStatus::Raised { traceback } if traceback.contains(needle)),
            "{needle}: {outcome:?}"
        );
    };
    let double = || LearnedFunction::new("double", "def double(n):\n    return 2 * n");
    check(&mut s, double(), json!({"m": 1}), "TypeError").await;
    check(
        &mut s,
        LearnedFunction {
            name: "missing".to_owned(),
            ..double()
        },
        json!({}),
        "NameError",
    )
    .await;
    check(
        &mut s,
        LearnedFunction::new("bad", "def bad(:"),
        json!({}),
        "SyntaxError",
    )
    .await;
    Ok(())
}

#[tokio::test]
async fn executor_trait_objects_work() -> anyhow::Result<()> {
    let mut executor: Box<dyn Executor> = Box::new(session().await);
    executor.run_cell("n = 3").await?;
    assert_eq!(
        executor.run_cell("n * 2").await?.value.as_deref(),
        Some("6")
    );
    executor.restart().await?;
    let after = executor.run_cell("'n' in globals()").await?;
    assert_eq!(after.value.as_deref(), Some("False"));
    assert!(executor.protections().namespaces);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_hands_out_prewarmed_sympy_workers() -> anyhow::Result<()> {
    let policy = SandboxPolicy {
        cell_timeout: Duration::from_secs(1),
        ..SandboxPolicy::default()
    };
    let pool = WorkerPool::new(python_environment(), policy, 2)?;
    // Generous: on a loaded 2-core CI machine a sympy worker takes seconds to start.
    for _ in 0..600 {
        if pool.ready_count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pool.ready_count(), 2);
    let mut first = pool.session().await?;
    let mut second = pool.session().await?;
    // Preloaded, and nothing of the default warm-up's names (it binds `x`) left.
    let code = "import sys\n('sympy' in sys.modules, 'x' in globals())";
    assert_eq!(
        first.run_cell(code).await?.value.as_deref(),
        Some("(True, False)")
    );
    assert_eq!(
        second.run_cell(code).await?.value.as_deref(),
        Some("(True, False)")
    );
    let solved = first
        .run_cell("from sympy import symbols, solve\nx = symbols('x')\nsolve(x**2 - 4, x)")
        .await?;
    assert_eq!(solved.value.as_deref(), Some("[-2, 2]"));
    assert!(first.run_cell("while True:\n    pass").await?.state_lost);
    let restarted = first.run_cell(code).await?;
    assert!(restarted.state_reset_before, "{restarted:?}");
    assert_eq!(
        restarted.value.as_deref(),
        Some("(True, False)"),
        "restarts draw warm workers too"
    );
    Ok(())
}

#[tokio::test]
async fn learned_function_results_arrive_as_printed() -> anyhow::Result<()> {
    let mut s = session().await;
    let check = async |s: &mut agentopt_sandbox::PythonSession, body: &str, expected: &str| {
        let function = LearnedFunction::new("f", format!("def f():\n    return {body}"));
        let outcome = s
            .call_function(&function, &serde_json::Map::new())
            .await
            .expect("call");
        assert_eq!(
            outcome.value.as_deref(),
            Some(expected),
            "{body}: {outcome:?}"
        );
    };
    check(&mut s, "'x = 2'", "x = 2").await;
    check(&mut s, "42", "42").await;
    check(&mut s, "[1, 'a']", "[1, 'a']").await;
    check(&mut s, "None", "None").await;
    Ok(())
}

#[tokio::test]
async fn learned_functions_have_their_own_timeout() -> anyhow::Result<()> {
    let mut s = session_with(SandboxPolicy {
        preload: Vec::new(),
        cell_timeout: Duration::from_millis(500),
        function_timeout: Duration::from_secs(5),
        ..SandboxPolicy::default()
    })
    .await;
    let slow = LearnedFunction::new(
        "slow",
        "def slow():\n    import time\n    time.sleep(1.5)\n    return 'done'",
    );
    let called = s.call_function(&slow, &serde_json::Map::new()).await?;
    assert_eq!(called.value.as_deref(), Some("done"), "{called:?}");
    let cell = s.run_cell("import time\ntime.sleep(1.5)").await?;
    assert!(cell.timed_out(), "{cell:?}");
    Ok(())
}

#[tokio::test]
async fn defined_functions_are_callable_from_cells_and_counted() -> anyhow::Result<()> {
    let mut s = session_with(SandboxPolicy {
        preload: Vec::new(),
        cell_timeout: Duration::from_millis(1500),
        ..SandboxPolicy::default()
    })
    .await;
    let functions = [
        LearnedFunction::new(
            "half",
            "HIDDEN = 2\ndef half(x):\n    \"\"\"Halves x.\"\"\"\n    return x / HIDDEN",
        ),
        LearnedFunction::new("broken", "def broken(:\n    pass"),
    ];
    let defined = s.define_functions(&functions).await?;
    assert!(
        matches!(&defined.status, CellStatus::Raised { traceback } if traceback.contains("SyntaxError")),
        "a function whose code fails is reported: {defined:?}"
    );
    let cell = s
        .run_cell("print(half(8), half.__doc__)\ntry:\n    half('x')\nexcept TypeError:\n    pass\n'HIDDEN' in globals()")
        .await?;
    assert_eq!(
        (cell.stdout.as_str(), cell.value.as_deref()),
        ("4.0 Halves x.\n", Some("False")),
        "{cell:?}"
    );
    assert_eq!(
        serde_json::to_value(&cell.code_calls)?,
        json!({"half": {"calls": 2, "succeeded": 1}}),
        "one call returned, one raised"
    );
    let quiet = s.run_cell("1").await?;
    assert!(quiet.code_calls.is_empty(), "counts are per request");
    let lost = s.run_cell("import time\ntime.sleep(30)").await?;
    assert!(lost.state_lost, "{lost:?}");
    let again = s.run_cell("half(3)").await?;
    assert!(again.state_reset_before, "{again:?}");
    assert_eq!(
        again.value.as_deref(),
        Some("1.5"),
        "a fresh worker has them again"
    );
    assert_eq!(again.code_calls["half"].succeeded, 1);
    Ok(())
}

#[tokio::test]
async fn a_cell_that_rebinds_a_defined_functions_name_is_reported_as_shadowing_it()
-> anyhow::Result<()> {
    let mut s = session_with(SandboxPolicy {
        preload: Vec::new(),
        ..SandboxPolicy::default()
    })
    .await;
    let functions = [
        LearnedFunction::new(
            "gcd",
            "def gcd(a, b):\n    return a if b == 0 else gcd(b, a % b)",
        ),
        LearnedFunction::new("half", "def half(x):\n    return x / 2"),
    ];
    // (cell, the functions it shadows): each case starts from freshly defined ones.
    let cases: [(&str, &[&str]); 8] = [
        ("print(gcd(12, 18), half(4))", &[]),
        ("def gcd(a, b):\n    return 1\nprint(gcd(4, 6))", &["gcd"]),
        ("from math import gcd", &["gcd"]),
        ("import math\ngcd = math.gcd\nhalf = half", &["gcd"]),
        ("del half", &["half"]),
        ("from math import *", &["gcd"]),
        ("def f():\n    gcd = 3\n    return gcd\nf()", &[]),
        ("def gcd(:", &[]),
    ];
    for (cell, expected) in cases {
        s.define_functions(&functions).await?;
        let outcome = s.run_cell(cell).await?;
        let shadowed: Vec<&str> = outcome.shadowed.iter().map(String::as_str).collect();
        assert_eq!(shadowed, expected, "{cell:?}: {outcome:?}");
    }
    s.run_cell("from math import gcd").await?;
    let again = s.run_cell("from math import gcd").await?;
    assert!(
        again.shadowed.is_empty(),
        "only the request that rebinds it: {again:?}"
    );
    Ok(())
}

/// Checks a session under `warm_up`: the first cell's value and stdout.
async fn check_warm_up(warm_up: &str, expected: &str) -> anyhow::Result<()> {
    let mut s = session_with(SandboxPolicy {
        preload: Vec::new(),
        warm_up: warm_up.to_owned(),
        ..SandboxPolicy::default()
    })
    .await;
    let first = s
        .run_cell("import sys\n('colorsys' in sys.modules, 'warmed' in globals())")
        .await?;
    assert!(first.succeeded(), "{warm_up:?}: {first:?}");
    assert_eq!(first.value.as_deref(), Some(expected), "{warm_up:?}");
    assert_eq!(
        first.stdout, "",
        "{warm_up:?}: the warm-up's output is not a cell's"
    );
    Ok(())
}

#[tokio::test]
async fn the_warm_up_runs_before_the_first_cell_and_leaves_no_names() -> anyhow::Result<()> {
    // What it imports stays imported; what it binds does not reach the session.
    check_warm_up(
        "import colorsys\nwarmed = 1\nprint('warm')\nwarmed",
        "(True, False)",
    )
    .await?;
    // A failing warm-up costs nothing but itself.
    check_warm_up("warmed = 1\nraise RuntimeError('boom')", "(False, False)").await?;
    check_warm_up("", "(False, False)").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_forks_a_replacement_once_the_first_cell_has_answered() -> anyhow::Result<()> {
    let policy = SandboxPolicy {
        preload: Vec::new(),
        ..SandboxPolicy::default()
    };
    let pool = WorkerPool::new(python_environment(), policy, 1)?;
    let until_ready = async || {
        for _ in 0..600 {
            if pool.ready_count() == 1 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };
    assert!(until_ready().await, "the pool never filled");
    let mut session = pool.session().await?;
    // Nothing is forked while the session has not answered a request (a fork
    // would compete with its first cell for the CPU).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pool.ready_count(), 0);
    assert!(session.run_cell("x = 1").await?.succeeded());
    assert!(until_ready().await, "no replacement after the first cell");
    // A session dropped before any request also has its replacement forked.
    drop(session);
    let unused = pool.session().await?;
    drop(unused);
    assert!(
        until_ready().await,
        "no replacement after an unused session"
    );
    Ok(())
}
