//! The accuracy-against-latency plot of `report`, drawn with plotters into SVG: one point per
//! variant, the Pareto front joined by a line, every point labelled.

use std::path::Path;

use plotters::prelude::*;

use super::compare::Comparison;
use crate::error::{Error, Result};

/// Draws `comparison` into an SVG at `path`; variants without latency are left out.
pub fn accuracy_vs_latency(comparison: &Comparison, path: &Path) -> Result<()> {
    let pts: Vec<(String, f64, f64, bool)> = comparison
        .rows
        .iter()
        .filter_map(|r| {
            r.latency.as_ref().map(|l| {
                (
                    r.name.clone(),
                    l.stages.end_to_end.mean_ms,
                    r.summary.accuracy.overall.accuracy * 100.0,
                    r.pareto == Some(true),
                )
            })
        })
        .collect();
    if pts.is_empty() {
        return Err(Error::Mismatch("no variant has a latency measurement to plot".into()));
    }
    let err = |e: &dyn std::fmt::Display| Error::image(path, format!("cannot draw the plot: {e}"));
    let x_max = pts.iter().map(|p| p.1).fold(0.0f64, f64::max) * 1.15 + 1e-6;
    let y_max = (pts.iter().map(|p| p.2).fold(0.0f64, f64::max) + 10.0).min(100.0);
    let y_min = (pts.iter().map(|p| p.2).fold(100.0f64, f64::min) - 10.0).max(0.0);
    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Accuracy against end-to-end latency (batch 1)", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max, y_min..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("mean end-to-end latency per item, ms")
        .y_desc("accuracy, %")
        .draw()
        .map_err(|e| err(&e))?;
    let mut front: Vec<(f64, f64)> = pts.iter().filter(|p| p.3).map(|p| (p.1, p.2)).collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    chart.draw_series(LineSeries::new(front, RED.stroke_width(2))).map_err(|e| err(&e))?;
    chart
        .draw_series(pts.iter().map(|(_, x, y, pareto)| {
            let style = if *pareto { RED.filled() } else { BLUE.filled() };
            Circle::new((*x, *y), 5, style)
        }))
        .map_err(|e| err(&e))?;
    chart
        .draw_series(
            pts.iter().map(|(name, x, y, _)| Text::new(name.clone(), (*x, *y), ("sans-serif", 13).into_font())),
        )
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::sample_report;
    use crate::report::VariantResult;

    #[test]
    fn plots_every_measured_variant_with_its_label() {
        let preds = |n: usize| -> Vec<crate::eval::Prediction> {
            (0..10)
                .map(|i| crate::eval::Prediction {
                    id: format!("d/{i}"),
                    position: i,
                    class: "c".into(),
                    prediction: "x".into(),
                    correct: i < n,
                    instruction: None,
                    follows: None,
                    phrasing: None,
                    new_tokens: 1,
                })
                .collect()
        };
        let with = |name: &str, n: usize, ms: Option<f64>| VariantResult {
            latency: ms.map(|ms| sample_report(name, ms)),
            ..VariantResult::scored(name, preds(n))
        };
        let results = vec![
            with("lynx", 8, Some(4.0)),
            with("fast", 5, Some(1.0)),
            with("slow", 4, Some(9.0)),
            with("unmeasured", 9, None),
        ];
        let c = Comparison::new(results, "lynx", None).unwrap();
        // On 10 items, 80% vs 50% is not a significant difference: the clearly faster `fast`
        // dominates both others.
        assert_eq!(
            c.rows.iter().map(|r| r.pareto).collect::<Vec<_>>(),
            vec![Some(false), Some(true), Some(false), None]
        );
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("plot.svg");
        accuracy_vs_latency(&c, &p).unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("\nlynx\n") && svg.contains("\nslow\n"),
            "{}",
            &svg[..200.min(svg.len())]
        );
        assert!(!svg.contains("unmeasured"));
        assert_eq!(svg.matches("<circle").count(), 3);
    }
}
