//! The report's tables: parameters, requests, latency, errors by kind, statuses.

use std::fmt::Write;

use serde_json::Value;

use super::{Side, escape, text};

/// One row per parameter and a column per side: a row per side would not fit the page.
pub(super) fn parameters(sides: &[Side<'_>]) -> String {
    let rows = [
        ("protocol", "protocol"),
        ("target", "target"),
        ("mode", "mode"),
        ("rate_requested", "rate requested (/s)"),
        ("connections", "connections"),
        ("concurrency", "calls in flight per connection"),
        ("duration_s", "duration (s)"),
        ("warmup_s", "warm-up (s)"),
        ("elapsed_s", "elapsed (s)"),
    ];
    let mut head = vec![""];
    head.extend(sides.iter().map(|s| s.label.as_str()));
    let rows = rows
        .iter()
        .map(|(key, name)| {
            let mut row = vec![escape(name)];
            row.extend(sides.iter().map(|s| text(&s.summary[*key])));
            row
        })
        .collect();
    table(&head, rows)
}

pub(super) fn requests(sides: &[Side<'_>]) -> String {
    let head = [
        "",
        "sent",
        "completed",
        "ok",
        "errors",
        "achieved rate (/s)",
    ];
    table(
        &head,
        rows(sides, |s| {
            let r = &s["requests"];
            vec![
                text(&r["sent"]),
                text(&r["completed"]),
                text(&r["ok"]),
                text(&r["errors"]),
                text(&s["achieved_rate"]),
            ]
        }),
    )
}

pub(super) fn latency(sides: &[Side<'_>]) -> String {
    let keys = ["min", "mean", "stddev", "p50", "p90", "p99", "p999", "max"];
    let mut head = vec![""];
    head.extend(["min", "mean", "stddev", "p50", "p90", "p99", "p99.9", "max"]);
    let mut out = table(
        &head,
        rows(sides, |s| {
            keys.iter().map(|k| text(&s["latency_ms"][k])).collect()
        }),
    );
    out.push_str(
        r#"<p class="note">Milliseconds. Open loop: from each call's intended send time.</p>"#,
    );
    out
}

pub(super) fn errors(sides: &[Side<'_>]) -> String {
    keyed_table(
        sides,
        "errors",
        &["connect", "timeout", "protocol", "status"],
    )
}

pub(super) fn statuses(sides: &[Side<'_>]) -> String {
    keyed_table(sides, "statuses", &[])
}

/// A table of the counts in object `field` of every side: the `known` keys first, then
/// every other key any side has, in order.
fn keyed_table(sides: &[Side<'_>], field: &str, known: &[&str]) -> String {
    let mut keys: Vec<String> = known.iter().map(|k| (*k).to_owned()).collect();
    for side in sides {
        if let Some(map) = side.summary[field].as_object() {
            for k in map.keys() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
    }
    if keys.is_empty() {
        return r#"<p class="note">none</p>"#.to_owned();
    }
    let mut head = vec![""];
    head.extend(keys.iter().map(String::as_str));
    table(
        &head,
        rows(sides, |s| keys.iter().map(|k| text(&s[field][k])).collect()),
    )
}

/// One row per side: its label, then `cells(summary)`.
fn rows(sides: &[Side<'_>], cells: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    sides
        .iter()
        .map(|side| {
            let mut row = vec![escape(&side.label)];
            row.extend(cells(side.summary));
            row
        })
        .collect()
}

/// A table; `head` is plain text, the cells are HTML.
pub(super) fn table(head: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut out = String::from("<table><thead><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let tag = if i == 0 { "th" } else { "td" };
            let _ = write!(out, "<{tag}>{cell}</{tag}>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}
