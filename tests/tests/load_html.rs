//! The HTML report of `corridor-load` (`--html FILE`) opened in a real browser: headless
//! Chromium (Debian's `chromium`, installed by `tests/run`) loads the page from a file,
//! and the tests read back the DOM it built (the SVG plots with one point per data
//! point, the numbers in the text) and a screenshot of what it drew (the plot lines in
//! their colours).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use corridor_tests::bin::{Process, binary};
use serde_json::Value;

/// A summary as `corridor-load --json` prints it (open loop at 1000/s, a few errors).
const FIXTURE: &str = include_str!("../../loadtest/src/load/html/testdata/summary.json");
/// Longest the short real run may take: its 3 s, a start, and the drain at the end.
const RUN_PATIENCE: Duration = Duration::from_secs(30);
/// Longest one headless Chromium run may take (a cold start on a busy machine included).
const CHROMIUM_PATIENCE: Duration = Duration::from_secs(60);
/// Browser window for screenshots: wide enough for the page, tall enough for every plot.
const WINDOW: (u32, u32) = (1000, 3000);
/// Colours of the first two series of every plot (the report's palette).
const BLUE: [u8; 3] = [0x1f, 0x77, 0xb4];
const RED: [u8; 3] = [0xd6, 0x27, 0x28];

/// The browser: `$CHROMIUM`, else `chromium` on the PATH.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "chromium not found: run `tests/run` (it installs Debian's chromium) or set CHROMIUM"
        )
    })
}

/// Runs headless Chromium on the page at `page` with `action` (`--dump-dom` or
/// `--screenshot=...`) and returns what it printed on stdout.
async fn chromium_run(page: &Path, action: &str) -> String {
    let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut cmd = tokio::process::Command::new(chromium());
    cmd.args([
        "--headless",
        "--disable-gpu",
        // Root in a container has no user namespace for the sandbox.
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(format!("--window-size={},{}", WINDOW.0, WINDOW.1))
    .arg(action)
    .arg(format!("file://{}", page.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    // Its own process group, so a run past its patience is killed with its children.
    .process_group(0)
    .kill_on_drop(true);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting chromium: {e}"));
    let pid = child.id().and_then(|id| i32::try_from(id).ok());
    let output = match tokio::time::timeout(CHROMIUM_PATIENCE, child.wait_with_output()).await {
        Ok(output) => output.unwrap_or_else(|e| panic!("waiting for chromium: {e}")),
        Err(_) => {
            if let Some(pid) = pid {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            panic!(
                "chromium {action} {} took longer than {CHROMIUM_PATIENCE:?}",
                page.display()
            );
        }
    };
    assert!(
        output.status.success(),
        "chromium {action} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A polyline of a plot, as the browser's DOM has it.
#[derive(Debug)]
struct Line {
    series: String,
    /// Its points, in SVG user units.
    points: Vec<(f64, f64)>,
}

/// The plots in a DOM: SVG id → its polylines.
fn plots(dom: &str) -> BTreeMap<String, Vec<Line>> {
    let mut plots = BTreeMap::new();
    for svg in dom.split("<svg ").skip(1) {
        let svg = &svg[..svg
            .find("</svg>")
            .unwrap_or_else(|| panic!("an svg without its end"))];
        let lines = svg
            .split("<polyline")
            .skip(1)
            .map(|p| Line {
                series: attr(p, "data-series"),
                points: attr(p, "points")
                    .split_whitespace()
                    .map(|xy| {
                        let number = |v: &str| -> f64 {
                            v.parse().unwrap_or_else(|e| panic!("point {xy:?}: {e}"))
                        };
                        let (x, y) = xy
                            .split_once(',')
                            .unwrap_or_else(|| panic!("point {xy:?} is not x,y"));
                        (number(x), number(y))
                    })
                    .collect(),
            })
            .collect();
        plots.insert(attr(svg, "id"), lines);
    }
    plots
}

/// The value of attribute `name` in the tag whose attributes start `tag`.
fn attr(tag: &str, name: &str) -> String {
    // A space before the first attribute, so `points` is not found in `data-points`.
    let tag = format!(" {}", &tag[..tag.find('>').unwrap_or(tag.len())]);
    let at = tag
        .find(&format!(" {name}=\""))
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        + name.len()
        + 3;
    let len = tag[at..]
        .find('"')
        .unwrap_or_else(|| panic!("{name} unterminated in {tag}"));
    tag[at..at + len].to_owned()
}

/// Points per series of plot `id`, in order (a line broken by a gap counts once).
fn points_per_series(plots: &BTreeMap<String, Vec<Line>>, id: &str) -> Vec<(String, usize)> {
    let lines = plots.get(id).unwrap_or_else(|| panic!("no plot {id}"));
    let mut out: Vec<(String, usize)> = Vec::new();
    for line in lines {
        match out.iter_mut().find(|(s, _)| *s == line.series) {
            Some((_, n)) => *n += line.points.len(),
            None => out.push((line.series.clone(), line.points.len())),
        }
    }
    out
}

/// The DOM shows every plot with a line per series and a point per data point, inside
/// the plot, and the numbers of the summary in its text.
fn assert_plots_the_summary(dom: &str, summary: &Value, label: &str) {
    let plots = plots(dom);
    let list = |k: &str| summary[k].as_array().cloned().unwrap_or_default();
    let seconds = list("timeseries");
    // Seconds with an answer have a latency; the others break the line.
    let answered = seconds.iter().filter(|p| p["p50_ms"].is_number()).count();
    let want = |pairs: &[(&str, usize)]| -> Vec<(String, usize)> {
        pairs.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect()
    };
    assert!(list("percentiles").len() > 1 && answered > 1, "{summary}");
    assert_eq!(
        points_per_series(&plots, "percentiles"),
        want(&[(label, list("percentiles").len())])
    );
    assert_eq!(
        points_per_series(&plots, "rate"),
        want(&[("rate", seconds.len()), ("errors", seconds.len())])
    );
    assert_eq!(
        points_per_series(&plots, "latency"),
        want(&[("p50", answered), ("p99", answered)])
    );
    // Latency grows with the percentile: left to right, and up (SVG y points down),
    // within the 760 × 300 view box.
    let curve = &plots["percentiles"][0].points;
    for w in curve.windows(2) {
        assert!(w[1].0 >= w[0].0 && w[1].1 <= w[0].1, "{w:?} in {curve:?}");
    }
    assert!(
        curve
            .iter()
            .all(|&(x, y)| (0.0..=760.0).contains(&x) && (0.0..=300.0).contains(&y))
    );
    for number in [
        shown(&summary["achieved_rate"]),
        shown(&summary["latency_ms"]["p99"]),
        shown(&summary["requests"]["completed"]),
    ] {
        assert!(
            dom.contains(&format!(">{number}<")),
            "{number} not in the page"
        );
    }
}

/// A number as the report shows it: at most three decimals, no trailing zeros.
fn shown(v: &Value) -> String {
    let x = v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"));
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// How many pixels of the screenshot have each colour.
fn colours(png_file: &Path) -> BTreeMap<[u8; 3], usize> {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_file).unwrap_or_else(|e| panic!("{}: {e}", png_file.display())),
    ));
    let mut reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("screenshot is no PNG: {e}"));
    let size = reader
        .output_buffer_size()
        .unwrap_or_else(|| panic!("screenshot too large"));
    let mut buf = vec![0; size];
    let info = reader
        .next_frame(&mut buf)
        .unwrap_or_else(|e| panic!("decoding the screenshot: {e}"));
    let step = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected screenshot colour type {other:?}"),
    };
    assert_eq!((info.width, info.height), WINDOW);
    let mut counts = BTreeMap::new();
    for px in buf[..info.buffer_size()].chunks_exact(step) {
        *counts.entry([px[0], px[1], px[2]]).or_default() += 1;
    }
    counts
}

/// The screenshot shows the plot lines: many pixels in the colours of the first two
/// series, on a page of many colours (text, grid, axes), not a blank one.
fn assert_drawn(png_file: &Path) {
    let counts = colours(png_file);
    let blue = counts.get(&BLUE).copied().unwrap_or_default();
    let red = counts.get(&RED).copied().unwrap_or_default();
    // Three plots draw a blue line across most of their 760-unit width, two a red one.
    assert!(blue > 1500, "{blue} blue pixels");
    assert!(red > 800, "{red} red pixels");
    assert!(counts.len() > 20, "{} colours", counts.len());
}

#[tokio::test]
async fn a_report_from_a_summary_opens_in_chromium_with_its_plots_drawn() {
    let summary: Value =
        serde_json::from_str(FIXTURE).unwrap_or_else(|e| panic!("the fixture: {e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let page = dir.path().join("report.html");
    corridor_load::load::html::write(&page, &summary).unwrap_or_else(|e| panic!("{e}"));

    let dom = chromium_run(&page, "--dump-dom").await;
    assert!(
        dom.contains("<title>corridor-load http → 127.0.0.1:8080</title>"),
        "{dom}"
    );
    assert_plots_the_summary(&dom, &summary, "run");
    // The fixture's latency rises from 1.8 ms to 12.4 ms: the curve climbs the plot.
    let curve = &plots(&dom)["percentiles"][0].points;
    assert!(curve[0].1 - curve[curve.len() - 1].1 > 100.0, "{curve:?}");

    let shot = dir.path().join("report.png");
    chromium_run(&page, &format!("--screenshot={}", shot.display())).await;
    assert_drawn(&shot);
}

/// A real run: `corridor-load http --json --html FILE` against `corridor-load serve http`
/// writes a page whose plots hold the run's own data.
#[tokio::test]
async fn a_real_run_writes_a_report_chromium_draws() {
    let mut serve = Process::spawn("serve http", {
        let mut cmd = std::process::Command::new(binary("corridor-load"));
        cmd.args(["serve", "http", "--listen", "127.0.0.1:0"]);
        cmd
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
    let addr = serve
        .wait_bound("corridor-load serve bound", "http")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let page = dir.path().join("run.html");
    let mut load = tokio::process::Command::new(binary("corridor-load"));
    load.args(["http", "--target", &addr.to_string()])
        .args(["--rate", "300", "--duration", "3s", "--connections", "4"])
        .args(["--json", "--html"])
        .arg(&page)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(RUN_PATIENCE, load.output())
        .await
        .unwrap_or_else(|_| panic!("corridor-load http ran past {RUN_PATIENCE:?}"))
        .unwrap_or_else(|e| panic!("running corridor-load http: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "corridor-load http failed ({}): {stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("--json printed no JSON ({e}): {stdout}"));
    assert_eq!(summary["schema"], "corridor-load/summary/v1");
    assert_eq!(summary["errors"]["connect"], 0, "{summary}");

    // The page embeds exactly what --json printed, and shows it.
    let html = std::fs::read_to_string(&page)
        .unwrap_or_else(|e| panic!("--html wrote no {}: {e}", page.display()));
    let data = html
        .split_once(r#"id="report-data">"#)
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .map(|(data, _)| data)
        .unwrap_or_else(|| panic!("no report-data in the page"));
    let embedded: Value =
        serde_json::from_str(data).unwrap_or_else(|e| panic!("report-data: {e}: {data}"));
    assert_eq!(embedded, summary);
    let dom = chromium_run(&page, "--dump-dom").await;
    assert_plots_the_summary(&dom, &summary, "run");
    let shot = dir.path().join("run.png");
    chromium_run(&page, &format!("--screenshot={}", shot.display())).await;
    assert_drawn(&shot);
    serve.kill();
}
