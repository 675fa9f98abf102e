//! Sandbox benchmark: prints a table (run with `cargo bench -p agentopt-sandbox`).
//!
//! Goals: a warm trivial cell ≤ 5 ms p50; a conversation's first cell within 10 ms
//! (p50) of asking for a session; and a 10-cell MathChat-like sequence in a warm
//! session ≥ 50× faster than AG2's way (a fresh process re-running every earlier
//! cell). AG2's way is measured without any sandbox, which flatters it.

use std::process::Command;
use std::time::{Duration, Instant};

use agentopt_sandbox::{PythonEnvironment, PythonSession, SandboxPolicy, WorkerPool};

const MATHCHAT_CELLS: [&str; 10] = [
    "from sympy import *\nx, y = symbols('x y')",
    "eq = Eq(x**2 - 5*x + 6, 0)\nprint(solve(eq, x))",
    "f = x**3 - 6*x**2 + 11*x - 6\nprint(factor(f))",
    "print(integrate(sin(x)**2, (x, 0, pi)))",
    "print(simplify((x**2 - 1)/(x - 1)))",
    "print(Rational(3, 4) + Rational(5, 6))",
    "print(nsimplify(0.125))",
    "s = sum(k**2 for k in range(1, 101))\nprint(s)",
    "print(binomial(10, 3) * factorial(4))",
    "print(limit(sin(x)/x, x, 0))",
];

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn fresh_process(environment: &PythonEnvironment, code: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = Command::new(&environment.interpreter)
        .args(["-I", "-c", code])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(started.elapsed())
}

fn p50_p99(samples: &mut [Duration]) -> String {
    let p50 = percentile(samples, 0.50);
    let p99 = percentile(samples, 0.99);
    format!("{} / {}", ms(p50), ms(p99))
}

/// Asking for a session and running its first cell, with sympy preloaded: a fresh
/// server per session (the old way), a warm pool at conversation pace (the default
/// of `SandboxSessions::new`), and a warm pool asked back to back.
async fn session_starts(
    environment: &PythonEnvironment,
    rows: &mut Vec<(String, String)>,
) -> anyhow::Result<()> {
    let policy = SandboxPolicy::default();
    let (mut fresh_start, mut fresh_first) = (Vec::new(), Vec::new());
    for _ in 0..8 {
        let asked = Instant::now();
        let mut session = PythonSession::start(environment, &policy).await?;
        fresh_start.push(asked.elapsed());
        anyhow::ensure!(session.run_cell("x = 1").await?.succeeded());
        fresh_first.push(asked.elapsed());
    }
    let pool = WorkerPool::new(environment.clone(), policy, 2)?;
    let (mut warm_start, mut warm_first) = (Vec::new(), Vec::new());
    let (mut rushed_start, mut rushed_first) = (Vec::new(), Vec::new());
    for round in 0..200 {
        // Conversation pace: the pool has forked ahead (a conversation lasts at least
        // one model call); every fourth round asks again at once.
        let rushed = round % 4 == 3;
        if !rushed {
            while pool.ready_count() < 2 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let asked = Instant::now();
        let mut session = pool.session().await?;
        let started = asked.elapsed();
        anyhow::ensure!(session.run_cell("x = 1").await?.succeeded());
        let first = asked.elapsed();
        let (starts, firsts) = if rushed {
            (&mut rushed_start, &mut rushed_first)
        } else {
            (&mut warm_start, &mut warm_first)
        };
        starts.push(started);
        firsts.push(first);
    }
    for (name, samples) in [
        ("session start, fresh server, p50 / p99", &mut fresh_start),
        (
            "first cell after asking, fresh server, p50 / p99",
            &mut fresh_first,
        ),
        ("session start, warm pool, p50 / p99", &mut warm_start),
        (
            "first cell after asking, warm pool, p50 / p99 (goal p50 <= 10 ms)",
            &mut warm_first,
        ),
        (
            "session start, warm pool asked back to back",
            &mut rushed_start,
        ),
        ("first cell after asking, back to back", &mut rushed_first),
    ] {
        rows.push((name.into(), p50_p99(samples)));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let environment = PythonEnvironment::ensure()?;
    let bare = SandboxPolicy {
        preload: Vec::new(),
        ..SandboxPolicy::default()
    };
    let mut rows: Vec<(String, String)> = Vec::new();

    let mut session = PythonSession::start(&environment, &bare).await?;
    rows.push(("protections".into(), format!("{:?}", session.protections())));
    for _ in 0..50 {
        session.run_cell("x = 1").await?;
    }
    let mut trips = Vec::new();
    for _ in 0..2000 {
        let started = Instant::now();
        let outcome = session.run_cell("x = 1").await?;
        trips.push(started.elapsed());
        anyhow::ensure!(outcome.succeeded(), "{outcome:?}");
    }
    rows.push((
        "warm trivial cell p50".into(),
        ms(percentile(&mut trips, 0.50)),
    ));
    rows.push((
        "warm trivial cell p99".into(),
        ms(percentile(&mut trips, 0.99)),
    ));

    let mut plain = Vec::new();
    let mut sandboxed = Vec::new();
    for _ in 0..20 {
        plain.push(fresh_process(&environment, "x = 1")?);
        let started = Instant::now();
        let mut fresh = PythonSession::start(&environment, &bare).await?;
        fresh.run_cell("x = 1").await?;
        sandboxed.push(started.elapsed());
    }
    rows.push((
        "fresh process per cell, unsandboxed p50".into(),
        ms(percentile(&mut plain, 0.5)),
    ));
    rows.push((
        "fresh sandboxed worker + cell p50".into(),
        ms(percentile(&mut sandboxed, 0.5)),
    ));

    let pool = WorkerPool::new(environment.clone(), SandboxPolicy::default(), 1)?;
    let mut warm_runs = Vec::new();
    let mut cold_runs = Vec::new();
    for _ in 0..5 {
        while pool.ready_count() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut warm = pool.session().await?;
        let started = Instant::now();
        for cell in MATHCHAT_CELLS {
            let outcome = warm.run_cell(cell).await?;
            anyhow::ensure!(outcome.succeeded(), "{cell}: {outcome:?}");
        }
        warm_runs.push(started.elapsed());
        let started = Instant::now();
        let mut cold = PythonSession::start(&environment, &SandboxPolicy::default()).await?;
        for cell in MATHCHAT_CELLS {
            cold.run_cell(cell).await?;
        }
        cold_runs.push(started.elapsed());
    }
    let mut ag2_runs = Vec::new();
    for _ in 0..3 {
        let mut total = Duration::ZERO;
        for n in 1..=MATHCHAT_CELLS.len() {
            total += fresh_process(&environment, &MATHCHAT_CELLS[..n].join("\n"))?;
        }
        ag2_runs.push(total);
    }
    let warm = percentile(&mut warm_runs, 0.5);
    let cold = percentile(&mut cold_runs, 0.5);
    let ag2 = percentile(&mut ag2_runs, 0.5);
    rows.push(("10-cell MathChat (a) warm pooled session".into(), ms(warm)));
    rows.push((
        "10-cell MathChat (a') new session incl. start".into(),
        ms(cold),
    ));
    rows.push(("10-cell MathChat (b) AG2 way, fresh re-run".into(), ms(ag2)));
    rows.push((
        "speed-up (b)/(a), goal >= 50x".into(),
        format!("{:.0}x", ag2.as_secs_f64() / warm.as_secs_f64()),
    ));
    rows.push((
        "speed-up (b)/(a')".into(),
        format!("{:.1}x", ag2.as_secs_f64() / cold.as_secs_f64()),
    ));

    session_starts(&environment, &mut rows).await?;

    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    println!("| {:width$} | result |", "measure");
    println!("|{}|--------|", "-".repeat(width + 2));
    for (key, value) in rows {
        println!("| {key:width$} | {value} |");
    }
    Ok(())
}
