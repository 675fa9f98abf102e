//! The benchmark's table, and issue 14's targets checked against it.

use std::fmt::Write as _;

use super::ag2::Ag2Measurement;
use super::agentopt::Measurement;

/// Wall time at concurrency 1 may exceed the model's time by this factor.
const SEQUENTIAL_FACTOR: f64 = 1.05;
/// Wall time at concurrency ≥ 2 may exceed the critical path by this factor.
const CRITICAL_PATH_FACTOR: f64 = 1.3;
/// First cell after asking for a session, median, milliseconds.
const FIRST_CELL_P50_MS: f64 = 10.0;
/// Orchestration per model turn, median, milliseconds.
const PER_TURN_MS: f64 = 1.0;
/// Peak RSS of the seed-sized run / of a large run, MiB.
const SEED_RSS_MIB: f64 = 32.0;
const LARGE_RSS_MIB: f64 = 100.0;
/// Runs with more problems than this are held to the large-run RSS target.
const SEED_PROBLEMS: usize = 20;

/// The table: one row per agentopt run, one for AG2, then the ratios and targets.
pub fn render(rows: &[Measurement], ag2: Option<&Ag2Measurement>) -> String {
    let mut out = String::new();
    out.push_str(
        "| run | latency | wall | model calls | critical path | wall / critical path | \
         wall / (calls × latency) | all but the model / turn (p50) | of which orchestration | \
         first cell p50 / p99 | orchestrator peak RSS |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for row in rows {
        let latency = row.shape.latency_ms as f64 / 1e3;
        let critical = f64::from(row.critical_path_calls) * latency;
        let model_time = f64::from(row.model_calls) * latency;
        let _ = writeln!(
            out,
            "| {} | {} ms | {:.1} s | {} | {} calls = {:.2} s | {:.2} | {:.3} | {:.2} ms | {:.2} ms | {:.1} / {:.1} ms | {:.1} MiB |",
            row.shape.label,
            row.shape.latency_ms,
            row.wall_s,
            row.model_calls,
            row.critical_path_calls,
            critical,
            row.wall_s / critical,
            row.wall_s / model_time,
            row.overhead_per_turn_ms,
            row.orchestration_per_turn_ms,
            row.first_cell_p50_ms,
            row.first_cell_p99_ms,
            row.peak_rss_mib,
        );
    }
    if let Some(ag2) = ag2 {
        let latency = ag2.latency_ms as f64 / 1e3;
        let _ = writeln!(
            out,
            "| AG2 0.13.4, the seed notebook's loop | {} ms | {:.1} s | {} | – | – | {:.3} | – | – | – | – |",
            ag2.latency_ms,
            ag2.wall_s,
            ag2.model_calls,
            ag2.wall_s / (f64::from(ag2.model_calls) * latency),
        );
        out.push('\n');
        for row in rows
            .iter()
            .filter(|row| row.shape.latency_ms == ag2.latency_ms)
        {
            let _ = writeln!(
                out,
                "{} vs AG2: wall {:.2}× ({:.1} s vs {:.1} s)",
                row.shape.label,
                row.wall_s / ag2.wall_s,
                row.wall_s,
                ag2.wall_s
            );
        }
    }
    out.push_str("\nTargets (issue 14):\n");
    for row in rows {
        for (target, met) in targets(row) {
            let _ = writeln!(
                out,
                "- {}: {target}: {}",
                row.shape.label,
                if met { "met" } else { "MISSED" }
            );
        }
    }
    out
}

/// Each target that applies to `row`, and whether it holds.
fn targets(row: &Measurement) -> Vec<(String, bool)> {
    let latency = row.shape.latency_ms as f64 / 1e3;
    let problems = row.shape.train + row.shape.test;
    let mut targets = Vec::new();
    if row.shape.concurrency == 1 {
        targets.push((
            format!("wall ≤ {SEQUENTIAL_FACTOR} × calls × latency"),
            row.wall_s <= SEQUENTIAL_FACTOR * f64::from(row.model_calls) * latency,
        ));
    } else if problems <= SEED_PROBLEMS {
        targets.push((
            format!("wall ≤ {CRITICAL_PATH_FACTOR} × critical path"),
            row.wall_s <= CRITICAL_PATH_FACTOR * f64::from(row.critical_path_calls) * latency,
        ));
    }
    if problems > SEED_PROBLEMS {
        // The large run shows memory; its pace is bound by the machine's cores.
        targets.push((
            format!("peak RSS < {LARGE_RSS_MIB} MiB"),
            row.peak_rss_mib < LARGE_RSS_MIB,
        ));
        return targets;
    }
    targets.push((
        format!("first cell p50 ≤ {FIRST_CELL_P50_MS} ms"),
        row.first_cell_p50_ms <= FIRST_CELL_P50_MS,
    ));
    targets.push((
        format!("all but the model per turn p50 < {PER_TURN_MS} ms"),
        row.overhead_per_turn_ms < PER_TURN_MS,
    ));
    targets.push((
        format!("peak RSS ≤ {SEED_RSS_MIB} MiB"),
        row.peak_rss_mib <= SEED_RSS_MIB,
    ));
    targets
}
