"""The Grafana dashboard shipped with the chart: valid JSON, every metric its queries read
is one corridor-gateway exports (the names in gateway/src/telemetry/metrics.rs), each L7
protocol's success counted in its own terms, and its ConfigMap rendered only on request,
labelled for Grafana's dashboard sidecar; the gateway's tracing values reach its flags."""

from __future__ import annotations

import json
import re
import unittest
from pathlib import Path

from rendered import CHART, render

#: The dashboard as shipped.
DASHBOARD = CHART / "dashboards" / "corridor.json"
#: Where the gateway names its metrics.
METRICS_RS = Path(__file__).resolve().parents[2] / "gateway" / "src" / "telemetry" / "metrics.rs"
#: A Prometheus metric name as PromQL writes one (a label or function name too; they are
#: told apart below by the metric prefixes).
NAME = re.compile(r"\b((?:istio|corridor)_[a-z0-9_]+)\b")
#: The series Prometheus makes of one histogram.
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def exported() -> set[str]:
    """Metric names the gateway declares: `pub const X: &str = "name";` in metrics.rs."""
    text = METRICS_RS.read_text()
    return set(re.findall(r'pub const [A-Z_]+: &str = "([a-z0-9_]+)";', text))


def queries(dashboard: dict) -> list[str]:
    """Every PromQL expression: panel targets and template variable queries."""
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    return exprs


def metric_of(name: str, known: set[str]) -> str:
    """The exported metric a series name belongs to (a histogram's _bucket/_sum/_count)."""
    if name in known:
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        base = name[: -len(suffix)]
        # Counters (`_total`) have no buckets.
        if name.endswith(suffix) and base in known and not base.endswith("_total"):
            return base
    return name


class Dashboard(unittest.TestCase):
    def setUp(self) -> None:
        self.dashboard = json.loads(DASHBOARD.read_text())
        self.known = exported()

    def test_metrics_rs_is_read(self) -> None:
        # Guards the cross-check below against a regex that finds nothing.
        for name in ("istio_requests_total", "istio_request_duration_milliseconds", "istio_tcp_sent_bytes_total"):
            self.assertIn(name, self.known)

    def test_every_queried_metric_is_exported(self) -> None:
        exprs = queries(self.dashboard)
        self.assertGreater(len(exprs), 10)
        used = {metric_of(n, self.known) for e in exprs for n in NAME.findall(e)}
        self.assertEqual(used - self.known, set(), "queried but not exported by the gateway")
        # The dashboard covers the request metrics and the TCP ones.
        for name in ("istio_requests_total", "istio_request_duration_milliseconds",
                     "istio_request_bytes", "istio_response_bytes", "istio_tcp_connections_opened_total"):
            self.assertIn(name, used)

    def test_success_is_counted_per_protocol(self) -> None:
        success = next(p for p in self.dashboard["panels"] if p["title"].startswith("Success rate"))
        exprs = {t["legendFormat"]: t["expr"] for t in success["targets"]}
        self.assertEqual(set(exprs), {"http", "grpc", "dubbo", "thrift"})
        self.assertIn('grpc_response_status="0"', exprs["grpc"])
        self.assertIn('response_code="20"', exprs["dubbo"])
        self.assertIn('response_code="0"', exprs["thrift"])

    def test_panels_have_unique_ids_and_a_datasource_variable(self) -> None:
        ids = [p["id"] for p in self.dashboard["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        names = [v["name"] for v in self.dashboard["templating"]["list"]]
        self.assertIn("datasource", names)

    def test_configmap_only_when_enabled(self) -> None:
        self.assertEqual([m for m in render().of_kind("ConfigMap") if "grafana_dashboard" in m.labels], [])
        rendered = render({"dashboards": {"enabled": True, "labels": {"team": "mesh"},
                                          "annotations": {"grafana_folder": "Corridor"}}})
        maps = [m for m in rendered.of_kind("ConfigMap") if m.labels.get("grafana_dashboard") == "1"]
        self.assertEqual(len(maps), 1, rendered.manifests)
        cm = maps[0]
        self.assertEqual(cm.labels["team"], "mesh")
        self.assertEqual(cm.annotations["grafana_folder"], "Corridor")
        # The JSON goes in unchanged.
        self.assertEqual(json.loads(cm.obj["data"]["corridor.json"]), self.dashboard)

    def test_tracing_values_become_gateway_flags(self) -> None:
        def gateway_args(values: dict | None) -> list[str]:
            rendered = render(values)
            deployment = next(m for m in rendered.of_kind("Deployment") if "gateway" in m.name)
            containers = deployment.pod_spec()["containers"]
            return next(c for c in containers if "corridor-gateway" in " ".join(c.get("command", [])) or c["name"] == "gateway")["args"]

        args = gateway_args(None)
        self.assertIn("--trace-sampling=0", args)
        self.assertFalse(any(a.startswith("--otlp-endpoint") for a in args), args)
        args = gateway_args({"gateway": {"tracing": {"sampling": 5, "otlpEndpoint": "otel.observability:4317"}}})
        self.assertIn("--trace-sampling=5", args)
        self.assertIn("--otlp-endpoint=otel.observability:4317", args)


if __name__ == "__main__":
    unittest.main()
