//! The learning-curve SVG, drawn from the training crate's report fixture.

use std::path::{Path, PathBuf};

use agentopt_core::files::read_json;
use agentopt_train::TrainingReport;
use xtask::bench_math::plot::write_learning_curve;

fn fixture() -> TrainingReport {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/train/tests/fixtures/report.json");
    read_json(&path).expect("fixture report.json parses")
}

/// Parses the SVG and returns it with the texts it shows.
fn svg_texts(path: &PathBuf) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("svg written");
    let document = roxmltree::Document::parse(&text).expect("the SVG is well-formed XML");
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.attribute("width"), Some("960"));
    document
        .descendants()
        .filter(|node| node.has_tag_name("text"))
        .filter_map(|node| node.text().map(str::to_owned))
        .collect()
}

#[test]
fn learning_curve_svg_parses_and_is_labelled() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("learning_curve.svg");
    let report = fixture();
    write_learning_curve(&report, &path).expect("plot written");
    let texts = svg_texts(&path);
    let has = |needle: &str| texts.iter().any(|text| text.contains(needle));
    for needle in [
        "Training epoch",
        "Problems solved (%)",
        "Learning curve · gpt-4o-mini · 10 train / 10 test problems",
        "test before training: 4/10 = 40% (95% band)",
        "test after training: 7/10 = 70% (95% band)",
        "training accuracy per epoch (95% interval)",
        "Exact McNemar p = 0.250",
        "100%",
    ] {
        assert!(has(needle), "no text {needle:?} in {texts:?}");
    }
    let text = std::fs::read_to_string(&path).expect("svg written");
    let document = roxmltree::Document::parse(&text).expect("well-formed");
    // Per epoch a marker and its error bar's centre, a hollow centre per rolled-back
    // epoch, and the legend's marker.
    let circles = document
        .descendants()
        .filter(|node| node.has_tag_name("circle"))
        .count();
    let rolled_back = report.epochs.iter().filter(|epoch| !epoch.kept).count();
    assert_eq!(rolled_back, 1);
    assert_eq!(circles, 2 * report.epochs.len() + rolled_back + 1);
}

#[test]
fn learning_curve_without_epochs() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("curve.svg");
    let mut report = fixture();
    report.epochs.clear();
    write_learning_curve(&report, &path).expect("plot written");
    assert!(!svg_texts(&path).is_empty());
}

#[test]
fn unwritable_plot_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("missing-dir/curve.svg");
    let error = write_learning_curve(&fixture(), &path).expect_err("cannot write there");
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot draw {}", path.display())),
        "{error}"
    );
}
