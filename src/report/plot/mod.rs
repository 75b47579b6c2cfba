//! The accuracy-against-latency plot of `report`, drawn with plotters into SVG (issue 12, item 7).
//!
//! One point per measured variant, at its mean end-to-end latency per item and its accuracy, each
//! with its 95% interval as an error bar; the Pareto front ([`super::pareto`]) in its own colour,
//! joined in latency order; the baseline ringed and named in bold; blind controls hollow. The
//! floors are reference lines: the majority floor dashed, each blind control's accuracy dotted,
//! each labelled with its name and accuracy. A legend explains the marks, inside the plot where a
//! corner or an edge is free of data, else in a panel on the right.
//!
//! Names are placed by greedy candidate-position labelling (the greedy algorithm of Christensen,
//! Marks & Shieber, *An empirical study of algorithms for point-feature label placement*, ACM TOG
//! 1995): each label tries a fixed list of boxes around its point, nearest first, and takes the
//! first that stays inside the plot and clear of every marker, label and leader line already
//! placed ([`place_labels`]). A zoo clusters its variants within a few ms and points, so the list
//! goes on outwards in rings, those boxes joined to their point by a thin leader line; a label
//! with no free box is replaced by a number, listed in the legend. The SVG backend measures no
//! text (no system fonts), so a label's box is estimated at [`CHAR_EM`] of the font size a
//! character, wider than lowercase DejaVu Sans, Liberation Sans or Helvetica.

mod labels;

use std::path::Path;

use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::compare::{Comparison, Role};
use crate::error::{Error, Result};
use crate::manifest::VisionInput;
use labels::*;

/// Canvas size in pixels.
const WIDTH: u32 = 1400;
const HEIGHT: u32 = 900;
/// Width of the legend panel on the right.
const PANEL_WIDTH: u32 = 340;
/// Font sizes in pixels: point labels, ticks and legend, axis titles, plot title.
const LABEL_PX: f64 = 13.0;
const TICK_PX: f64 = 13.0;
const AXIS_PX: f64 = 15.0;
const TITLE_PX: f64 = 20.0;
/// Estimated advance of one character, in em: regular and bold sans-serif.
const CHAR_EM: f64 = 0.6;
const BOLD_CHAR_EM: f64 = 0.68;
/// Estimated height of a line of text, in em (ascender to descender).
const LINE_EM: f64 = 1.15;
/// White space kept around a label's text inside its box.
const LABEL_PAD: f64 = 2.0;
/// plotters' SVG backend writes `font-size` as the font's size divided by this.
const SVG_FONT_SCALE: f64 = 1.24;

/// Marker radii in pixels, and the baseline's ring.
const MARKER_R: i32 = 5;
const BASELINE_R: i32 = 6;
const BASELINE_RING_R: i32 = 10;
/// Half length of an error bar's cap.
const CAP: i32 = 4;
/// Opacity of the error bars (no other mark uses it, which the tests rely on).
const ERROR_ALPHA: f64 = 0.45;

/// Okabe-Ito colours, distinct for colour-blind readers.
const PARETO: RGBColor = RGBColor(213, 94, 0);
const OTHER: RGBColor = RGBColor(0, 114, 178);
const PARETO_TEXT: RGBColor = RGBColor(150, 60, 0);
const OTHER_TEXT: RGBColor = RGBColor(0, 75, 120);
const FLOOR_LINE: RGBColor = RGBColor(70, 70, 70);
const BLIND_LINE: RGBColor = RGBColor(150, 60, 125);
const LEADER: RGBColor = RGBColor(90, 90, 90);
const GRID: RGBColor = RGBColor(225, 225, 225);

/// Gap between a marker and an adjacent label; step between rings of farther candidates; rings.
const GAP: f64 = 3.0;
const RING_STEP: f64 = 12.0;
const RINGS: usize = 26;
/// Clearance kept around markers, and between a label and other points' markers where room allows.
const MARKER_CLEARANCE: f64 = 2.0;
const APART: f64 = 8.0;
/// Free boxes counted per label when choosing the most constrained one next.
const CHOICES: usize = 24;

/// Draws `comparison` into an SVG at `path`; variants without latency are left out.
pub fn accuracy_vs_latency(comparison: &Comparison, path: &Path) -> Result<()> {
    draw(comparison, path).map(|_| ())
}

/// One measured variant as drawn: (value, 95% low, 95% high) on each axis.
#[derive(Debug, Clone)]
struct Mark {
    name: String,
    role: Role,
    pareto: bool,
    /// Mean end-to-end latency per item, ms.
    ms: (f64, f64, f64),
    /// Accuracy, %.
    pct: (f64, f64, f64),
}

fn marks(comparison: &Comparison) -> Vec<Mark> {
    comparison
        .rows
        .iter()
        .filter(|r| r.role != Role::Floor)
        .filter_map(|r| {
            let e2e = &r.latency.as_ref()?.stages.end_to_end;
            let a = &r.summary.accuracy.overall;
            Some(Mark {
                name: r.name.clone(),
                role: r.role,
                pareto: r.pareto == Some(true),
                ms: if e2e.mean_ci_high_ms > 0.0 {
                    (e2e.mean_ms, e2e.mean_ci_low_ms.min(e2e.mean_ms), e2e.mean_ci_high_ms.max(e2e.mean_ms))
                } else {
                    // A latency.json older than the interval of the mean: no bar.
                    (e2e.mean_ms, e2e.mean_ms, e2e.mean_ms)
                },
                pct: (a.accuracy * 100.0, a.ci_low * 100.0, a.ci_high * 100.0),
            })
        })
        .collect()
}

/// A horizontal reference line: the majority floor or a blind control's accuracy.
#[derive(Debug, Clone)]
struct Reference {
    label: String,
    pct: f64,
    floor: bool,
}

fn references(comparison: &Comparison) -> Vec<Reference> {
    comparison
        .rows
        .iter()
        .filter_map(|r| {
            let pct = r.summary.accuracy.overall.accuracy * 100.0;
            match r.role {
                Role::Floor => Some(Reference { label: format!("{} {pct:.1}%", r.name), pct, floor: true }),
                Role::Blind => {
                    let what = match r.vision_input {
                        VisionInput::Blank => "blank-picture control",
                        _ => "blind control",
                    };
                    Some(Reference { label: format!("{} ({what}) {pct:.1}%", r.name), pct, floor: false })
                }
                Role::Baseline | Role::Variant => None,
            }
        })
        .collect()
}

/// The axis ranges: every interval and reference line, with some room around.
fn ranges(marks: &[Mark], refs: &[Reference]) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
    let pad = |lo: f64, hi: f64, share: f64, least: f64| {
        let d = ((hi - lo) * share).max(least);
        (lo - d, hi + d)
    };
    let x_lo = marks.iter().map(|m| m.ms.1).fold(f64::INFINITY, f64::min);
    let x_hi = marks.iter().map(|m| m.ms.2).fold(f64::NEG_INFINITY, f64::max);
    let (x_lo, x_hi) = pad(x_lo, x_hi, 0.08, (x_hi.abs() * 0.1).max(0.5));
    let levels = refs.iter().map(|r| r.pct);
    let y_lo = marks.iter().map(|m| m.pct.1).chain(levels.clone()).fold(f64::INFINITY, f64::min);
    let y_hi = marks.iter().map(|m| m.pct.2).chain(levels).fold(f64::NEG_INFINITY, f64::max);
    let (y_lo, y_hi) = pad(y_lo, y_hi, 0.08, 2.0);
    (x_lo.max(0.0)..x_hi, y_lo.max(0.0)..y_hi.min(100.0))
}

/// A sans-serif font of `px` pixels as the SVG will say.
fn font(px: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::SansSerif, px * SVG_FONT_SCALE, FontStyle::Normal)
}

/// Where everything went, which the tests check.
#[derive(Debug, Clone)]
#[cfg_attr(not(test), allow(dead_code))]
struct Layout {
    /// The plotting area, canvas pixels.
    area: BBox,
    /// Each measured variant: its name, the centre and the radius of its marker.
    points: Vec<(String, (f64, f64), f64)>,
    /// Each measured variant's label.
    labels: Vec<Label>,
    /// The reference lines' label boxes.
    references: Vec<BBox>,
    /// The legend's box, when inside the plot (else it is in a panel on the right).
    legend: Option<BBox>,
    /// The numbered variants: number and name.
    numbered: Vec<(usize, String)>,
}

fn ipt(p: (f64, f64)) -> (i32, i32) {
    (p.0.round() as i32, p.1.round() as i32)
}

/// Renders the plot, with the legend inside the plot where a corner or an edge is free (leaving
/// the names the whole width), else in a panel on the right; a legend inside that lists numbered
/// points is sized for them, which takes a second rendering.
fn draw(comparison: &Comparison, path: &Path) -> Result<Layout> {
    let marks = marks(comparison);
    if marks.is_empty() {
        return Err(Error::Mismatch("no variant has a latency measurement to plot".into()));
    }
    let refs = references(comparison);
    let mut rows = 0;
    let mut inside = None;
    for _ in 0..3 {
        let mut svg = String::new();
        match render(&mut svg, &marks, &refs, Legend::Inside { numbered: rows }, path)? {
            Some(layout) if layout.numbered.len() <= rows => {
                inside = Some((svg, layout));
                break;
            }
            Some(layout) => rows = layout.numbered.len(),
            None => break,
        }
    }
    let (svg, layout) = match inside {
        Some(done) => done,
        None => {
            let mut svg = String::new();
            let layout = render(&mut svg, &marks, &refs, Legend::Panel, path)?
                .ok_or_else(|| Error::image(path, "cannot draw the plot: no room for the legend"))?;
            (svg, layout)
        }
    };
    std::fs::write(path, svg).map_err(|e| Error::io("writing", path, e))?;
    Ok(layout)
}

/// Where the legend goes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Legend {
    /// Inside the plot, with room for this many numbered points.
    Inside { numbered: usize },
    /// In a panel right of the plot.
    Panel,
}

/// Draws the plot into `svg`; `None` when the legend should go inside but finds no free place.
fn render(svg: &mut String, marks: &[Mark], refs: &[Reference], legend: Legend, path: &Path) -> Result<Option<Layout>> {
    let err = |e: &dyn std::fmt::Display| Error::image(path, format!("cannot draw the plot: {e}"));
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let chart_width = if legend == Legend::Panel { WIDTH - PANEL_WIDTH } else { WIDTH };
    let (left, _) = root.split_horizontally(chart_width);
    let (x_range, y_range) = ranges(marks, refs);
    let (x_lo, x_hi) = (x_range.start, x_range.end);
    let mut chart = ChartBuilder::on(&left)
        .caption("Accuracy against mean end-to-end latency per item (batch 1)", font(TITLE_PX))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range, y_range)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .x_desc("mean end-to-end latency per item, ms")
        .y_desc("accuracy, %")
        .label_style(font(TICK_PX))
        .axis_desc_style(font(AXIS_PX))
        .x_label_formatter(&|v| format!("{v:.1}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    let px = |x: f64, y: f64| -> (f64, f64) {
        let (a, b) = chart.backend_coord(&(x, y));
        (f64::from(a), f64::from(b))
    };
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    let area = BBox { x0: f64::from(xs.start), y0: f64::from(ys.start), x1: f64::from(xs.end), y1: f64::from(ys.end) };

    // Everything in pixels: markers, error bars, the front, the reference lines.
    let at: Vec<(f64, f64)> = marks.iter().map(|m| px(m.ms.0, m.pct.0)).collect();
    let radius = |m: &Mark| f64::from(if m.role == Role::Baseline { BASELINE_RING_R + 1 } else { MARKER_R + 1 });
    let marker_boxes: Vec<BBox> =
        marks.iter().zip(&at).map(|(m, &c)| BBox::around(c, radius(m) + MARKER_CLEARANCE)).collect();
    let bars: Vec<Segment> = marks
        .iter()
        .flat_map(|m| [(px(m.ms.1, m.pct.0), px(m.ms.2, m.pct.0)), (px(m.ms.0, m.pct.1), px(m.ms.0, m.pct.2))])
        .collect();
    let mut front: Vec<(f64, f64)> = marks.iter().filter(|m| m.pareto).map(|m| (m.ms.0, m.pct.0)).collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    let front_px: Vec<(f64, f64)> = front.iter().map(|&(x, y)| px(x, y)).collect();
    let ref_lines: Vec<Segment> = refs.iter().map(|r| (px(x_lo, r.pct), px(x_hi, r.pct))).collect();

    // The legend first, in a free corner or edge of the plot, well clear of every point.
    let base = marks.iter().position(|m| m.role == Role::Baseline);
    let entries = legend_entries(marks, refs);
    let longest = marks.iter().map(|m| m.name.chars().count()).max().unwrap_or(0);
    let legend_box = match legend {
        Legend::Inside { numbered } => {
            let (w, h) = legend_size(&entries, numbered, longest);
            let (l, t, r, b) = (area.x0 + 10.0, area.y0 + 10.0, area.x1 - 10.0, area.y1 - 10.0);
            let mid = (area.x0 + area.x1 - w) / 2.0;
            let spots: Vec<BBox> = [(l, t), (r - w, t), (r - w, b - h), (l, b - h), (mid, t), (mid, b - h)]
                .iter()
                .map(|&(x, y)| BBox { x0: x, y0: y, x1: x + w, y1: y + h })
                .collect();
            let clear: Vec<BBox> = at.iter().map(|&c| BBox::around(c, 24.0)).collect();
            let lines: Vec<Segment> =
                bars.iter().chain(&ref_lines).copied().chain(front_px.windows(2).map(|w| (w[0], w[1]))).collect();
            match first_free(&spots, &area, &clear, &lines) {
                Some(spot) => Some(spot),
                None => return Ok(None),
            }
        }
        Legend::Panel => None,
    };

    // Reference lines, each label at the right or further left, above or below its line.
    let mut ref_boxes: Vec<BBox> = Vec::new();
    for (r, line) in refs.iter().zip(&ref_lines) {
        let (colour, dash, gap) = if r.floor { (FLOOR_LINE, 9, 5) } else { (BLIND_LINE, 3, 4) };
        chart
            .plotting_area()
            .draw(&DashedPathElement::new(vec![(x_lo, r.pct), (x_hi, r.pct)], dash, gap, colour.stroke_width(2)))
            .map_err(|e| err(&e))?;
        let size = label_size(&r.label, LABEL_PX, false);
        let y = line.0 .1;
        let mut candidates = Vec::new();
        for k in 0..10 {
            let x1 = area.x1 - 6.0 - k as f64 * (area.x1 - area.x0) / 10.0;
            candidates.push(BBox { x0: x1 - size.0, y0: y - 3.0 - size.1, x1, y1: y - 3.0 });
            candidates.push(BBox { x0: x1 - size.0, y0: y + 3.0, x1, y1: y + 3.0 + size.1 });
        }
        let obstacles: Vec<BBox> = marker_boxes.iter().chain(&ref_boxes).chain(&legend_box).copied().collect();
        let rect = first_free(&candidates, &area, &obstacles, &[]).unwrap_or(candidates[0]);
        draw_label(&root, &r.label, &rect, if r.floor { FLOOR_LINE } else { BLIND_LINE }, false)
            .map_err(|e| err(&e))?;
        ref_boxes.push(rect);
    }

    // The Pareto front, in latency order; the error bars.
    chart.plotting_area().draw(&PathElement::new(front, PARETO.stroke_width(2))).map_err(|e| err(&e))?;
    let colour = |m: &Mark| if m.pareto { PARETO } else { OTHER };
    for (m, pair) in marks.iter().zip(bars.chunks(2)) {
        let style = colour(m).mix(ERROR_ALPHA).stroke_width(1);
        let ((xl, y), (xh, _)) = pair[0];
        let ((x, yl), (_, yh)) = pair[1];
        let (xl, xh, y) = (ipt((xl, y)).0, ipt((xh, y)).0, ipt((xl, y)).1);
        let (x, yl, yh) = (ipt((x, yl)).0, ipt((x, yl)).1, ipt((x, yh)).1);
        for bar in [horizontal_bar(xl, xh, y), vertical_bar(x, yl, yh)] {
            root.draw(&PathElement::new(bar, style)).map_err(|e| err(&e))?;
        }
    }

    // Labels: leaders under the markers, markers under the names.
    let anchors: Vec<Anchor> = marks
        .iter()
        .zip(&at)
        .map(|(m, &c)| Anchor {
            at: c,
            radius: radius(m),
            size: label_size(&m.name, LABEL_PX, m.role == Role::Baseline),
        })
        .collect();
    let fixed: Vec<BBox> = ref_boxes.iter().chain(&legend_box).copied().collect();
    let lines: Vec<Segment> = ref_lines.iter().copied().chain(front_px.windows(2).map(|w| (w[0], w[1]))).collect();
    let labels = place_labels(&anchors, area, &fixed, &lines, base);
    let numbered: Vec<(usize, String)> = labels
        .iter()
        .zip(marks)
        .filter_map(|(l, m)| match l {
            Label::Number(n, _) => Some((*n, m.name.clone())),
            Label::Name(_) => None,
        })
        .collect();
    for (from, to) in labels.iter().filter_map(|l| l.placed().leader) {
        root.draw(&PathElement::new(vec![ipt(from), ipt(to)], LEADER.stroke_width(1))).map_err(|e| err(&e))?;
    }
    let mut by_layer: Vec<(&Mark, (f64, f64))> = marks.iter().zip(at.iter().copied()).collect();
    by_layer.sort_by_key(|(m, _)| (m.role == Role::Baseline, m.pareto));
    for (m, c) in by_layer {
        draw_marker(&root, ipt(c), m.role, colour(m)).map_err(|e| err(&e))?;
    }
    for (m, label) in marks.iter().zip(&labels) {
        let text_colour = match (m.role, m.pareto) {
            (Role::Baseline, _) => BLACK,
            (_, true) => PARETO_TEXT,
            (_, false) => OTHER_TEXT,
        };
        let (text, bold) = match label {
            Label::Name(_) => (m.name.clone(), m.role == Role::Baseline),
            Label::Number(n, _) => (n.to_string(), true),
        };
        draw_label(&root, &text, &label.placed().rect, text_colour, bold).map_err(|e| err(&e))?;
    }
    let frame = legend_box.unwrap_or_else(|| {
        let (w, h) = legend_size(&entries, numbered.len(), longest);
        let x0 = f64::from(chart_width) + 4.0;
        BBox { x0, y0: area.y0, x1: x0 + w, y1: area.y0 + h }
    });
    draw_legend(&root, &frame, &entries, &numbered).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(Some(Layout {
        area,
        points: marks.iter().zip(&at).map(|(m, &c)| (m.name.clone(), c, radius(m))).collect(),
        labels,
        references: ref_boxes,
        legend: legend_box,
        numbered,
    }))
}

/// A horizontal error bar from `xl` to `xh` at `y`, caps included, as one polyline.
fn horizontal_bar(xl: i32, xh: i32, y: i32) -> Vec<(i32, i32)> {
    vec![(xl, y - CAP), (xl, y + CAP), (xl, y), (xh, y), (xh, y - CAP), (xh, y + CAP)]
}

/// A vertical error bar from `yl` to `yh` at `x`, caps included, as one polyline.
fn vertical_bar(x: i32, yl: i32, yh: i32) -> Vec<(i32, i32)> {
    vec![(x - CAP, yl), (x + CAP, yl), (x, yl), (x, yh), (x - CAP, yh), (x + CAP, yh)]
}

type DrawResult<DB> = std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A marker: filled for a variant, hollow for a blind control, ringed in black for the baseline.
fn draw_marker<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    at: (i32, i32),
    role: Role,
    colour: RGBColor,
) -> DrawResult<DB> {
    match role {
        Role::Blind => {
            root.draw(&Circle::new(at, MARKER_R, WHITE.filled()))?;
            root.draw(&Circle::new(at, MARKER_R, colour.stroke_width(2)))
        }
        Role::Baseline => {
            root.draw(&Circle::new(at, BASELINE_RING_R, WHITE.filled()))?;
            root.draw(&Circle::new(at, BASELINE_RING_R, BLACK.stroke_width(2)))?;
            root.draw(&Circle::new(at, BASELINE_R, colour.filled()))
        }
        Role::Variant | Role::Floor => root.draw(&Circle::new(at, MARKER_R, colour.filled())),
    }
}

/// `text` in `rect` on a white ground that keeps it readable over lines and error bars.
fn draw_label<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    text: &str,
    rect: &BBox,
    colour: RGBColor,
    bold: bool,
) -> DrawResult<DB> {
    let (x0, y0) = ipt((rect.x0, rect.y0));
    root.draw(&Rectangle::new([(x0, y0), ipt((rect.x1, rect.y1))], WHITE.mix(0.85).filled()))?;
    let style = if bold { FontStyle::Bold } else { FontStyle::Normal };
    let f = font(LABEL_PX).style(style).color(&colour).pos(Pos::new(HPos::Left, VPos::Top));
    let pad = LABEL_PAD.round() as i32;
    root.draw(&Text::new(text.to_string(), (x0 + pad, y0 + pad), f))
}

/// The glyph of a legend entry.
#[derive(Debug, Clone, Copy)]
enum Glyph {
    Marker(Role, RGBColor),
    Line(RGBColor),
    Dashed(RGBColor, i32, i32),
    LatencyBar,
    AccuracyBar,
    Leader,
}

/// The legend's entries: the kinds of marks this plot has.
fn legend_entries(marks: &[Mark], refs: &[Reference]) -> Vec<(Glyph, String)> {
    let any = |f: &dyn Fn(&Mark) -> bool| marks.iter().any(f);
    let mut entries: Vec<(Glyph, String)> = Vec::new();
    let mut add = |yes: bool, glyph: Glyph, text: &str| {
        if yes {
            entries.push((glyph, text.to_string()));
        }
    };
    add(any(&|m| m.pareto), Glyph::Marker(Role::Variant, PARETO), "on the Pareto front");
    add(any(&|m| !m.pareto), Glyph::Marker(Role::Variant, OTHER), "not on the front");
    let baseline = marks.iter().find(|m| m.role == Role::Baseline).map(|m| format!("baseline {} (bold)", m.name));
    add(baseline.is_some(), Glyph::Marker(Role::Baseline, OTHER), baseline.as_deref().unwrap_or_default());
    add(any(&|m| m.role == Role::Blind), Glyph::Marker(Role::Blind, OTHER), "blind control (hollow)");
    add(any(&|m| m.pareto), Glyph::Line(PARETO), "Pareto front, in latency order");
    add(true, Glyph::LatencyBar, "95% interval of the mean latency");
    add(true, Glyph::AccuracyBar, "95% interval of the accuracy");
    add(refs.iter().any(|r| r.floor), Glyph::Dashed(FLOOR_LINE, 9, 5), "majority floor");
    add(refs.iter().any(|r| !r.floor), Glyph::Dashed(BLIND_LINE, 3, 4), "accuracy of a blind control");
    add(true, Glyph::Leader, "leader to a name set apart");
    entries
}

/// Height of a line of the legend.
const LEGEND_LINE: f64 = 21.0;
/// Space for the glyph left of a legend entry's text; padding inside the legend's frame.
const LEGEND_GLYPH: f64 = 34.0;
const LEGEND_PAD: f64 = 8.0;

/// Width and height of the legend with room for `numbered` numbered points, none of whose names
/// is longer than `longest` characters.
fn legend_size(entries: &[(Glyph, String)], numbered: usize, longest: usize) -> (f64, f64) {
    let widest = entries.iter().map(|e| label_size(&e.1, TICK_PX, false).0).fold(0.0, f64::max);
    let widest = if numbered > 0 {
        let line = format!("{numbered} = {}", "n".repeat(longest));
        widest.max(label_size(&line, TICK_PX, false).0).max(label_size(NUMBERED, TICK_PX, true).0 - LEGEND_GLYPH)
    } else {
        widest
    };
    let rows = entries.len() + if numbered > 0 { numbered + 1 } else { 0 };
    (LEGEND_GLYPH + widest + 2.0 * LEGEND_PAD, rows as f64 * LEGEND_LINE + 2.0 * LEGEND_PAD)
}

/// The heading of the numbered points in the legend.
const NUMBERED: &str = "numbered points:";

/// The legend in `frame`: what each mark means, then the numbered points.
fn draw_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    frame: &BBox,
    entries: &[(Glyph, String)],
    numbered: &[(usize, String)],
) -> DrawResult<DB> {
    let at = ipt((frame.x0, frame.y0));
    let corner = ipt((frame.x1, frame.y1));
    root.draw(&Rectangle::new([at, corner], WHITE.mix(0.92).filled()))?;
    root.draw(&Rectangle::new([at, corner], RGBColor(170, 170, 170).stroke_width(1)))?;
    let line = LEGEND_LINE.round() as i32;
    let pad = LEGEND_PAD.round() as i32;
    let glyph_x = at.0 + pad + 14;
    let text_x = at.0 + pad + LEGEND_GLYPH.round() as i32;
    let mut y = at.1 + pad + line / 2;
    let text = |s: &str, at: (i32, i32), bold: bool| {
        let style = if bold { FontStyle::Bold } else { FontStyle::Normal };
        Text::new(s.to_string(), at, font(TICK_PX).style(style).color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center)))
    };
    for (glyph, label) in entries {
        let span = vec![(glyph_x - 12, y), (glyph_x + 12, y)];
        match *glyph {
            Glyph::Marker(role, colour) => draw_marker(root, (glyph_x, y), role, colour)?,
            Glyph::Line(colour) => root.draw(&PathElement::new(span, colour.stroke_width(2)))?,
            Glyph::Dashed(colour, dash, gap) => {
                root.draw(&DashedPathElement::new(span, dash, gap, colour.stroke_width(2)))?
            }
            Glyph::LatencyBar => root.draw(&PathElement::new(
                horizontal_bar(glyph_x - 12, glyph_x + 12, y),
                OTHER.mix(ERROR_ALPHA).stroke_width(1),
            ))?,
            Glyph::AccuracyBar => root
                .draw(&PathElement::new(vertical_bar(glyph_x, y - 9, y + 9), OTHER.mix(ERROR_ALPHA).stroke_width(1)))?,
            Glyph::Leader => root
                .draw(&PathElement::new(vec![(glyph_x - 12, y + 5), (glyph_x + 12, y - 5)], LEADER.stroke_width(1)))?,
        }
        root.draw(&text(label, (text_x, y), false))?;
        y += line;
    }
    if !numbered.is_empty() {
        root.draw(&text(NUMBERED, (at.0 + pad, y), true))?;
        y += line;
        for (n, name) in numbered {
            root.draw(&text(&format!("{n} = {name}"), (text_x, y), false))?;
            y += line;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::sample_report;
    use crate::report::compare::tests::{preds, variant};
    use crate::report::compare::{Floor, VariantResult};

    /// The names of the shipped zoo (docs/results.md).
    const ZOO: [&str; 25] = [
        "lynx",
        "lynx-1frame",
        "lynx-adapter-every",
        "lynx-base",
        "lynx-blind",
        "lynx-full-ft",
        "lynx-gpt2",
        "lynx-half-data",
        "lynx-int8",
        "lynx-large",
        "lynx-lora",
        "lynx-lowres",
        "lynx-no-adapter",
        "lynx-no-align",
        "lynx-no-framepos",
        "lynx-no-text",
        "lynx-no-video",
        "lynx-noisy-captions",
        "lynx-projector",
        "lynx-single-prompt",
        "lynx-tokens-64",
        "lynx-tokens-8",
        "lynx-uniform-sampling",
        "lynx-vit-last",
        "lynx-xattn",
    ];

    /// Accuracy % and mean end-to-end ms of each of [`ZOO`] (docs/results.md, 2026-11-27).
    const MEASURED: [(f64, f64); 25] = [
        (24.7, 11.06),
        (20.9, 6.19),
        (25.5, 11.35),
        (14.9, 11.19),
        (17.5, 3.13),
        (26.5, 12.66),
        (27.5, 10.91),
        (23.1, 12.56),
        (25.3, 10.19),
        (24.9, 14.53),
        (22.7, 11.12),
        (22.7, 8.19),
        (23.5, 12.46),
        (30.9, 12.72),
        (25.1, 12.92),
        (26.7, 11.28),
        (24.0, 11.12),
        (23.3, 11.40),
        (23.5, 11.19),
        (21.5, 11.55),
        (23.6, 12.52),
        (24.5, 11.98),
        (28.5, 11.65),
        (24.9, 11.36),
        (20.9, 11.31),
    ];

    /// The shipped zoo's comparison: 25 variants (`lynx-blind` blind) on 550 items, the majority
    /// floor, and `lynx-tokens-8` unmeasured.
    fn zoo() -> Comparison {
        let results: Vec<VariantResult> = ZOO
            .iter()
            .zip(MEASURED)
            .map(|(name, (pct, ms))| {
                let right = (pct / 100.0 * 550.0).round() as usize;
                // Spread the right answers so that variants disagree on items.
                let shift = name.len() * 37;
                let correct: Vec<bool> = (0..550).map(|i| (i + shift) % 550 < right).collect();
                VariantResult {
                    vision_input: if *name == "lynx-blind" { VisionInput::None } else { VisionInput::Picture },
                    latency: (*name != "lynx-tokens-8").then(|| sample_report(name, ms)),
                    ..variant(name, &correct)
                }
            })
            .collect();
        let floor = Floor {
            description: "the majority answer of each class".into(),
            predictions: preds(&(0..550).map(|i| i % 11 == 0).collect::<Vec<_>>()),
        };
        Comparison::new(results, "lynx", Some(floor)).unwrap()
    }

    fn text_lines(svg: &str) -> Vec<&str> {
        // plotters writes each text on a line of its own between the tags.
        svg.lines().collect()
    }

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
        let floor = Floor { description: "floor".into(), predictions: preds(3) };
        let c = Comparison::new(results, "lynx", Some(floor)).unwrap();
        // On 10 items, 80% vs 50% is not a significant difference: the clearly faster `fast`
        // dominates both others.
        assert_eq!(
            c.rows.iter().map(|r| r.pareto).collect::<Vec<_>>(),
            vec![Some(false), Some(true), Some(false), None, None]
        );
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("plot.svg");
        let layout = draw(&c, &p).unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        let lines = text_lines(&svg);
        assert!(svg.starts_with("<svg"), "{}", &svg[..200.min(svg.len())]);
        for name in ["lynx", "fast", "slow", "majority floor 30.0%"] {
            assert_eq!(lines.iter().filter(|l| **l == name).count(), 1, "{name}");
        }
        assert!(!svg.contains("unmeasured"));
        assert!(layout.numbered.is_empty());
        assert_disjoint_inside(&layout);
        // The baseline's label is bold.
        let base = svg.lines().position(|l| l == "lynx").unwrap();
        assert!(lines[base - 1].contains("font-weight=\"bold\""), "{}", lines[base - 1]);
        // Error bars: one polyline each, caps included, two a point and one of each kind in the
        // legend. The latency intervals are +-5% of the mean: `slow`'s (9 ms) is 9 times as wide
        // as `fast`'s (1 ms).
        let alpha = format!("opacity=\"{ERROR_ALPHA}\"");
        let bars: Vec<Vec<(f64, f64)>> = svg
            .lines()
            .filter(|l| l.starts_with("<polyline") && l.contains(&alpha))
            .map(|l| {
                let points = l.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
                points
                    .split_whitespace()
                    .map(|xy| {
                        let (x, y) = xy.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect()
            })
            .collect();
        assert_eq!(bars.len(), 2 * 3 + 2);
        let legend = layout.legend.unwrap();
        let in_plot = |b: &&Vec<(f64, f64)>| !legend.contains(&BBox::around(b[2], 0.0));
        let widths: Vec<f64> =
            bars.iter().filter(in_plot).filter(|b| b[2].1 == b[3].1).map(|b| b[3].0 - b[2].0).collect();
        let heights: Vec<f64> =
            bars.iter().filter(in_plot).filter(|b| b[2].0 == b[3].0).map(|b| b[2].1 - b[3].1).collect();
        assert!(widths.len() == 3 && heights.len() == 3 && heights.iter().all(|&h| h > 20.0), "{bars:?}");
        let (narrowest, widest) =
            (widths.iter().cloned().fold(f64::MAX, f64::min), widths.iter().cloned().fold(0.0, f64::max));
        assert!((widest / narrowest - 9.0).abs() < 1.0, "{widths:?}");
        // The floor: a dashed line across the plot at 30% (many short polylines of its colour).
        let floor_colour = format!("stroke=\"#{:02X}{:02X}{:02X}\"", FLOOR_LINE.0, FLOOR_LINE.1, FLOOR_LINE.2);
        assert!(svg.lines().filter(|l| l.starts_with("<polyline") && l.contains(&floor_colour)).count() > 20);
        // The y axis reaches down to the floor.
        assert!(layout.references.len() == 1 && layout.area.contains(&layout.references[0]));
        // Markers: a circle a point, three for the ringed baseline; five more in the legend (no
        // blind control here).
        assert_eq!(svg.matches("<circle").count(), 2 + 3 + 5);
        assert!(accuracy_vs_latency(&Comparison { rows: vec![], ..c }, &p).is_err());
    }

    #[test]
    fn the_shipped_zoo_is_labelled_without_overlaps() {
        let c = zoo();
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("plot.svg");
        let layout = draw(&c, &p).unwrap();
        if let Ok(keep) = std::env::var("LYNX_ZOO_PLOT_PREVIEW") {
            std::fs::copy(&p, keep).unwrap();
        }
        let svg = std::fs::read_to_string(&p).unwrap();
        let lines = text_lines(&svg);
        assert_eq!(layout.points.len(), 24);
        assert!(layout.numbered.is_empty(), "numbered: {:?}", layout.numbered);
        let baseline = &layout.labels[0];
        assert!(matches!(baseline, Label::Name(_)), "{baseline:?}");
        for name in ZOO.iter().filter(|n| **n != "lynx-tokens-8") {
            assert_eq!(lines.iter().filter(|l| *l == name).count(), 1, "{name}");
        }
        assert!(!svg.contains("lynx-tokens-8"));
        assert!(lines.contains(&"lynx-blind (blind control) 17.5%") && lines.contains(&"majority floor 9.1%"));
        assert_disjoint_inside(&layout);
    }

    /// Every label and reference label inside the plot, clear of each other and of every marker.
    fn assert_disjoint_inside(layout: &Layout) {
        let boxes: Vec<BBox> = layout
            .labels
            .iter()
            .map(|l| l.placed().rect)
            .chain(layout.references.iter().copied())
            .chain(layout.legend)
            .collect();
        for (i, a) in boxes.iter().enumerate() {
            assert!(layout.area.contains(a), "{a:?} outside {:?}", layout.area);
            for b in &boxes[i + 1..] {
                assert!(!a.intersects(b), "{a:?} overlaps {b:?}");
            }
            for (name, c, r) in &layout.points {
                assert!(a.distance(*c) >= *r, "{a:?} covers the point of {name}");
            }
        }
    }

    /// 25 points within 2 ms and 3 points, on a plot of 0-25 ms and 10-35% of 1000 x 700 pixels.
    #[test]
    fn a_dense_cluster_gets_disjoint_labels_inside_the_plot() {
        let area = BBox { x0: 90.0, y0: 60.0, x1: 1090.0, y1: 760.0 };
        let px = |ms: f64, pct: f64| (area.x0 + ms / 25.0 * 1000.0, area.y1 - (pct - 10.0) / 25.0 * 700.0);
        // A deterministic scatter: a 5 x 5 grid, jittered.
        let anchors: Vec<Anchor> = ZOO
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let jitter = ((i * 7919) % 13) as f64 / 13.0;
                let ms = 11.0 + (i % 5) as f64 * 0.45 + jitter * 0.2;
                let pct = 22.0 + (i / 5) as f64 * 0.6 + jitter * 0.3;
                Anchor { at: px(ms, pct), radius: 6.0, size: label_size(name, LABEL_PX, i == 0) }
            })
            .collect();
        let spread = |f: fn(&(f64, f64)) -> f64| {
            let v: Vec<f64> = anchors.iter().map(|a| f(&a.at)).collect();
            v.iter().cloned().fold(f64::NEG_INFINITY, f64::max) - v.iter().cloned().fold(f64::INFINITY, f64::min)
        };
        assert!(spread(|p| p.0) <= 80.0 && spread(|p| p.1) <= 84.0);
        let labels = place_labels(&anchors, area, &[], &[], Some(0));
        let layout = Layout {
            area,
            points: anchors.iter().map(|a| (format!("{:?}", a.at), a.at, a.radius)).collect(),
            labels: labels.clone(),
            references: Vec::new(),
            legend: None,
            numbered: Vec::new(),
        };
        assert_disjoint_inside(&layout);
        let named = labels.iter().filter(|l| matches!(l, Label::Name(_))).count();
        assert!(named >= 20, "only {named} of 25 names placed: {labels:#?}");
        // Numbers run from 1 in anchor order.
        let numbers: Vec<usize> =
            labels.iter().filter_map(|l| if let Label::Number(n, _) = l { Some(*n) } else { None }).collect();
        assert_eq!(numbers, (1..=25 - named).collect::<Vec<_>>());
        // Leaders start at their own point and end on their own box.
        for (a, l) in anchors.iter().zip(&labels) {
            let p = l.placed();
            if let Some((from, to)) = p.leader {
                assert!((from.0 - a.at.0).hypot(from.1 - a.at.1) <= a.radius + 1.5);
                assert_eq!(p.rect.nearest(to), to, "on the box's edge");
            }
        }
        // The baseline, placed first, gets its name.
        assert!(matches!(labels[0], Label::Name(_)));
        // Deterministic.
        assert_eq!(labels, place_labels(&anchors, area, &[], &[], Some(0)));
    }

    /// Points in every corner and on every edge leave the legend no room inside the plot.
    #[test]
    fn the_legend_moves_to_a_panel_when_the_plot_is_full() {
        let spots = [(5.0, 14.0), (15.0, 14.0), (25.0, 14.0), (5.0, 31.0), (15.0, 31.0), (25.0, 31.0), (15.0, 22.0)];
        let results: Vec<VariantResult> = spots
            .iter()
            .enumerate()
            .map(|(k, &(ms, pct))| {
                let name = if k == 0 { "lynx".to_string() } else { format!("variant-{k}") };
                let right = (pct / 100.0 * 550.0) as usize;
                let correct: Vec<bool> = (0..550).map(|i| i < right).collect();
                VariantResult { latency: Some(sample_report(&name, ms)), ..variant(&name, &correct) }
            })
            .collect();
        let c = Comparison::new(results, "lynx", None).unwrap();
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("plot.svg");
        let layout = draw(&c, &p).unwrap();
        if let Ok(keep) = std::env::var("LYNX_ZOO_PLOT_PREVIEW_PANEL") {
            std::fs::copy(&p, keep).unwrap();
        }
        assert!(layout.legend.is_none(), "{:?}", layout.legend);
        assert!(layout.area.x1 <= f64::from(WIDTH - PANEL_WIDTH));
        assert_disjoint_inside(&layout);
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(svg.lines().any(|l| l == "95% interval of the accuracy"));
    }

    #[test]
    fn boxes_and_segments() {
        let b = BBox { x0: 0.0, y0: 0.0, x1: 10.0, y1: 10.0 };
        assert!(b.crossed_by(((-5.0, 5.0), (15.0, 5.0))));
        assert!(!b.crossed_by(((-5.0, 15.0), (15.0, 15.0))));
        assert!(!b.crossed_by(((-5.0, 5.0), (-1.0, 5.0))));
        assert!(b.crossed_by(((5.0, 5.0), (5.0, 6.0))));
        assert!(!b.intersects(&BBox { x0: 10.0, y0: 0.0, x1: 20.0, y1: 10.0 }), "touching is not overlapping");
        assert!(segments_cross(((0.0, 0.0), (10.0, 10.0)), ((0.0, 10.0), (10.0, 0.0))));
        assert!(!segments_cross(((0.0, 0.0), (10.0, 10.0)), ((20.0, 0.0), (30.0, 10.0))));
    }
}
