//! `is_equiv` and `check_answer_numeric` throughput over the 7,500 MATH training
//! answers, each compared with itself and with a reformatted copy (`\$` prefix,
//! `\dfrac` for `\frac`, trailing space) that both must still accept; and the numeric
//! evaluator alone over the same answers.

use std::hint::black_box;

use agentopt_math::{check_answer_numeric, evaluate, is_equiv};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "../tests/craft.rs"]
mod craft;

fn reformatted(answer: &str) -> String {
    format!("\\${} ", answer.replace("\\frac", "\\dfrac"))
}

fn equivalence(c: &mut Criterion) {
    let Some(dir) = craft::data_dir() else { return };
    let answers: Vec<String> = match craft::answers(&dir.join("train")) {
        Ok(records) => records
            .into_iter()
            .filter_map(|(_, answer)| answer.as_str().map(str::to_owned))
            .collect(),
        Err(error) => {
            eprintln!("cannot read the training answers: {error:#}");
            return;
        }
    };
    let pairs: Vec<(String, String)> = answers
        .iter()
        .map(|a| (a.clone(), reformatted(a)))
        .collect();
    let hendrycks = pairs.iter().filter(|(a, b)| is_equiv(a, b)).count();
    let numeric = pairs
        .iter()
        .filter(|(a, b)| check_answer_numeric(a, b).is_equivalent())
        .count();
    println!(
        "{} answers; reformatted copies accepted: is_equiv {hendrycks}, check_answer_numeric {numeric}",
        pairs.len()
    );

    let mut group = c.benchmark_group("train_answers");
    group.throughput(Throughput::Elements(pairs.len() as u64));
    group.bench_function("is_equiv/self", |b| {
        b.iter(|| {
            pairs
                .iter()
                .filter(|(a, _)| is_equiv(black_box(a), black_box(a)))
                .count()
        });
    });
    group.bench_function("is_equiv/reformatted", |b| {
        b.iter(|| {
            pairs
                .iter()
                .filter(|(a, r)| is_equiv(black_box(a), black_box(r)))
                .count()
        });
    });
    group.bench_function("check_answer_numeric/self", |b| {
        b.iter(|| {
            pairs
                .iter()
                .filter(|(a, _)| check_answer_numeric(black_box(a), black_box(a)).is_equivalent())
                .count()
        });
    });
    group.bench_function("check_answer_numeric/reformatted", |b| {
        b.iter(|| {
            pairs
                .iter()
                .filter(|(a, r)| check_answer_numeric(black_box(a), black_box(r)).is_equivalent())
                .count()
        });
    });
    group.bench_function("evaluate", |b| {
        b.iter(|| {
            pairs
                .iter()
                .filter(|(a, _)| evaluate(black_box(a)).is_some())
                .count()
        });
    });
    group.finish();
}

criterion_group!(benches, equivalence);
criterion_main!(benches);
