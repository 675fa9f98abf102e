//! The learning curve as SVG: training accuracy per epoch (with Wilson error bars)
//! over the test accuracy before and after training (lines with 95 % bands).

use plotters::prelude::*;

use crate::TrainError;
use crate::report::{Accuracy, TrainingReport};

const WIDTH: u32 = 960;
const HEIGHT: u32 = 600;
const TRAIN: RGBColor = RGBColor(230, 110, 20);
const BEFORE: RGBColor = RGBColor(110, 120, 135);
const AFTER: RGBColor = RGBColor(30, 150, 80);
const FONT: &str = "sans-serif";

/// `report`'s learning curve as an SVG document (`learning_curve.svg`, and inline
/// in `report.html`).
///
/// # Errors
/// [`TrainError::Plot`] when plotters cannot draw it.
pub fn learning_curve_svg(report: &TrainingReport) -> Result<String, TrainError> {
    let mut svg = String::new();
    draw(report, &mut svg).map_err(|error| TrainError::Plot(error.to_string()))?;
    Ok(svg)
}

fn draw(report: &TrainingReport, svg: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;

    let epochs = report.epochs.len().max(1) as f64;
    let x_range = 0.5..epochs + 0.5;
    let title = format!(
        "Learning curve · {} · {} train / {} test problems",
        report.setup.model, report.setup.train_problems, report.setup.test_problems
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 22).into_font().color(&BLACK.mix(0.85)))
        .margin(24)
        .x_label_area_size(56)
        .y_label_area_size(72)
        .build_cartesian_2d(x_range.clone(), 0.0..100.0)?;

    chart
        .configure_mesh()
        .x_desc("Training epoch")
        .y_desc("Problems solved (%)")
        .x_labels(report.epochs.len().clamp(1, 20))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_labels(11)
        .y_label_formatter(&|y| format!("{y:.0}%"))
        .axis_desc_style((FONT, 17))
        .label_style((FONT, 14))
        .light_line_style(BLACK.mix(0.04))
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;

    for (label, accuracy, colour) in [
        ("test before training", &report.test_before.accuracy, BEFORE),
        ("test after training", &report.test_after.accuracy, AFTER),
    ] {
        let band = [
            (x_range.start, accuracy.interval.low * 100.0),
            (x_range.end, accuracy.interval.high * 100.0),
        ];
        chart.draw_series(std::iter::once(Rectangle::new(
            band,
            colour.mix(0.13).filled(),
        )))?;
        let level = accuracy.rate * 100.0;
        chart
            .draw_series(DashedLineSeries::new(
                [(x_range.start, level), (x_range.end, level)],
                10,
                6,
                colour.stroke_width(3),
            ))?
            .label(format!("{label}: {} (95% band)", share(accuracy)))
            .legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + Rectangle::new([(0, -7), (24, 7)], colour.mix(0.13).filled())
                    + PathElement::new(vec![(0, 0), (24, 0)], colour.stroke_width(3))
            });
    }

    let train: Vec<(f64, f64, &Accuracy)> = report
        .epochs
        .iter()
        .map(|epoch| {
            (
                f64::from(epoch.epoch),
                epoch.accuracy.rate * 100.0,
                &epoch.accuracy,
            )
        })
        .collect();
    chart.draw_series(train.iter().map(|(x, _, accuracy)| {
        ErrorBar::new_vertical(
            *x,
            accuracy.interval.low * 100.0,
            accuracy.rate * 100.0,
            accuracy.interval.high * 100.0,
            TRAIN.mix(0.45).stroke_width(2),
            10,
        )
    }))?;
    chart
        .draw_series(LineSeries::new(
            train.iter().map(|(x, y, _)| (*x, *y)),
            TRAIN.stroke_width(3),
        ))?
        .label("training accuracy per epoch (95% interval)")
        .legend(|(x, y)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (24, 0)], TRAIN.stroke_width(3))
                + Circle::new((12, 0), 4, TRAIN.filled())
        });
    chart.draw_series(
        train
            .iter()
            .map(|(x, y, _)| Circle::new((*x, *y), 5, TRAIN.filled())),
    )?;
    // Rolled-back epochs get a hollow marker so the roll-backs are visible.
    chart.draw_series(
        report
            .epochs
            .iter()
            .filter(|epoch| !epoch.kept)
            .map(|epoch| {
                Circle::new(
                    (f64::from(epoch.epoch), epoch.accuracy.rate * 100.0),
                    3,
                    WHITE.filled(),
                )
            }),
    )?;

    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 14))
        .margin(12)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()?;

    root.draw(&Text::new(
        format!(
            "Exact McNemar p = {:.3} (before vs after, same problems). Hollow points: epochs rolled back.",
            report.mcnemar_p
        ),
        (24, HEIGHT as i32 - 20),
        (FONT, 13).into_font().color(&BLACK.mix(0.6)),
    ))?;
    root.present()?;
    Ok(())
}

/// `7/10 = 70%`.
fn share(accuracy: &Accuracy) -> String {
    format!(
        "{}/{} = {:.0}%",
        accuracy.correct,
        accuracy.total,
        accuracy.rate * 100.0
    )
}
