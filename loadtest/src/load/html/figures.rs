//! The report's plots, built from the sides' summaries: latency by percentile, latency
//! by rate (capacity), and rate and latency per second.

use serde_json::Value;

use super::{
    Side, f, list, plain,
    plot::{Plot, Series, Stroke, XScale},
    slo_text,
};

pub(super) fn percentile_plot(sides: &[Side<'_>], slo: Option<&Value>) -> String {
    let mut series: Vec<Series> = sides
        .iter()
        .map(|side| {
            let points = list(&side.summary["percentiles"])
                .map(|p| (f(&p["percentile"]), f(&p["latency_ms"])))
                .collect();
            Series::new(side.label.clone(), points)
        })
        .collect();
    if let Some(slo) = slo {
        let max = f(&slo["max_ms"]);
        series
            .push(Series::new(slo_text(slo), vec![(0.0, max), (100.0, max)]).stroke(Stroke::Bound));
    }
    Plot {
        id: "percentiles".to_owned(),
        title: "Latency by percentile".to_owned(),
        x_label: "percentile".to_owned(),
        y_label: "latency (ms)".to_owned(),
        x_scale: XScale::Percentile,
        series,
    }
    .render()
}

/// Capacity: the latency at the objective's percentile of every step, by requested rate.
pub(super) fn rate_plot(sides: &[Side<'_>], slo: &Value) -> String {
    let at = f(&slo["percentile"]);
    // A search may step back down (bisecting): the line goes by rate, not by time.
    let mut points: Vec<(f64, f64)> = sides
        .iter()
        .map(|s| (f(&s.summary["rate_requested"]), latency_at(s.summary, at)))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let last = points.iter().map(|p| p.0).fold(0.0, f64::max);
    let max = f(&slo["max_ms"]);
    Plot {
        id: "capacity".to_owned(),
        title: "Latency by rate".to_owned(),
        x_label: "requested rate (/s)".to_owned(),
        y_label: "latency (ms)".to_owned(),
        x_scale: XScale::Linear,
        series: vec![
            Series::new(format!("p{}", plain(&slo["percentile"])), points),
            Series::new(slo_text(slo), vec![(0.0, max), (last, max)]).stroke(Stroke::Bound),
        ],
    }
    .render()
}

/// The latency at percentile `p`: the first point of the distribution at or past it.
fn latency_at(summary: &Value, p: f64) -> f64 {
    list(&summary["percentiles"])
        .find(|point| f(&point["percentile"]) >= p)
        .map_or(f64::NAN, |point| f(&point["latency_ms"]))
}

/// Achieved rate (and errors) per second, and p50/p99 per second. A capacity search's
/// steps are laid end to end, so the rate climbs step by step.
pub(super) fn time_plots(sides: &[Side<'_>], end_to_end: bool) -> String {
    let mut lines: Vec<(String, Vec<&Value>, Vec<f64>)> = Vec::new();
    if end_to_end {
        let mut offset = 0.0;
        let (mut points, mut offsets) = (Vec::new(), Vec::new());
        for side in sides {
            let series: Vec<&Value> = list(&side.summary["timeseries"]).collect();
            let end = series
                .last()
                .map_or(f(&side.summary["duration_s"]), |p| f(&p["t_s"]));
            offsets.extend(std::iter::repeat_n(offset, series.len()));
            points.extend(series);
            offset += if end.is_finite() { end } else { 0.0 };
        }
        lines.push((String::new(), points, offsets));
    } else {
        for side in sides {
            let points: Vec<&Value> = list(&side.summary["timeseries"]).collect();
            let label = if sides.len() > 1 {
                format!("{} ", side.label)
            } else {
                String::new()
            };
            let offsets = vec![0.0; points.len()];
            lines.push((label, points, offsets));
        }
    }
    // With several sides, each keeps its colour in every plot and its lesser measurement
    // (errors beside the rate, p50 beside p99) is dotted.
    let several = lines.len() > 1;
    let series = |label: &str, key: &str, lesser: bool| -> Vec<Series> {
        lines
            .iter()
            .enumerate()
            .map(|(i, (prefix, points, offsets))| {
                let xy = points
                    .iter()
                    .zip(offsets)
                    .map(|(p, off)| (f(&p["t_s"]) + off, f(&p[key])))
                    .collect();
                let line = Series::new(format!("{prefix}{label}"), xy);
                match (several, lesser) {
                    (false, _) => line,
                    (true, false) => line.colour(i),
                    (true, true) => line.colour(i).stroke(Stroke::Dotted),
                }
            })
            .collect()
    };
    let rate = Plot {
        id: "rate".to_owned(),
        title: "Achieved rate per second".to_owned(),
        x_label: "time (s)".to_owned(),
        y_label: "per second".to_owned(),
        x_scale: XScale::Linear,
        series: [
            series("rate", "rate", false),
            series("errors", "errors", true),
        ]
        .concat(),
    };
    let latency = Plot {
        id: "latency".to_owned(),
        title: "Latency per second".to_owned(),
        x_label: "time (s)".to_owned(),
        y_label: "latency (ms)".to_owned(),
        x_scale: XScale::Linear,
        series: [
            series("p50", "p50_ms", true),
            series("p99", "p99_ms", false),
        ]
        .concat(),
    };
    format!(
        "<h3>Rate</h3>{}<h3>Latency</h3>{}",
        rate.render(),
        latency.render()
    )
}
