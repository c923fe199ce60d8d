"""The chart lints (strict) and every object it renders validates, for the default values
and for the production-shaped variant (multi-zone, HPA on CPU and rps, stub DNS, a
ServiceMonitor-capable cluster, the load-test Job)."""

from __future__ import annotations

import unittest

from rendered import SERVICE_MONITOR_API, lint, render, variant_values
from validation import (
    KUBE_VERSIONS,
    crd_problems,
    custom_kind_problems,
    null_problems,
    schema_problems,
)


class RenderCase:
    """Lint, render and validate one set of values on every Kubernetes version tested."""

    values: dict | None = None
    api_versions: tuple[str, ...] = ()

    def test_lint_strict(self) -> None:
        for version in KUBE_VERSIONS:
            with self.subTest(kube=version):
                self.assertEqual(lint(self.values, version), [])

    def test_every_object_validates(self) -> None:
        for version in KUBE_VERSIONS:
            with self.subTest(kube=version):
                rendered = render(self.values, api_versions=self.api_versions, kube_version=version)
                self.assertGreater(len(rendered.manifests), 20)
                self.assertEqual(schema_problems(rendered, version), [])
                self.assertEqual(custom_kind_problems(rendered), [])
                self.assertEqual(crd_problems(rendered), [])
                self.assertEqual(null_problems(rendered), [])

    def test_every_routing_crd_renders(self) -> None:
        # lookup() finds nothing offline, exactly as on a cluster without the CRDs.
        rendered = render(self.values, api_versions=self.api_versions)
        names = {crd.name for crd in rendered.of_kind("CustomResourceDefinition")}
        self.assertEqual(len(names), 6, names)

    def test_notes_say_how_to_check(self) -> None:
        notes = render(self.values, api_versions=self.api_versions).notes
        for check in ("get pods", "/ready", "dig @", "get lease"):
            self.assertIn(check, notes)


class DefaultValues(RenderCase, unittest.TestCase):
    """`helm install corridor helm/corridor` with nothing set."""

    def test_no_service_monitor_without_the_crd(self) -> None:
        self.assertEqual(render().of_kind("ServiceMonitor"), [])


class VariantValues(RenderCase, unittest.TestCase):
    """helm/corridor/ci/multizone-hpa-stub-values.yaml on a cluster with the Prometheus
    Operator."""

    values = variant_values()
    api_versions = (SERVICE_MONITOR_API,)

    def test_variant_is_what_it_claims(self) -> None:
        rendered = render(self.values, api_versions=self.api_versions)
        # The checks above covered these, so they must be there.
        self.assertEqual(len(rendered.of_kind("ServiceMonitor")), 1)
        self.assertEqual(len(rendered.of_kind("HorizontalPodAutoscaler")), 1)
        hook = [j for j in rendered.of_kind("Job") if "helm.sh/hook" in j.annotations]
        self.assertEqual(len(hook), 1, rendered.of_kind("Job"))
        spread = rendered.one("Deployment", "corridor-gateway").pod_spec()["topologySpreadConstraints"]
        zone = [c for c in spread if c["topologyKey"] == "topology.kubernetes.io/zone"]
        self.assertEqual(zone[0]["whenUnsatisfiable"], "DoNotSchedule")


if __name__ == "__main__":
    unittest.main()
