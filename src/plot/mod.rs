//! Pictures of results: the paper-style generalization heatmap (rows = train bin, columns =
//! eval bin, a diverging colour scale centred on zero, the value in each cell), per-bin
//! zero-shot accuracy, and difficulty histograms, as SVG and PNG through plotters; and the
//! heatmap as coloured text for the terminal. Where the result carries intervals, the cells
//! whose interval excludes zero are drawn in bold (the others in grey) and the significant
//! ones boxed; `gap_profile` draws the mean delta by gap with its interval band.
//!
//! Text needs a TrueType font, found at run time: `$CROSSDIFF_FONT`, else the usual system
//! locations (DejaVu Sans, Liberation Sans, Arial), else any `.ttf` under /usr/share/fonts.

mod gap_profile;

pub use gap_profile::{write_gap_profile, GapProfilePoints};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

/// Why a picture could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The pictures' text needs a TrueType font.
    #[error("no TrueType font found for the picture's text; set CROSSDIFF_FONT to a .ttf file")]
    NoFont,
    /// The result lacks what the picture needs.
    #[error("{0}")]
    Input(String),
    /// The output folder could not be made.
    #[error("cannot create the folder {}: {source}", path.display())]
    CreateFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// plotters failed while drawing or writing a file (its message: plotters' error type
    /// is generic over the backend, so the message is what can be kept).
    #[error("cannot draw {}: {message}", path.display())]
    Draw { path: PathBuf, message: String },
}

/// The font family name the pictures use once a font is registered.
const FAMILY: &str = "sans-serif";

/// Whether the pictures can have text: a TrueType font was found (see [`ensure_font`]).
pub fn font_available() -> bool {
    ensure_font().is_ok()
}

/// Registers a TrueType font for plotters, once; the error says how to provide one.
fn ensure_font() -> Result<(), PlotError> {
    static FONT: OnceLock<Option<PathBuf>> = OnceLock::new();
    FONT.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = std::env::var_os("CROSSDIFF_FONT")
            .map(PathBuf::from)
            .into_iter()
            .collect();
        candidates.extend(
            [
                "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                "/usr/share/fonts/TTF/DejaVuSans.ttf",
                "/usr/share/fonts/dejavu/DejaVuSans.ttf",
                "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
                "/Library/Fonts/Arial.ttf",
                "/System/Library/Fonts/Supplemental/Arial.ttf",
                "C:\\Windows\\Fonts\\arial.ttf",
            ]
            .map(PathBuf::from),
        );
        candidates.extend(any_ttf(Path::new("/usr/share/fonts"), 4));
        for path in candidates {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            // plotters keeps fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).is_ok() {
                // The family's bold face when it sits beside the regular one, else the regular.
                let bold = bold_sibling(&path)
                    .and_then(|p| std::fs::read(p).ok())
                    .map(|b| &*Box::leak(b.into_boxed_slice()))
                    .unwrap_or(bytes);
                if plotters::style::register_font(FAMILY, FontStyle::Bold, bold).is_err() {
                    let _ = plotters::style::register_font(FAMILY, FontStyle::Bold, bytes);
                }
                return Some(path);
            }
        }
        None
    })
    .as_ref()
    .map(|_| ())
    .ok_or(PlotError::NoFont)
}

/// `DejaVuSans-Bold.ttf` beside `DejaVuSans.ttf`, `...-Bold.ttf` beside `...-Regular.ttf`.
fn bold_sibling(regular: &Path) -> Option<PathBuf> {
    let stem = regular.file_stem()?.to_str()?;
    let base = stem.strip_suffix("-Regular").unwrap_or(stem);
    let bold = regular.with_file_name(format!("{base}-Bold.ttf"));
    bold.exists().then_some(bold)
}

fn any_ttf(dir: &Path, depth: usize) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && depth > 0 {
            out.extend(any_ttf(&path, depth - 1));
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("ttf"))
        {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// A generalization matrix: delta (and accuracies when known) per (train_bin, eval_bin).
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixGrid {
    pub train_bins: Vec<i64>,
    pub eval_bins: Vec<i64>,
    pub delta: BTreeMap<(i64, i64), f64>,
    /// Zero-shot accuracy per eval bin, when the result has it.
    pub zero_shot: BTreeMap<i64, f64>,
    /// Whether the result has intervals (`delta_ci_low`, `delta_ci_high`).
    pub has_intervals: bool,
    /// Cells whose interval excludes zero.
    pub excludes_zero: BTreeSet<(i64, i64)>,
    /// Cells marked `significant` (after the correction across cells).
    pub significant: BTreeSet<(i64, i64)>,
}

fn column_bool(batch: &RecordBatch, name: &str) -> Option<Vec<bool>> {
    let i = batch.schema().index_of(name).ok()?;
    let a = cast(batch.column(i), &DataType::Boolean).ok()?;
    let a = a.as_any().downcast_ref::<BooleanArray>()?.clone();
    Some((0..a.len()).map(|r| a.is_valid(r) && a.value(r)).collect())
}

fn column_f64(batch: &RecordBatch, name: &str) -> Option<Vec<Option<f64>>> {
    let i = batch.schema().index_of(name).ok()?;
    let a = cast(batch.column(i), &DataType::Float64).ok()?;
    let a = a.as_any().downcast_ref::<Float64Array>()?.clone();
    Some(
        (0..a.len())
            .map(|r| a.is_valid(r).then(|| a.value(r)))
            .collect(),
    )
}

fn column_i64(batch: &RecordBatch, name: &str) -> Option<Vec<Option<i64>>> {
    let i = batch.schema().index_of(name).ok()?;
    let a = cast(batch.column(i), &DataType::Int64).ok()?;
    let a = a.as_any().downcast_ref::<Int64Array>()?.clone();
    Some(
        (0..a.len())
            .map(|r| a.is_valid(r).then(|| a.value(r)))
            .collect(),
    )
}

impl MatrixGrid {
    /// The grid of a result with `train_bin`, `eval_bin` and `delta` columns (else `None`).
    pub fn from_batches(batches: &[RecordBatch]) -> Option<Self> {
        let mut grid = Self {
            train_bins: Vec::new(),
            eval_bins: Vec::new(),
            delta: BTreeMap::new(),
            zero_shot: BTreeMap::new(),
            has_intervals: false,
            excludes_zero: BTreeSet::new(),
            significant: BTreeSet::new(),
        };
        for batch in batches {
            let (t, e, d) = (
                column_i64(batch, "train_bin")?,
                column_i64(batch, "eval_bin")?,
                column_f64(batch, "delta")?,
            );
            let z = column_f64(batch, "zero_shot_accuracy");
            let interval =
                column_f64(batch, "delta_ci_low").zip(column_f64(batch, "delta_ci_high"));
            let significant = column_bool(batch, "significant");
            grid.has_intervals |= interval.is_some();
            for r in 0..batch.num_rows() {
                if let (Some(t), Some(e), Some(d)) = (t[r], e[r], d[r]) {
                    grid.delta.insert((t, e), d);
                    if let Some((lo, hi)) = &interval {
                        if lo[r].is_some_and(|l| l > 0.0) || hi[r].is_some_and(|h| h < 0.0) {
                            grid.excludes_zero.insert((t, e));
                        }
                    }
                    if significant.as_ref().is_some_and(|s| s[r]) {
                        grid.significant.insert((t, e));
                    }
                    if let Some(Some(z)) = z.as_ref().map(|z| z[r]) {
                        grid.zero_shot.insert(e, z);
                    }
                }
            }
        }
        if grid.delta.is_empty() {
            return None;
        }
        grid.train_bins = grid.delta.keys().map(|k| k.0).collect();
        grid.train_bins.dedup();
        grid.eval_bins = grid.delta.keys().map(|k| k.1).collect();
        grid.eval_bins.sort_unstable();
        grid.eval_bins.dedup();
        Some(grid)
    }

    /// The largest |delta|: the colour scale runs from -this to +this.
    fn scale(&self) -> f64 {
        self.delta
            .values()
            .fold(0.0f64, |m, d| m.max(d.abs()))
            .max(1e-9)
    }
}

/// `value` with two decimals and its sign, zero unsigned (no "-0.00" on an axis).
fn signed(value: f64) -> String {
    if value.abs() < 0.005 {
        "0.00".into()
    } else {
        format!("{value:+.2}")
    }
}

/// The diverging colour of `value` on a scale of ±`scale`: blue below zero, white at zero,
/// red above (the paper's heatmaps).
fn diverging(value: f64, scale: f64) -> (u8, u8, u8) {
    let t = (value / scale).clamp(-1.0, 1.0);
    let (full, far): ((f64, f64, f64), f64) = if t >= 0.0 {
        ((178.0, 24.0, 43.0), t)
    } else {
        ((33.0, 102.0, 172.0), -t)
    };
    let mix = |c: f64| (255.0 + (c - 255.0) * far).round() as u8;
    (mix(full.0), mix(full.1), mix(full.2))
}

/// The heatmap as text: one row per train bin, the delta in each cell, coloured backgrounds
/// when `color` (ANSI 24-bit). With intervals, `*` marks a cell whose interval excludes zero
/// and `**` a significant one (bold on a terminal).
pub fn terminal_heatmap(grid: &MatrixGrid, color: bool) -> String {
    let scale = grid.scale();
    let marks = grid.has_intervals || !grid.significant.is_empty();
    let width = if marks { 8 } else { 6 };
    let mut out = String::from("delta vs zero-shot (rows: train bin, columns: eval bin)\n");
    out.push_str("train\\eval");
    for e in &grid.eval_bins {
        out.push_str(&format!(" {e:>width$}"));
    }
    out.push('\n');
    for t in &grid.train_bins {
        out.push_str(&format!("{t:>10}"));
        for e in &grid.eval_bins {
            let key = (*t, *e);
            let mark = match (
                grid.significant.contains(&key),
                grid.excludes_zero.contains(&key),
            ) {
                _ if !marks => "",
                (true, _) => "**",
                (false, true) => "* ",
                (false, false) => "  ",
            };
            match grid.delta.get(&key) {
                Some(d) if color => {
                    let (r, g, b) = diverging(*d, scale);
                    let bold = if grid.significant.contains(&key) {
                        "\x1b[1m"
                    } else {
                        ""
                    };
                    out.push_str(&format!(
                        " \x1b[48;2;{r};{g};{b}m\x1b[38;2;0;0;0m{bold}{d:>+6.2}{mark}\x1b[0m"
                    ));
                }
                Some(d) => out.push_str(&format!(" {d:>+6.2}{mark}")),
                None => out.push_str(&format!(" {:>width$}", ".")),
            }
        }
        out.push('\n');
    }
    if marks {
        out.push_str("* interval excludes 0   ** significant after the correction across cells\n");
    }
    out
}

fn draw_heatmap<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    grid: &MatrixGrid,
    title: &str,
) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let root = root.titled(title, (FAMILY, 22)).map_err(|x| e(&x))?;
    let root = if grid.has_intervals {
        let (top, legend) = root.split_vertically(root.dim_in_pixel().1 as i32 - 26);
        legend
            .draw_text(
                "bold: interval excludes 0   grey: it does not   boxed: significant after correction",
                &TextStyle::from((FAMILY, 14).into_font()).color(&RGBColor(60, 60, 60)),
                (14, 4),
            )
            .map_err(|x| e(&x))?;
        top
    } else {
        root
    };
    let (area, bar) = root.split_horizontally((86).percent_width());
    let (n_e, n_t) = (grid.eval_bins.len() as i32, grid.train_bins.len() as i32);
    let scale = grid.scale();
    let mut chart = ChartBuilder::on(&area)
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(56)
        .build_cartesian_2d((0..n_e - 1).into_segmented(), (0..n_t - 1).into_segmented())
        .map_err(|x| e(&x))?;
    // Row 0 (the easiest train bin) at the top, as the paper draws it.
    let row_of = |k: i32| n_t - 1 - k;
    let label = |v: &SegmentValue<i32>, bins: &[i64], flip: bool| match v {
        SegmentValue::CenterOf(k) => {
            let k = if flip { row_of(*k) } else { *k };
            bins.get(k as usize)
                .map(|b| b.to_string())
                .unwrap_or_default()
        }
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(n_e as usize)
        .y_labels(n_t as usize)
        .x_label_formatter(&|v| label(v, &grid.eval_bins, false))
        .y_label_formatter(&|v| label(v, &grid.train_bins, true))
        .x_desc("eval bin (easy to hard)")
        .y_desc("train bin")
        .axis_desc_style((FAMILY, 16))
        .label_style((FAMILY, 14))
        .draw()
        .map_err(|x| e(&x))?;
    let size = if n_e > 12 { 10 } else { 14 };
    for (row, t) in grid.train_bins.iter().enumerate() {
        let y = row_of(row as i32);
        for (col, b) in grid.eval_bins.iter().enumerate() {
            let x = col as i32;
            let Some(&d) = grid.delta.get(&(*t, *b)) else {
                continue;
            };
            let (r, g, bl) = diverging(d, scale);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [
                        (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                        (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                    ],
                    RGBColor(r, g, bl).filled(),
                )))
                .map_err(|x| e(&x))?;
            if grid.significant.contains(&(*t, *b)) {
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [
                            (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                            (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                        ],
                        BLACK.stroke_width(3),
                    )))
                    .map_err(|x| e(&x))?;
            }
            // With intervals: cells that are more than noise in bold, the others in grey.
            let clear = !grid.has_intervals || grid.excludes_zero.contains(&(*t, *b));
            let font = if grid.has_intervals && clear {
                (FAMILY, size, FontStyle::Bold).into_font()
            } else {
                (FAMILY, size).into_font()
            };
            let ink = if clear {
                BLACK
            } else {
                RGBColor(110, 110, 110)
            };
            let style =
                TextStyle::from(font)
                    .color(&ink)
                    .pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Center,
                    ));
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("{d:+.2}"),
                    (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)),
                    style,
                )))
                .map_err(|x| e(&x))?;
        }
    }
    // The colour bar: -scale at the bottom, +scale at the top.
    let mut bar_chart = ChartBuilder::on(&bar)
        .margin_top(12)
        .margin_bottom(60)
        .margin_right(8)
        .y_label_area_size(44)
        .build_cartesian_2d(0.0..1.0, -scale..scale)
        .map_err(|x| e(&x))?;
    bar_chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(5)
        .y_label_formatter(&|v| signed(*v))
        .label_style((FAMILY, 12))
        .draw()
        .map_err(|x| e(&x))?;
    let steps = 60;
    bar_chart
        .draw_series((0..steps).map(|k| {
            let lo = -scale + 2.0 * scale * k as f64 / steps as f64;
            let hi = lo + 2.0 * scale / steps as f64;
            let (r, g, b) = diverging((lo + hi) / 2.0, scale);
            Rectangle::new([(0.0, lo), (1.0, hi)], RGBColor(r, g, b).filled())
        }))
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))
}

fn draw_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    bars: &[(String, f64)],
    title: &str,
    x_desc: &str,
    y_desc: &str,
    y_max: f64,
) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let n = bars.len().max(1) as i32;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..y_max)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n as usize)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(k) => bars
                .get(*k as usize)
                .map(|b| b.0.clone())
                .unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_formatter(&|v| {
            if y_max > 5.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        })
        .x_desc(x_desc)
        .y_desc(y_desc)
        .axis_desc_style((FAMILY, 15))
        .label_style((FAMILY, 12))
        .draw()
        .map_err(|x| e(&x))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(k, (_, v))| {
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(k as i32), *v),
                    (SegmentValue::Exact(k as i32 + 1), 0.0),
                ],
                RGBColor(33, 102, 172).filled(),
            );
            bar.set_margin(0, 0, 4, 4);
            bar
        }))
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))
}

/// Writes the heatmap as `<stem>.svg` and `<stem>.png`.
pub fn write_heatmap(
    grid: &MatrixGrid,
    stem: &Path,
    title: &str,
) -> Result<Vec<PathBuf>, PlotError> {
    let cells = grid.eval_bins.len().max(grid.train_bins.len()) as u32;
    let side = (cells * 64 + 180).clamp(480, 1400);
    struct Heat<'a>(&'a MatrixGrid, &'a str);
    impl Heat<'_> {
        fn go<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
            draw_heatmap(root, self.0, self.1)
        }
    }
    let heat = Heat(grid, title);
    write_two(
        stem,
        (side + side / 6, side),
        |svg| heat.go(svg),
        |png| heat.go(png),
    )
}

/// Writes a matrix result's pictures: `<stem>_heatmap.{svg,png}` and, when the grid has
/// zero-shot accuracies, `<stem>_zero_shot.{svg,png}`.
pub fn write_matrix(
    grid: &MatrixGrid,
    stem: &Path,
    title: &str,
) -> Result<Vec<PathBuf>, PlotError> {
    let named = |suffix: &str| {
        let mut name = stem.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        stem.with_file_name(name)
    };
    let mut written = write_heatmap(grid, &named("_heatmap"), title)?;
    if !grid.zero_shot.is_empty() {
        written.extend(write_zero_shot(
            grid,
            &named("_zero_shot"),
            "Zero-shot accuracy per difficulty bin",
        )?);
    }
    Ok(written)
}

/// The finite difficulties of a result with a `difficulty` column, per value of its
/// `benchmark` column ("all" without one).
pub fn difficulties_by_benchmark(
    batches: &[RecordBatch],
) -> Result<BTreeMap<String, Vec<f64>>, PlotError> {
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for batch in batches {
        let d = column_f64(batch, "difficulty").ok_or_else(|| {
            PlotError::Input("the result needs a numeric `difficulty` column".into())
        })?;
        let names: Option<Vec<Option<String>>> = match batch.schema().index_of("benchmark") {
            Ok(i) => {
                // A column that does not read as text (a struct, say) is an error, not a panic.
                let text = cast(batch.column(i), &DataType::Utf8).map_err(|e| {
                    PlotError::Input(format!(
                        "the `benchmark` column cannot be read as text: {e}"
                    ))
                })?;
                let text = text.as_string::<i32>();
                Some(text.iter().map(|v| v.map(str::to_string)).collect())
            }
            Err(_) => None,
        };
        for (r, value) in d.into_iter().enumerate() {
            let Some(value) = value.filter(|v| v.is_finite()) else {
                continue;
            };
            let name = names
                .as_ref()
                .and_then(|n| n[r].clone())
                .unwrap_or_else(|| "all".into());
            out.entry(name).or_default().push(value);
        }
    }
    if out.is_empty() {
        return Err(PlotError::Input(
            "the result has no finite difficulty values".into(),
        ));
    }
    Ok(out)
}

/// One histogram per benchmark: `<folder>/difficulty_<benchmark>.{svg,png}`.
pub fn write_difficulty(
    by_benchmark: &BTreeMap<String, Vec<f64>>,
    folder: &Path,
) -> Result<Vec<PathBuf>, PlotError> {
    let mut written = Vec::new();
    for (name, values) in by_benchmark {
        let stem = folder.join(format!("difficulty_{name}"));
        let title = format!("IRT difficulty: {name} ({} items)", values.len());
        written.extend(write_histogram(values, 20, &stem, &title)?);
    }
    Ok(written)
}

/// Writes per-bin zero-shot accuracy as bars.
pub fn write_zero_shot(
    grid: &MatrixGrid,
    stem: &Path,
    title: &str,
) -> Result<Vec<PathBuf>, PlotError> {
    let bars: Vec<(String, f64)> = grid
        .zero_shot
        .iter()
        .map(|(b, v)| (b.to_string(), *v))
        .collect();
    if bars.is_empty() {
        return Err(PlotError::Input(
            "the result has no zero_shot_accuracy column".into(),
        ));
    }
    write_two(
        stem,
        (720, 460),
        |svg| {
            draw_bars(
                svg,
                &bars,
                title,
                "eval bin (easy to hard)",
                "zero-shot accuracy",
                1.0,
            )
        },
        |png| {
            draw_bars(
                png,
                &bars,
                title,
                "eval bin (easy to hard)",
                "zero-shot accuracy",
                1.0,
            )
        },
    )
}

/// Writes a histogram of `difficulties` (`bins` equal-width bars).
pub fn write_histogram(
    difficulties: &[f64],
    bins: usize,
    stem: &Path,
    title: &str,
) -> Result<Vec<PathBuf>, PlotError> {
    let finite: Vec<f64> = difficulties
        .iter()
        .copied()
        .filter(|d| d.is_finite())
        .collect();
    if finite.is_empty() {
        return Err(PlotError::Input("no finite difficulty to draw".into()));
    }
    let (lo, hi) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &d| {
            (a.min(d), b.max(d))
        });
    let width = ((hi - lo) / bins as f64).max(1e-9);
    let mut counts = vec![0usize; bins];
    for d in &finite {
        counts[(((d - lo) / width) as usize).min(bins - 1)] += 1;
    }
    let bars: Vec<(String, f64)> = counts
        .iter()
        .enumerate()
        .map(|(k, &c)| (format!("{:.1}", lo + width * (k as f64 + 0.5)), c as f64))
        .collect();
    let top = counts.iter().copied().max().unwrap_or(1) as f64 * 1.1;
    write_two(
        stem,
        (760, 460),
        |svg| draw_bars(svg, &bars, title, "IRT difficulty", "items", top),
        |png| draw_bars(png, &bars, title, "IRT difficulty", "items", top),
    )
}

/// Renders to `<stem>.svg` with `svg` and to `<stem>.png` with `png`.
fn write_two(
    stem: &Path,
    size: (u32, u32),
    svg: impl Fn(&DrawingArea<SVGBackend, Shift>) -> Result<(), String>,
    png: impl Fn(&DrawingArea<BitMapBackend, Shift>) -> Result<(), String>,
) -> Result<Vec<PathBuf>, PlotError> {
    ensure_font()?;
    if let Some(parent) = stem.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| PlotError::CreateFolder {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let (svg_path, png_path) = (stem.with_extension("svg"), stem.with_extension("png"));
    let failed = |path: &PathBuf| {
        let path = path.clone();
        move |message| PlotError::Draw { path, message }
    };
    svg(&SVGBackend::new(&svg_path, size).into_drawing_area()).map_err(failed(&svg_path))?;
    png(&BitMapBackend::new(&png_path, size).into_drawing_area()).map_err(failed(&png_path))?;
    Ok(vec![svg_path, png_path])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> MatrixGrid {
        let mut delta = BTreeMap::new();
        for t in 0..3i64 {
            for e in 0..3i64 {
                delta.insert(
                    (t, e),
                    if t == e {
                        0.3
                    } else {
                        -0.1 * (t - e).abs() as f64
                    },
                );
            }
        }
        MatrixGrid {
            train_bins: vec![0, 1, 2],
            eval_bins: vec![0, 1, 2],
            delta,
            zero_shot: [(0, 0.8), (1, 0.5), (2, 0.2)].into_iter().collect(),
            has_intervals: false,
            excludes_zero: BTreeSet::new(),
            significant: BTreeSet::new(),
        }
    }

    fn grid_with_intervals() -> MatrixGrid {
        MatrixGrid {
            has_intervals: true,
            excludes_zero: [(0, 0), (1, 1), (2, 2), (2, 0)].into_iter().collect(),
            significant: [(0, 0), (2, 2)].into_iter().collect(),
            ..grid()
        }
    }

    /// A matrix result's intervals and significance reach the grid.
    #[test]
    fn grid_reads_intervals() {
        use datafusion::arrow::datatypes::{Field, Schema};
        use std::sync::Arc;
        let schema = Arc::new(Schema::new(vec![
            Field::new("train_bin", DataType::Int64, false),
            Field::new("eval_bin", DataType::Int64, false),
            Field::new("delta", DataType::Float64, false),
            Field::new("delta_ci_low", DataType::Float64, false),
            Field::new("delta_ci_high", DataType::Float64, false),
            Field::new("significant", DataType::Boolean, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![0, 0, 1])),
                Arc::new(Int64Array::from(vec![0, 1, 0])),
                Arc::new(Float64Array::from(vec![0.3, -0.2, 0.01])),
                Arc::new(Float64Array::from(vec![0.1, -0.3, -0.1])),
                Arc::new(Float64Array::from(vec![0.5, -0.05, 0.1])),
                Arc::new(BooleanArray::from(vec![true, false, false])),
            ],
        )
        .unwrap();
        let g = MatrixGrid::from_batches(&[batch]).unwrap();
        assert!(g.has_intervals);
        assert_eq!(g.excludes_zero, [(0, 0), (0, 1)].into_iter().collect());
        assert_eq!(g.significant, [(0, 0)].into_iter().collect());
    }

    #[test]
    fn colours_diverge_from_white() {
        assert_eq!(diverging(0.0, 1.0), (255, 255, 255));
        assert_eq!(diverging(1.0, 1.0), (178, 24, 43));
        assert_eq!(diverging(-2.0, 1.0), (33, 102, 172));
        let text = terminal_heatmap(&grid(), false);
        assert!(text.contains("     0  +0.30  -0.10  -0.20"), "{text}");
        assert!(terminal_heatmap(&grid(), true).contains("\x1b[48;2;178;24;43m"));
        let marked = terminal_heatmap(&grid_with_intervals(), false);
        assert!(
            marked.contains("         2  -0.20*   -0.10    +0.30**"),
            "{marked}"
        );
        assert!(marked.contains("** significant"), "{marked}");
        assert!(terminal_heatmap(&grid_with_intervals(), true).contains("\x1b[1m"));
    }

    #[test]
    fn writes_svg_and_png() {
        if ensure_font().is_err() {
            eprintln!("SKIPPED: no TrueType font on this machine (set CROSSDIFF_FONT)");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let files = write_heatmap(&grid(), &tmp.path().join("m"), "test").unwrap();
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        assert!(svg.contains("<svg") && svg.contains("+0.30") && svg.contains("train bin"));
        let png = std::fs::read(&files[1]).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        write_zero_shot(&grid(), &tmp.path().join("z"), "zero-shot").unwrap();
        let files = write_heatmap(&grid_with_intervals(), &tmp.path().join("i"), "test").unwrap();
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        assert!(
            svg.contains("bold") && svg.contains("boxed: significant"),
            "{svg}"
        );
        write_histogram(&[0.1, 0.5, -1.0, 2.0], 4, &tmp.path().join("h"), "hist").unwrap();
    }
}
