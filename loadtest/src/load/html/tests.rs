use serde_json::{Value, json};

use super::*;

/// A summary as `--json` prints it (open loop, 1000/s, a few errors).
const SUMMARY: &str = include_str!("testdata/summary.json");

fn summary() -> Value {
    serde_json::from_str(SUMMARY).unwrap()
}

/// The polylines of the plot with SVG id `id`: (data-series, data-points).
fn polylines(page: &str, id: &str) -> Vec<(String, usize)> {
    let start = page
        .find(&format!(r#"<svg id="{id}""#))
        .unwrap_or_else(|| panic!("no plot {id}"));
    let svg = &page[start..start + page[start..].find("</svg>").unwrap()];
    svg.split("<polyline")
        .skip(1)
        .map(|p| {
            let attr = |name: &str| {
                let at = p.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
                p[at..at + p[at..].find('"').unwrap()].to_owned()
            };
            let n = attr("data-points").parse().unwrap();
            // The count it claims is the count it draws.
            assert_eq!(attr("points").split(' ').count(), n, "{p}");
            (attr("data-series"), n)
        })
        .collect()
}

/// Attribute `name` of the first polyline of `series` in the plot with SVG id `id`.
fn line_attr(page: &str, id: &str, series: &str, name: &str) -> String {
    let start = page.find(&format!(r#"<svg id="{id}""#)).unwrap();
    let svg = &page[start..start + page[start..].find("</svg>").unwrap()];
    let at = svg
        .find(&format!(r#"data-series="{series}""#))
        .unwrap_or_else(|| panic!("no {series} in {id}"));
    let line = &svg[at..at + svg[at..].find("/>").unwrap()];
    let value = line
        .find(&format!(" {name}=\""))
        .map(|i| &line[i + name.len() + 3..])
        .unwrap_or_default();
    value[..value.find('"').unwrap_or(0)].to_owned()
}

#[test]
fn a_summary_shows_its_numbers_and_plots_its_data() {
    let page = render(&summary()).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<title>corridor-load http → 127.0.0.1:8080</title>"));
    // Parameters, counts, errors by kind, statuses, latency.
    for cell in [
        "<td>open</td>",
        "<td>1000</td>",
        "<td>9982</td>",
        "<td>996.2</td>",
        "<th>503</th>",
        "<th>connect</th>",
        "<td>3.023</td>",
        "<td>12.415</td>",
    ] {
        assert!(page.contains(cell), "{cell} missing");
    }
    assert!(page.contains("first error: cannot connect to 127.0.0.1:8080"));
    let v = summary();
    let n = |k: &str| v[k].as_array().unwrap().len();
    assert_eq!(
        polylines(&page, "percentiles"),
        [("run".to_owned(), n("percentiles"))]
    );
    assert_eq!(
        polylines(&page, "rate"),
        [
            ("rate".to_owned(), n("timeseries")),
            ("errors".to_owned(), n("timeseries"))
        ]
    );
    assert_eq!(
        polylines(&page, "latency"),
        [
            ("p50".to_owned(), n("timeseries")),
            ("p99".to_owned(), n("timeseries"))
        ]
    );
    // The percentile axis reaches the distribution's last nines (99.998 % → 99.999 %).
    assert!(page.contains(">99.999%</text>") && !page.contains(">99.9999%</text>"));
    assert!(page.contains("open loop at 1000 /s for 10 s: <strong>996.2 /s</strong> achieved"));
    // Self-contained: nothing is fetched.
    for fetch in ["<link", "src=", "href=", "@import", "url("] {
        assert!(!page.contains(fetch), "{fetch} in the page");
    }
}

#[test]
fn the_data_travels_with_the_page_and_cannot_break_out_of_it() {
    let mut v = summary();
    v["first_error"] = json!("</script><script>alert(1)</script>");
    v["target"] = json!("<b>host</b>:1");
    let page = render(&v).unwrap();
    assert!(!page.contains("<script>alert"));
    assert!(!page.contains("<b>host"));
    assert!(page.contains("&lt;b&gt;host&lt;/b&gt;:1"));
    let start = page
        .find(r#"<script type="application/json" id="report-data">"#)
        .unwrap();
    let data = &page[start..];
    let data = &data[data.find('>').unwrap() + 1..data.find("</script>").unwrap()];
    let back: Value = serde_json::from_str(data).unwrap();
    assert_eq!(back, v);
}

#[test]
fn a_comparison_shows_both_sides_and_the_ratios() {
    let direct = summary();
    let mut gateway = summary();
    gateway["latency_ms"]["p99"] = json!(4.5);
    gateway["timeseries"].as_array_mut().unwrap().truncate(4);
    let report = json!({
        "schema": COMPARE_SCHEMA, "rounds": 3, "direct": direct, "gateway": gateway,
        "ratios": {"rate": 0.998, "p50": 1.1, "p99": 1.4886},
    });
    let page = render(&report).unwrap();
    assert!(page.contains("<h1>corridor-load http → 127.0.0.1:8080 vs direct 127.0.0.1:8080</h1>"));
    assert!(page.contains("3 alternating rounds"));
    assert!(page.contains("<td>1.489</td>"));
    assert!(page.contains("<th>direct</th>") && page.contains("<th>gateway</th>"));
    assert!(page.contains("<td>4.5</td>"));
    let percentiles = polylines(&page, "percentiles");
    assert_eq!(percentiles.len(), 2);
    assert_eq!(percentiles[1].0, "gateway");
    // Each side keeps its colour across plots; its p50 is dotted beside its solid p99.
    let gateway = line_attr(&page, "percentiles", "gateway", "stroke");
    assert_ne!(gateway, line_attr(&page, "percentiles", "direct", "stroke"));
    for (id, series) in [
        ("latency", "gateway p50"),
        ("latency", "gateway p99"),
        ("rate", "gateway rate"),
        ("rate", "gateway errors"),
    ] {
        assert_eq!(line_attr(&page, id, series, "stroke"), gateway, "{series}");
    }
    assert_eq!(
        line_attr(&page, "latency", "gateway p50", "stroke-dasharray"),
        "2 3"
    );
    assert_eq!(
        line_attr(&page, "latency", "gateway p99", "stroke-dasharray"),
        ""
    );
    let latency = polylines(&page, "latency");
    assert_eq!(
        latency
            .iter()
            .map(|l| (l.0.as_str(), l.1))
            .collect::<Vec<_>>(),
        [
            ("direct p50", 10),
            ("gateway p50", 4),
            ("direct p99", 10),
            ("gateway p99", 4)
        ]
    );
}

#[test]
fn a_capacity_search_plots_its_steps_against_the_objective() {
    let step = |rate: u64, p99: f64| {
        let mut s = summary();
        s["rate_requested"] = json!(rate);
        for p in s["percentiles"].as_array_mut().unwrap() {
            if p["percentile"].as_f64().unwrap() >= 99.0 {
                p["latency_ms"] = json!(p99);
            }
        }
        s
    };
    let report = json!({
        "schema": CAPACITY_SCHEMA, "slo": {"percentile": 99.0, "max_ms": 5.0},
        "steps": [step(1000, 2.0), step(2000, 4.0), step(4000, 30.0)],
        "max_rate_meeting_slo": 2000,
    });
    let page = render(&report).unwrap();
    assert!(
        page.contains(
            "Objective: p99 &lt; 5 ms. Highest rate meeting it: <strong>2000 /s</strong>"
        )
    );
    assert!(page.contains("<th>4000 /s</th>"));
    // One line per step, plus the objective.
    let percentiles = polylines(&page, "percentiles");
    assert_eq!(percentiles.len(), 4);
    assert_eq!(percentiles[3], ("p99 &lt; 5 ms".to_owned(), 2));
    assert_eq!(
        polylines(&page, "capacity"),
        [("p99".to_owned(), 3), ("p99 &lt; 5 ms".to_owned(), 2)]
    );
    // The steps laid end to end: one line of 3 × 10 seconds.
    assert_eq!(polylines(&page, "rate")[0], ("rate".to_owned(), 30));
    let none = json!({"schema": CAPACITY_SCHEMA, "slo": {"percentile": 99.0, "max_ms": 1.0},
                      "steps": [], "max_rate_meeting_slo": null});
    let page = render(&none).unwrap();
    assert!(page.contains("<strong>none</strong> of the steps"));
    assert!(page.contains("no data"));
}

#[test]
fn a_second_without_answers_breaks_the_latency_lines() {
    let mut v = summary();
    v["timeseries"][4]["p50_ms"] = Value::Null;
    v["timeseries"][4]["p99_ms"] = Value::Null;
    v["timeseries"][4]["rate"] = json!(0.0);
    let page = render(&v).unwrap();
    assert_eq!(
        polylines(&page, "latency"),
        [
            ("p50".to_owned(), 4),
            ("p50".to_owned(), 5),
            ("p99".to_owned(), 4),
            ("p99".to_owned(), 5)
        ]
    );
    // The rate has a value every second: zero is one.
    assert_eq!(polylines(&page, "rate")[0], ("rate".to_owned(), 10));
}

#[test]
fn other_objects_are_refused_with_what_they_are() {
    let err = render(&json!({"protocol": "http"})).unwrap_err();
    assert!(
        matches!(&err, HtmlError::Schema { found } if found.is_empty()),
        "{err}"
    );
    let err = render(&json!({"schema": "corridor-load/summary/v2"})).unwrap_err();
    assert!(
        err.to_string().contains("\"corridor-load/summary/v2\""),
        "{err}"
    );
}

#[test]
fn numbers_read_as_numbers() {
    assert_eq!(number(12.0), "12");
    assert_eq!(number(0.25), "0.25");
    assert_eq!(number(4.95149), "4.951");
    assert_eq!(number(-0.0001), "0");
    assert_eq!(text(&json!(null)), MISSING);
    assert_eq!(text(&json!(7)), "7");
}
