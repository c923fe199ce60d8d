//! Line plots as inline SVG, drawn when the report is rendered: axes, ticks, grid,
//! one polyline per series. No script runs in the report, so what a browser shows is
//! exactly what this module wrote (and what the tests read back from the DOM).

use std::fmt::Write;

/// Size of every plot, in SVG user units (the page scales it to its width).
const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 300.0;
/// Room around the plot area for tick labels (left, bottom) and axis titles.
const LEFT: f64 = 70.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 48.0;
/// About this many ticks on a linear axis; the step is rounded to 1, 2 or 5 × 10^k.
const LINEAR_TICKS: f64 = 6.0;
/// Share of a step a linear axis' top may fall short of the data (see [`linear_ticks`]).
const AXIS_SLACK: f64 = 0.01;
/// The percentile axis stops at 99.9999 % (six nines): an HDR distribution ends at
/// 100 %, which lies at infinity on this scale.
const MAX_NINES: f64 = 6.0;
/// The percentile axis shows at least 0 %, 90 % and 99 %.
const MIN_NINES: f64 = 2.0;
/// Colour of bounds (objectives): apart from every measurement.
const BOUND_COLOUR: &str = "#555555";
/// Colours of the series, in order; picked to stay apart for common colour blindness.
const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// How data on the x axis maps to a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XScale {
    /// Linear from 0.
    Linear,
    /// Percentiles as HdrHistogram plots them: position log10(100 / (100 - p)), so
    /// 90 %, 99 %, 99.9 % ... are equally spaced and the tail gets the room.
    Percentile,
}

/// One line of a plot.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// Its name in the legend and in the polyline's `data-series`.
    pub label: String,
    /// Its points (x, y) in data units. A point without a y (NaN: e.g. a second in
    /// which no call was answered has no latency) breaks the line there.
    pub points: Vec<(f64, f64)>,
    /// How its line is drawn.
    pub stroke: Stroke,
    /// Its colour, an index into the palette; by default its place in the plot.
    pub colour: Option<usize>,
}

/// How a line is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stroke {
    /// A measurement.
    Solid,
    /// A second measurement in the colour of the first (p50 beside p99, errors beside
    /// the rate of the same side).
    Dotted,
    /// A bound (an objective), dashed in grey.
    Bound,
}

impl Series {
    /// A solid series.
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            label: label.into(),
            points: points.into_iter().filter(|(x, _)| x.is_finite()).collect(),
            stroke: Stroke::Solid,
            colour: None,
        }
    }

    /// Its unbroken runs of points.
    fn segments(&self) -> impl Iterator<Item = &[(f64, f64)]> {
        self.points
            .split(|p| !p.1.is_finite())
            .filter(|run| !run.is_empty())
    }

    /// The same series, drawn as `stroke`.
    pub fn stroke(mut self, stroke: Stroke) -> Self {
        self.stroke = stroke;
        self
    }

    /// The same series, in palette colour `index`.
    pub fn colour(mut self, index: usize) -> Self {
        self.colour = Some(index);
        self
    }

    /// Its colour when it is the `place`-th series of its plot.
    fn colour_at(&self, place: usize) -> &'static str {
        match self.stroke {
            Stroke::Bound => BOUND_COLOUR,
            _ => PALETTE[self.colour.unwrap_or(place) % PALETTE.len()],
        }
    }
}

/// A line plot.
#[derive(Debug, Clone)]
pub(crate) struct Plot {
    /// The SVG element's id, and its class `plot-<id>`.
    pub id: String,
    /// What it shows, as the SVG's accessible name.
    pub title: String,
    /// Titles of the axes.
    pub x_label: String,
    pub y_label: String,
    /// The x scale.
    pub x_scale: XScale,
    /// Its lines.
    pub series: Vec<Series>,
}

/// Where the data sits in the plot area.
struct Frame {
    x_ticks: Vec<(f64, String)>,
    x_max: f64,
    y_ticks: Vec<(f64, String)>,
    y_max: f64,
    x_scale: XScale,
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        let x = match self.x_scale {
            XScale::Linear => x,
            XScale::Percentile => nines(x),
        };
        LEFT + (x / self.x_max).clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        HEIGHT - BOTTOM - (y / self.y_max).clamp(0.0, 1.0) * (HEIGHT - TOP - BOTTOM)
    }
}

impl Plot {
    /// The plot as an `<svg>` element followed by its legend.
    pub fn render(&self) -> String {
        let frame = self.frame();
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<figure class="plot"><svg id="{id}" class="plot-{id}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{title}">"#,
            id = super::escape(&self.id),
            title = super::escape(&self.title),
        );
        self.axes(&frame, &mut out);
        for (i, s) in self.series.iter().enumerate() {
            series(&frame, s, s.colour_at(i), &mut out);
        }
        if self.series.iter().all(|s| s.segments().next().is_none()) {
            let _ = write!(
                out,
                r#"<text class="no-data" x="{}" y="{}" text-anchor="middle">no data</text>"#,
                (LEFT + WIDTH - RIGHT) / 2.0,
                (TOP + HEIGHT - BOTTOM) / 2.0
            );
        }
        out.push_str("</svg><figcaption class=\"legend\">");
        for (i, s) in self.series.iter().enumerate() {
            let style = match s.stroke {
                Stroke::Solid => "",
                Stroke::Dotted => " dotted",
                Stroke::Bound => " dashed",
            };
            let _ = write!(
                out,
                r#"<span class="key{style}"><span class="swatch" style="border-color:{}"></span>{}</span>"#,
                s.colour_at(i),
                super::escape(&s.label)
            );
        }
        out.push_str("</figcaption></figure>");
        out
    }

    fn frame(&self) -> Frame {
        let points = || self.series.iter().flat_map(Series::segments).flatten();
        let y_top = points().map(|p| p.1).fold(0.0, f64::max);
        let (y_max, y_ticks) = linear_ticks(y_top);
        let (x_max, x_ticks) = match self.x_scale {
            XScale::Linear => linear_ticks(points().map(|p| p.0).fold(0.0, f64::max)),
            XScale::Percentile => {
                // 100 % lies at infinity: it is drawn at the axis' end, which the
                // deepest percentile below it sets.
                let widest = points()
                    .filter(|p| p.0 < 100.0)
                    .map(|p| nines(p.0))
                    .fold(MIN_NINES, f64::max);
                let n = widest.ceil();
                let ticks = (0..=n as u32).map(|k| (k as f64, nines_label(k))).collect();
                (n, ticks)
            }
        };
        Frame {
            x_ticks,
            x_max,
            y_ticks,
            y_max,
            x_scale: self.x_scale,
        }
    }

    fn axes(&self, f: &Frame, out: &mut String) {
        let (left, right, top, bottom) = (LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM);
        out.push_str(r#"<g class="grid">"#);
        for (y, _) in &f.y_ticks {
            let py = f.py(*y);
            let _ = write!(
                out,
                r#"<line x1="{left}" y1="{py:.1}" x2="{right}" y2="{py:.1}"/>"#
            );
        }
        for (x, _) in &f.x_ticks {
            let px = LEFT + x / f.x_max * (WIDTH - LEFT - RIGHT);
            let _ = write!(
                out,
                r#"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{bottom}"/>"#
            );
        }
        out.push_str(r#"</g><g class="axis x-axis">"#);
        let _ = write!(
            out,
            r#"<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/>"#
        );
        for (x, label) in &f.x_ticks {
            let px = LEFT + x / f.x_max * (WIDTH - LEFT - RIGHT);
            let _ = write!(
                out,
                r#"<line x1="{px:.1}" y1="{bottom}" x2="{px:.1}" y2="{}"/><text class="tick" x="{px:.1}" y="{}" text-anchor="middle">{label}</text>"#,
                bottom + 5.0,
                bottom + 18.0
            );
        }
        let _ = write!(
            out,
            r#"<text class="label" x="{}" y="{}" text-anchor="middle">{}</text>"#,
            (left + right) / 2.0,
            HEIGHT - 8.0,
            super::escape(&self.x_label)
        );
        out.push_str(r#"</g><g class="axis y-axis">"#);
        let _ = write!(
            out,
            r#"<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}"/>"#
        );
        for (y, label) in &f.y_ticks {
            let py = f.py(*y);
            let _ = write!(
                out,
                r#"<line x1="{}" y1="{py:.1}" x2="{left}" y2="{py:.1}"/><text class="tick" x="{}" y="{:.1}" text-anchor="end">{label}</text>"#,
                left - 5.0,
                left - 8.0,
                py + 4.0
            );
        }
        let (lx, ly) = (16.0, (top + bottom) / 2.0);
        let _ = write!(
            out,
            r#"<text class="label" x="{lx}" y="{ly}" text-anchor="middle" transform="rotate(-90 {lx} {ly})">{}</text></g>"#,
            super::escape(&self.y_label)
        );
    }
}

/// One series: a polyline per unbroken run of points (and a dot for a run of one, which
/// a polyline would not show).
fn series(f: &Frame, s: &Series, colour: &str, out: &mut String) {
    let dash = match s.stroke {
        Stroke::Solid => "",
        Stroke::Dotted => r#" stroke-dasharray="2 3""#,
        Stroke::Bound => r#" stroke-dasharray="6 4""#,
    };
    for run in s.segments() {
        let points: Vec<String> = run
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", f.px(x), f.py(y)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline class="series" data-series="{}" data-points="{}" points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
            super::escape(&s.label),
            points.len(),
            points.join(" ")
        );
        if let [only] = run {
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                f.px(only.0),
                f.py(only.1)
            );
        }
    }
}

/// Position of percentile `p` on the percentile axis: the number of nines (90 % → 1,
/// 99 % → 2), capped at [`MAX_NINES`].
fn nines(p: f64) -> f64 {
    let rest = (100.0 - p.clamp(0.0, 100.0)).max(100.0 * 10f64.powf(-MAX_NINES));
    (100.0 / rest).log10().min(MAX_NINES)
}

/// The percentile with `k` nines: "0%", "90%", "99%", "99.9%", ...
fn nines_label(k: u32) -> String {
    match k {
        0 => "0%".to_owned(),
        1 => "90%".to_owned(),
        _ => format!(
            "99{}{}%",
            if k > 2 { "." } else { "" },
            "9".repeat(k as usize - 2)
        ),
    }
}

/// An axis from 0 covering `top`: its end and its ticks, at a step of 1, 2 or 5 × 10^k.
fn linear_ticks(top: f64) -> (f64, Vec<(f64, String)>) {
    let top = if top.is_finite() && top > 0.0 {
        top
    } else {
        1.0
    };
    let rough = top / LINEAR_TICKS;
    let magnitude = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * magnitude);
    // A top a hair past a tick (a run's last second ends at 4.002 s) ends the axis at that
    // tick rather than a whole step later; the point is drawn on the edge.
    let n = (top / step - AXIS_SLACK).ceil().max(1.0) as u32;
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    let ticks = (0..=n)
        .map(|i| {
            let v = f64::from(i) * step;
            (v, format!("{v:.decimals$}"))
        })
        .collect();
    (f64::from(n) * step, ticks)
}

#[cfg(test)]
mod tests;
