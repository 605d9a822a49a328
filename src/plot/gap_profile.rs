//! The gap profile as a picture: the mean delta at each signed train/eval gap with its
//! interval as a band, zero marked, and the slope against |gap| in the caption.

use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{column_f64, column_i64, write_two, FAMILY};

/// A `gap_profile` result: (gap, estimate, ci_low, ci_high) per gap, and the slope row.
#[derive(Debug, Clone, PartialEq)]
pub struct GapProfilePoints {
    pub points: Vec<(i64, f64, Option<f64>, Option<f64>)>,
    pub slope: Option<(f64, Option<f64>, Option<f64>)>,
}

impl GapProfilePoints {
    /// From a result with `measure`, `gap`, `estimate`, `ci_low` and `ci_high` columns.
    pub fn from_batches(batches: &[RecordBatch]) -> Option<Self> {
        let mut out = Self {
            points: Vec::new(),
            slope: None,
        };
        for batch in batches {
            let i = batch.schema().index_of("measure").ok()?;
            let measure = cast(batch.column(i), &DataType::Utf8).ok()?;
            let measure = measure.as_any().downcast_ref::<StringArray>()?.clone();
            let gap = column_i64(batch, "gap")?;
            let estimate = column_f64(batch, "estimate")?;
            let (lo, hi) = (column_f64(batch, "ci_low")?, column_f64(batch, "ci_high")?);
            for r in 0..batch.num_rows() {
                let Some(e) = estimate[r] else { continue };
                match (measure.is_valid(r).then(|| measure.value(r)), gap[r]) {
                    (Some("mean_delta"), Some(g)) => out.points.push((g, e, lo[r], hi[r])),
                    (Some("slope_per_bin"), _) => out.slope = Some((e, lo[r], hi[r])),
                    _ => {}
                }
            }
        }
        out.points.sort_by_key(|p| p.0);
        (!out.points.is_empty()).then_some(out)
    }

    fn caption(&self) -> String {
        let interval = |lo: Option<f64>, hi: Option<f64>| match (lo, hi) {
            (Some(lo), Some(hi)) => format!(" [{lo:+.3}, {hi:+.3}]"),
            _ => String::new(),
        };
        match self.slope {
            Some((s, lo, hi)) => format!(
                "slope of delta per bin of |gap|: {s:+.3}{}   band: interval of each mean",
                interval(lo, hi)
            ),
            None => "band: interval of each mean".into(),
        }
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    profile: &GapProfilePoints,
    title: &str,
) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let (x_lo, x_hi) = (
        profile.points[0].0 as f64 - 0.5,
        profile.points[profile.points.len() - 1].0 as f64 + 0.5,
    );
    let values = profile
        .points
        .iter()
        .flat_map(|&(_, m, lo, hi)| [Some(m), lo, hi])
        .flatten()
        .chain([0.0]);
    let (y_lo, y_hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let pad = ((y_hi - y_lo) * 0.08).max(0.01);
    let (root, legend) = root.split_vertically(root.dim_in_pixel().1 as i32 - 28);
    legend
        .draw_text(
            &profile.caption(),
            &TextStyle::from((FAMILY, 14).into_font()).color(&RGBColor(60, 60, 60)),
            (16, 4),
        )
        .map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 20))
        .margin(14)
        .x_label_area_size(64)
        .y_label_area_size(60)
        .build_cartesian_2d(x_lo..x_hi, (y_lo - pad)..(y_hi + pad))
        .map_err(|x| e(&x))?;
    let ticks = (x_hi - x_lo).round() as usize;
    chart
        .configure_mesh()
        .x_labels(ticks.max(2))
        .x_label_formatter(&|v| {
            if (v - v.round()).abs() < 1e-6 {
                match v.round() as i64 {
                    0 => "0".to_string(),
                    g => format!("{g:+}"),
                }
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| super::signed(*v))
        .x_desc("gap = eval bin - train bin (< 0: trained harder, > 0: trained easier)")
        .y_desc("mean delta vs zero-shot")
        .axis_desc_style((FAMILY, 14))
        .label_style((FAMILY, 12))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|x| e(&x))?;
    let band: Vec<(f64, f64)> = profile
        .points
        .iter()
        .filter_map(|&(g, _, lo, _)| lo.map(|l| (g as f64, l)))
        .chain(
            profile
                .points
                .iter()
                .rev()
                .filter_map(|&(g, _, _, hi)| hi.map(|h| (g as f64, h))),
        )
        .collect();
    if band.len() >= 3 {
        chart
            .draw_series(std::iter::once(Polygon::new(
                band,
                RGBColor(33, 102, 172).mix(0.2).filled(),
            )))
            .map_err(|x| e(&x))?;
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(x_lo, 0.0), (x_hi, 0.0)],
            BLACK.stroke_width(1),
        )))
        .map_err(|x| e(&x))?;
    let line: Vec<(f64, f64)> = profile
        .points
        .iter()
        .map(|&(g, m, _, _)| (g as f64, m))
        .collect();
    chart
        .draw_series(std::iter::once(PathElement::new(
            line.clone(),
            RGBColor(33, 102, 172).stroke_width(2),
        )))
        .map_err(|x| e(&x))?;
    chart
        .draw_series(
            line.into_iter()
                .map(|p| Circle::new(p, 4, RGBColor(33, 102, 172).filled())),
        )
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))
}

/// Writes the profile as `<stem>.svg` and `<stem>.png`.
pub fn write_gap_profile(
    profile: &GapProfilePoints,
    stem: &Path,
    title: &str,
) -> Result<Vec<PathBuf>, super::PlotError> {
    write_two(
        stem,
        (820, 520),
        |svg| draw(svg, profile, title),
        |png| draw(png, profile, title),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_profile() {
        let profile = GapProfilePoints {
            points: vec![
                (-2, -0.05, Some(-0.1), Some(0.0)),
                (-1, 0.02, Some(-0.03), Some(0.07)),
                (0, 0.2, Some(0.12), Some(0.28)),
                (1, 0.05, None, None),
                (2, -0.01, Some(-0.06), Some(0.04)),
            ],
            slope: Some((-0.08, Some(-0.12), Some(-0.04))),
        };
        assert!(profile.caption().contains("-0.080 [-0.120, -0.040]"));
        if super::super::ensure_font().is_err() {
            eprintln!("SKIPPED: no TrueType font on this machine (set CROSSDIFF_FONT)");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let files = write_gap_profile(&profile, &tmp.path().join("g"), "gaps").unwrap();
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        assert!(
            svg.contains("trained easier") && svg.contains("slope"),
            "{svg}"
        );
    }
}
