//! The Helm chart (`helm/corridor`) checked with the real Helm SDK and the Kubernetes
//! OpenAPI schemas: runs the Python tests of `tests/chart/` (PyPI `helm-python-sdk`
//! renders and lints the chart, `kubernetes-validate` validates every object against
//! Kubernetes 1.30 and the newest release it knows) with the test venv's Python, one Rust
//! test per unittest case so a failure names what broke.
//!
//! No cluster is involved: the chart is rendered the way `helm template` does, so
//! `lookup` finds nothing and the cluster's API versions are what a test declares.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};

use corridor_tests::python::python;

/// Every unittest case of `tests/chart/` that a test below runs.
const CASES: &[&str] = &[
    "test_access.CorednsHook",
    "test_access.NetworkPolicies",
    "test_access.Rbac",
    "test_access.Toggles",
    "test_dashboard.Dashboard",
    "test_pods.Controller",
    "test_pods.Dns",
    "test_pods.Gateway",
    "test_pods.GatewaySelector",
    "test_pods.Hardening",
    "test_pods.LoadTest",
    "test_render.DefaultValues",
    "test_render.VariantValues",
    "test_values.Guards",
    "test_values.Schema",
];

/// `tests/chart/`, where the Python tests import each other from.
fn chart_tests_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("chart")
}

/// Runs `python <args>` in `tests/chart/` (no bytecode left in the source tree).
fn run_python(args: &[&str]) -> Output {
    Command::new(python())
        .args(args)
        .current_dir(chart_tests_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("running python {args:?}: {e}"))
}

/// Runs one unittest case and fails with its report if any of its tests failed.
fn unittest(case: &str) {
    let output = run_python(&["-m", "unittest", "-v", case]);
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{case} failed ({}):\n{report}\n(helm_python or kubernetes_validate missing? \
         `tests/run` installs tests/chart/requirements.txt into the test venv)",
        output.status
    );
    // unittest exits 0 when it found nothing to run; a renamed case must not pass silently.
    assert!(report.contains("\nOK"), "{case} ran no tests:\n{report}");
}

#[test]
fn every_python_case_is_run_here() {
    let output = run_python(&[
        "-c",
        "import unittest\n\
         def walk(s):\n\
         \x20   for t in s:\n\
         \x20       yield from walk(t) if isinstance(t, unittest.TestSuite) else [t]\n\
         for t in walk(unittest.defaultTestLoader.discover('.', pattern='test_*.py')):\n\
         \x20   print(type(t).__module__ + '.' + type(t).__name__)\n",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "discovering tests/chart failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let found: BTreeSet<&str> = stdout.lines().collect();
    let listed: BTreeSet<&str> = CASES.iter().copied().collect();
    assert_eq!(found, listed, "tests/chart cases and CASES differ");
}

#[test]
fn default_values_lint_render_and_validate() {
    unittest("test_render.DefaultValues");
}

#[test]
fn variant_values_lint_render_and_validate() {
    unittest("test_render.VariantValues");
}

#[test]
fn schema_rejects_wrong_values() {
    unittest("test_values.Schema");
}

#[test]
fn templates_refuse_inconsistent_values() {
    unittest("test_values.Guards");
}

#[test]
fn every_container_is_hardened() {
    unittest("test_pods.Hardening");
}

#[test]
fn gateway_selector_matches_gateway_pods_only() {
    unittest("test_pods.GatewaySelector");
}

#[test]
fn controller_flags_match_the_rendered_objects() {
    unittest("test_pods.Controller");
}

#[test]
fn gateway_probes_drain_and_spread() {
    unittest("test_pods.Gateway");
}

#[test]
fn dns_serves_port_53_unprivileged() {
    unittest("test_pods.Dns");
}

#[test]
fn load_test_job() {
    unittest("test_pods.LoadTest");
}

#[test]
fn rbac_is_least_privilege() {
    unittest("test_access.Rbac");
}

#[test]
fn coredns_role_and_hook_only_in_stub_mode() {
    unittest("test_access.CorednsHook");
}

#[test]
fn pdb_hpa_and_crds_follow_their_values() {
    unittest("test_access.Toggles");
}

#[test]
fn network_policies() {
    unittest("test_access.NetworkPolicies");
}

#[test]
fn grafana_dashboard_reads_only_exported_metrics() {
    unittest("test_dashboard.Dashboard");
}
