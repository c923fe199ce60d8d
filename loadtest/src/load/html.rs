//! `--html FILE`: the report as one self-contained HTML page, rendered from the JSON
//! objects `--json` prints (`corridor-load/summary/v1`, `compare/v1`, `capacity/v1`).
//!
//! The page needs no network and runs no script: the style sheet is inline and the
//! plots are SVG drawn here (see [`plot`]). Rendering from the JSON, not from the run's
//! histograms, means the page shows exactly what the JSON says, and a JSON summary kept
//! from earlier (e.g. the chart Job's log) can be rendered again.
//!
//! Every report is a list of *sides*, each a summary with a label: one for a run, direct
//! and gateway for a comparison, one per step for a capacity search. Tables have a row
//! per side and plots a series per side.

mod figures;
mod plot;
mod tables;

use std::{fmt::Write, path::Path};

use serde_json::Value;

use self::{
    figures::{percentile_plot, rate_plot, time_plots},
    tables::{errors, latency, parameters, requests, statuses, table},
};

/// Schema ids of the objects a report is rendered from.
pub const SUMMARY_SCHEMA: &str = "corridor-load/summary/v1";
/// See [`SUMMARY_SCHEMA`].
pub const COMPARE_SCHEMA: &str = "corridor-load/compare/v1";
/// See [`SUMMARY_SCHEMA`].
pub const CAPACITY_SCHEMA: &str = "corridor-load/capacity/v1";

/// The style sheet, inlined into every page.
const STYLE: &str = include_str!("html/style.css");
/// Shown where the JSON has no value.
const MISSING: &str = "–";

/// Why no report was written.
#[derive(Debug, thiserror::Error)]
pub enum HtmlError {
    /// The object is not one of the report schemas.
    #[error(
        "cannot render {found:?} as HTML: want a {SUMMARY_SCHEMA}, {COMPARE_SCHEMA} or {CAPACITY_SCHEMA} object"
    )]
    Schema {
        /// The `schema` field found (empty when absent).
        found: String,
    },
    /// The file could not be written.
    #[error("cannot write the HTML report to {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// One summary in a report, and what to call it.
struct Side<'a> {
    label: String,
    summary: &'a Value,
}

/// Renders `report` (a summary, compare or capacity object) as an HTML page.
pub fn render(report: &Value) -> Result<String, HtmlError> {
    let schema = report["schema"].as_str().unwrap_or_default();
    let (sides, intro) = match schema {
        SUMMARY_SCHEMA => (
            vec![Side {
                label: "run".to_owned(),
                summary: report,
            }],
            summary_intro(report),
        ),
        COMPARE_SCHEMA => (
            vec![
                Side {
                    label: "direct".to_owned(),
                    summary: &report["direct"],
                },
                Side {
                    label: "gateway".to_owned(),
                    summary: &report["gateway"],
                },
            ],
            compare_intro(report),
        ),
        CAPACITY_SCHEMA => (capacity_sides(report), capacity_intro(report)),
        _ => {
            return Err(HtmlError::Schema {
                found: schema.to_owned(),
            });
        }
    };
    // A comparison is about the gateway: its side is the last.
    let last = sides.last().map_or(&Value::Null, |s| s.summary);
    let mut title = format!(
        "corridor-load {} → {}",
        plain(&last["protocol"]),
        plain(&last["target"])
    );
    if schema == COMPARE_SCHEMA {
        let _ = write!(title, " vs direct {}", plain(&report["direct"]["target"]));
    }
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t}</title><style>{STYLE}</style></head><body><main><h1>{t}</h1>",
        t = escape(&title)
    );
    page.push_str(&intro);
    for side in &sides {
        if let Some(why) = side.summary["first_error"].as_str() {
            let _ = write!(
                page,
                r#"<p class="first-error">{}: first error: {}</p>"#,
                escape(&side.label),
                escape(why)
            );
        }
    }
    section(&mut page, "Parameters", &parameters(&sides));
    section(&mut page, "Requests", &requests(&sides));
    section(&mut page, "Errors by kind", &errors(&sides));
    section(&mut page, "Statuses", &statuses(&sides));
    section(&mut page, "Latency", &latency(&sides));
    let slo = (schema == CAPACITY_SCHEMA).then(|| &report["slo"]);
    section(
        &mut page,
        "Latency by percentile",
        &percentile_plot(&sides, slo),
    );
    if let Some(slo) = slo {
        section(&mut page, "Latency by rate", &rate_plot(&sides, slo));
    }
    section(
        &mut page,
        "Over time",
        &time_plots(&sides, schema == CAPACITY_SCHEMA),
    );
    // The data itself, for whoever wants the numbers back out of the page. `<` only
    // occurs inside JSON strings, where \u003c means the same, so no `</script>` appears.
    let data = report.to_string().replace('<', "\\u003c");
    let _ = write!(
        page,
        r#"<footer>{} · rendered by corridor-load {}</footer><script type="application/json" id="report-data">{data}</script></main></body></html>"#,
        escape(schema),
        env!("CARGO_PKG_VERSION")
    );
    Ok(page)
}

/// Renders `report` into the file at `path`.
pub fn write(path: &Path, report: &Value) -> Result<(), HtmlError> {
    let page = render(report)?;
    std::fs::write(path, page).map_err(|source| HtmlError::Write {
        path: path.display().to_string(),
        source,
    })
}

fn capacity_sides(report: &Value) -> Vec<Side<'_>> {
    let steps = report["steps"].as_array().map_or(&[][..], Vec::as_slice);
    steps
        .iter()
        .map(|step| Side {
            label: match step["rate_requested"].as_f64() {
                Some(rate) => format!("{} /s", number(rate)),
                None => "closed loop".to_owned(),
            },
            summary: step,
        })
        .collect()
}

/// "open loop at 1000/s for 10 s: 996.2/s achieved, p50 1.907 ms, p99 3.023 ms, 7 errors."
fn summary_intro(s: &Value) -> String {
    let how = match s["rate_requested"].as_f64() {
        Some(rate) => format!("at {} /s", number(rate)),
        None => format!(
            "over {} connections × {}",
            text(&s["connections"]),
            text(&s["concurrency"])
        ),
    };
    let latency = &s["latency_ms"];
    format!(
        r#"<p class="intro">{} loop {how} for {} s: <strong>{} /s</strong> achieved, p50 <strong>{} ms</strong>, p99 <strong>{} ms</strong>, <strong>{}</strong> errors.</p>"#,
        text(&s["mode"]),
        text(&s["duration_s"]),
        text(&s["achieved_rate"]),
        text(&latency["p50"]),
        text(&latency["p99"]),
        text(&s["requests"]["errors"]),
    )
}

fn compare_intro(report: &Value) -> String {
    let ratios = &report["ratios"];
    let cell = |k: &str| {
        ratios[k]
            .as_f64()
            .map_or(MISSING.to_owned(), |r| format!("{r:.3}"))
    };
    format!(
        r#"<p class="intro">Direct and through the gateway, {} alternating rounds. Gateway ÷ direct:</p>{}"#,
        text(&report["rounds"]),
        table(
            &["", "rate", "p50", "p99"],
            vec![vec![
                "ratio".to_owned(),
                cell("rate"),
                cell("p50"),
                cell("p99")
            ]]
        )
    )
}

fn capacity_intro(report: &Value) -> String {
    let answer = match report["max_rate_meeting_slo"].as_f64() {
        Some(rate) => format!("<strong>{} /s</strong>", number(rate)),
        None => "<strong>none</strong> of the steps".to_owned(),
    };
    format!(
        r#"<p class="intro">Objective: {}. Highest rate meeting it: {answer}.</p>"#,
        escape(&slo_text(&report["slo"]))
    )
}

/// "p99 < 5 ms".
fn slo_text(slo: &Value) -> String {
    format!(
        "p{} < {} ms",
        plain(&slo["percentile"]),
        plain(&slo["max_ms"])
    )
}

// === building blocks ===

fn section(page: &mut String, title: &str, body: &str) {
    let _ = write!(page, "<section><h2>{}</h2>{body}</section>", escape(title));
}

/// The items of a JSON array (none when it is not one).
fn list(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// A JSON number as f64; NaN when it is missing, so the plot leaves the point out.
fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// A JSON value as escaped text for a cell.
fn text(v: &Value) -> String {
    escape(&plain(v))
}

/// A JSON value as text: strings as they are, numbers as [`number`] writes them.
fn plain(v: &Value) -> String {
    match v {
        Value::Null => MISSING.to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_u64() {
            Some(i) => i.to_string(),
            None => n.as_f64().map_or_else(|| n.to_string(), number),
        },
        other => other.to_string(),
    }
}

/// A number with at most three decimals and no trailing zeros: 12, 0.25, 4.951.
fn number(x: f64) -> String {
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// `s` made safe as HTML text and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
