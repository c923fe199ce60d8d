//! `loadtest/bench`, the one script that regenerates BENCHMARKS.md, tested on its
//! assembling step only: fixture sections (`corridor-bench/section/v1`, as the
//! `loadtest/bench-*.sh --section FILE` scripts write them) go in with `--assemble-only`,
//! and the tests read the Markdown that comes out. No benchmark runs here.
//!
//! The last test assembles the committed `loadtest/results/` and compares the result with
//! the committed BENCHMARKS.md: the file stays generated, never edited by hand.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `loadtest/bench --assemble-only` on the sections in `results`, writing `output`.
fn assemble(results: &Path, output: &Path) -> Output {
    Command::new("python3")
        .arg(repo().join("loadtest/bench"))
        .arg("--assemble-only")
        .arg("--results")
        .arg(results)
        .arg("--output")
        .arg(output)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("running python3 loadtest/bench: {e}"))
}

/// Assembles `sections` (written as `<name>.json` into a fresh directory) and returns the
/// BENCHMARKS.md text and the directory, after checking that the script succeeded.
fn assembled(sections: &[Value]) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    for section in sections {
        let name = section["name"]
            .as_str()
            .unwrap_or_else(|| panic!("a fixture without a name"));
        write(
            &dir.path().join(format!("{name}.json")),
            &section.to_string(),
        );
    }
    let output = dir.path().join("BENCHMARKS.md");
    let run = assemble(dir.path(), &output);
    assert!(
        run.status.success(),
        "loadtest/bench --assemble-only failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    (read(&output), dir)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// A section as a benchmark script writes it, with `goals`.
fn section(name: &str, quick: bool, goals: Value) -> Value {
    json!({
        "schema": "corridor-bench/section/v1",
        "name": name,
        "title": format!("The {name} benchmark"),
        "setup": format!("The {name} setup text."),
        "command": format!("loadtest/bench-{name}.sh --duration 10s --repeat 3"),
        "statistic": "median of 3 rounds",
        "rounds": 3,
        "quick": quick,
        "started": "2026-11-22T07:10:05Z",
        "finished": "2026-11-22T07:25:40Z",
        "load_before": 0.31,
        "load_after": 1.9,
        "commit": "abc1234",
        "machine": {"cores": 2, "cpu": "AMD EPYC", "kernel": "6.18.44"},
        "tables": [{"title": "", "markdown": format!("| path | req/s |\n|---|---:|\n| {name}-row | 1,000 |")}],
        "goals": goals,
        "notes": format!("docs/performance.md#{name}"),
        "remarks": [],
    })
}

/// A goal as the scripts write it.
fn goal(what: &str, value: Value, unit: &str, op: &str, threshold: f64, rounds: Value) -> Value {
    json!({"issue": 9, "what": what, "value": value, "unit": unit, "op": op,
           "threshold": threshold, "rounds": rounds})
}

/// The lines of `text` that are verdicts (start with `- **`).
fn verdicts(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("- **")).collect()
}

#[test]
fn verdicts_are_judged_from_the_figures() {
    let http = section(
        "http",
        false,
        json!([
            goal(
                "ratio above",
                json!(1.05),
                "x",
                ">=",
                1.0,
                json!([0.98, 1.05, 1.1])
            ),
            goal("ratio on the line", json!(0.9), "x", ">=", 0.9, json!([])),
            goal(
                "ratio below",
                json!(0.8781),
                "x",
                ">=",
                1.0,
                json!([0.8781])
            ),
            goal("ratio just below", json!(1.996), "x", ">=", 2.0, json!([])),
        ]),
    );
    let meta = section(
        "meta",
        false,
        json!([
            goal(
                "added above",
                json!(118.0),
                "us",
                "<",
                100.0,
                json!([111.0, 118.0, 185.0])
            ),
            goal("added below", json!(-4.5), "us", "<", 100.0, json!([])),
            goal("lost none", json!(0), "count", "==", 0.0, json!([])),
            goal("lost some", json!(3), "count", "==", 0.0, json!([])),
            goal("not run", Value::Null, "x", ">=", 2.0, json!([])),
        ]),
    );
    let (text, _dir) = assembled(&[http, meta]);
    assert_eq!(
        verdicts(&text),
        [
            "- **met** — issue 9, ratio above: 1.05x (goal ≥ 1.0x; per round 0.98x, 1.05x, 1.10x)",
            "- **met** — issue 9, ratio on the line: 0.90x (goal ≥ 0.9x)",
            "- **NOT met** — issue 9, ratio below: 0.88x (goal ≥ 1.0x)",
            "- **NOT met** — issue 9, ratio just below: 1.996x (goal ≥ 2.0x)",
            "- **NOT met** — issue 9, added above: +118 µs (goal < 100 µs; per round +111 µs, +118 µs, +185 µs)",
            "- **met** — issue 9, added below: -4 µs (goal < 100 µs)",
            "- **met** — issue 9, lost none: 0 (goal = 0)",
            "- **NOT met** — issue 9, lost some: 3 (goal = 0)",
            "- **not measured** — issue 9, not run (goal ≥ 2.0x)",
        ],
        "{text}"
    );
    // The header counts what was judged; a goal not measured counts neither way.
    assert!(text.contains("| [http](#http) | 2 of 4 |"), "{text}");
    assert!(text.contains("| [meta](#meta) | 2 of 4 |"), "{text}");
}

#[test]
fn the_file_says_it_is_generated_and_every_section_has_its_parts() {
    let (text, dir) = assembled(&[section("dns", false, json!([]))]);
    assert_eq!(
        text.lines().next(),
        Some("# Benchmarks (generated by `loadtest/bench`; do not edit by hand)")
    );
    let dns = &text[text
        .find("## The dns benchmark")
        .unwrap_or_else(|| panic!("{text}"))..];
    // Setup, the exact command, the table, the link to the notes, in that order.
    let order = [
        "Measured 2026-11-22 07:10–07:25 UTC at commit `abc1234`; load average 0.31 before, 1.90 after; 2 cores, AMD EPYC, Linux 6.18.44.",
        "**Setup.** The dns setup text.",
        "loadtest/bench-dns.sh --duration 10s --repeat 3",
        "**Results**, median of 3 rounds:",
        "| dns-row | 1,000 |",
        "[docs/performance.md#dns](docs/performance.md#dns)",
    ];
    let mut at = 0;
    for part in order {
        let found = dns[at..]
            .find(part)
            .unwrap_or_else(|| panic!("{part:?} missing or out of order in:\n{dns}"));
        at += found + part.len();
    }
    assert!(
        text.contains("| [dns](#dns) | 0 of 0 | 2026-11-22 07:10–07:25 | `abc1234` | 2 cores, AMD EPYC, Linux 6.18.44 | 0.31 → 1.90 | median of 3 rounds |"),
        "{text}"
    );
    // The section also stands alone beside its JSON, its links leading back to the root.
    let alone = read(&dir.path().join("dns.md"));
    assert!(
        alone.contains("](../../docs/performance.md#dns)"),
        "{alone}"
    );
    assert!(alone.contains("| dns-row | 1,000 |"), "{alone}");
}

#[test]
fn a_quick_section_says_its_figures_mean_nothing() {
    let (text, _dir) = assembled(&[
        section("http", true, json!([])),
        section("dns", false, json!([])),
    ]);
    assert!(
        text.contains("**Quick run, figures not meaningful:** http (`--quick`, a plumbing check)."),
        "{text}"
    );
    let http = &text[text
        .find("## The http benchmark")
        .unwrap_or_else(|| panic!("{text}"))..];
    assert!(
        http.starts_with("## The http benchmark\n\n**Quick run, figures not meaningful**"),
        "{http}"
    );
    assert!(
        text.contains("| median of 3 rounds, quick run, figures not meaningful |"),
        "{text}"
    );

    let (text, _dir) = assembled(&[section("http", false, json!([]))]);
    assert!(!text.contains("not meaningful"), "{text}");
}

#[test]
fn sections_keep_their_order_and_missing_ones_say_so() {
    let (text, _dir) = assembled(&[
        section("redis", false, json!([])),
        section("http", false, json!([])),
    ]);
    let headings: Vec<&str> = text.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(
        headings,
        [
            "## The http benchmark",
            "## dns: not measured yet",
            "## meta: not measured yet",
            "## The redis benchmark",
        ]
    );
    assert!(text.contains("Run `loadtest/bench --only meta`"), "{text}");
    assert!(
        text.contains("| [dns](#dns) | | not measured yet |"),
        "{text}"
    );
}

#[test]
fn a_malformed_section_is_refused_naming_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let output = dir.path().join("BENCHMARKS.md");
    let cases = [
        ("goals", "missing field `goals`"),
        ("op", "goals[0]: op '~' is none of"),
        ("name", "name 'http' does not match the file name"),
    ];
    for (what, expected) in cases {
        let mut bad = section(
            "redis",
            false,
            json!([goal("g", json!(1.0), "x", ">=", 1.0, json!([]))]),
        );
        match what {
            "goals" => {
                bad.as_object_mut().map(|o| o.remove("goals"));
            }
            "op" => bad["goals"][0]["op"] = json!("~"),
            _ => bad["name"] = json!("http"),
        }
        write(&dir.path().join("redis.json"), &bad.to_string());
        let run = assemble(dir.path(), &output);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{what}: accepted");
        assert!(
            stderr.contains("redis.json") && stderr.contains(expected),
            "{what}: {stderr}"
        );
        assert!(!output.exists(), "{what}: BENCHMARKS.md written anyway");
    }
}

#[test]
fn benchmarks_md_is_what_the_committed_results_assemble_to() {
    let results = repo().join("loadtest/results");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let entries =
        std::fs::read_dir(&results).unwrap_or_else(|e| panic!("{}: {e}", results.display()));
    let mut names = Vec::new();
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("listing {}: {e}", results.display()))
            .path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path
                .file_name()
                .unwrap_or_else(|| panic!("{}", path.display()));
            write(&dir.path().join(name), &read(&path));
            names.push(path.with_extension(""));
        }
    }
    assert!(!names.is_empty(), "no section in {}", results.display());
    let output = dir.path().join("BENCHMARKS.md");
    let run = assemble(dir.path(), &output);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        read(&output) == read(&repo().join("BENCHMARKS.md")),
        "BENCHMARKS.md differs from what loadtest/results/ assembles to: regenerate it with \
         `loadtest/bench --assemble-only` (never edit it by hand)"
    );
    for name in names {
        let md = name.with_extension("md");
        let file = md.file_name().unwrap_or_else(|| panic!("{}", md.display()));
        assert!(
            read(&dir.path().join(file)) == read(&md),
            "{} differs from its JSON's rendering: run `loadtest/bench --assemble-only`",
            md.display()
        );
    }
}
