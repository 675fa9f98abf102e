//! The learning-curve SVG, drawn from the report fixture.

use agentopt_train::learning_curve_svg;

use crate::report::fixture;

/// Parses the SVG and returns the texts it shows.
fn svg_texts(svg: &str) -> Vec<String> {
    let document = roxmltree::Document::parse(svg).expect("the SVG is well-formed XML");
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
    let report = fixture();
    let svg = learning_curve_svg(&report).expect("plot drawn");
    let texts = svg_texts(&svg);
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
    let document = roxmltree::Document::parse(&svg).expect("well-formed");
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
    let mut report = fixture();
    report.epochs.clear();
    assert!(!svg_texts(&learning_curve_svg(&report).expect("plot drawn")).is_empty());
}

#[test]
fn learning_curve_text_is_escaped() {
    let mut report = fixture();
    report.setup.model = "<script>alert(1)</script>".to_owned();
    let svg = learning_curve_svg(&report).expect("plot drawn");
    assert!(!svg.contains("<script>"), "{svg}");
    assert!(
        svg_texts(&svg)
            .iter()
            .any(|text| text.contains("<script>alert(1)</script>"))
    );
}
