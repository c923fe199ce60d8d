"""The corridor chart rendered and linted by the real Helm SDK (PyPI helm-python-sdk, Helm
v4's Go SDK behind a C ABI: no helm binary), and the objects it renders, parsed.

Everything here is offline: lookup() finds nothing, so CRDs always render, and the
cluster's API versions are only what a test says they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import helm_python as helm
import yaml
from helm_python import _native

#: The chart under test.
CHART = Path(__file__).resolve().parents[2] / "helm" / "corridor"
#: The production-shaped variant: multi-zone, HPA on CPU and rps, stub DNS, load Job.
VARIANT_VALUES = CHART / "ci" / "multizone-hpa-stub-values.yaml"
#: What the tests install as (the namespace DESIGN.md and the controller default to).
RELEASE = "corridor"
NAMESPACE = "corridor-system"
#: The oldest Kubernetes the chart supports (Chart.yaml kubeVersion).
OLDEST_KUBE = "1.30.0"
#: The API version a cluster with the Prometheus Operator serves.
SERVICE_MONITOR_API = "monitoring.coreos.com/v1/ServiceMonitor"


def variant_values() -> dict[str, Any]:
    """The variant values file, as Helm reads it."""
    return helm.values_from_yaml(VARIANT_VALUES.read_text())


def render(
    values: dict[str, Any] | None = None,
    *,
    api_versions: tuple[str, ...] = (),
    kube_version: str | None = None,
) -> "Rendered":
    """Renders the chart like `helm template` (schema validation included).

    Raises helm.HelmValuesError on values the schema rejects and helm.HelmRenderError
    when a template fails (e.g. `fail` or `required`).
    """
    # Chart.render() has no api_versions/kube_version (helm template's --api-versions and
    # --kube-version); the library's render call takes them as options.
    options: dict[str, Any] = {"name": RELEASE, "namespace": NAMESPACE, "is_install": True}
    if api_versions:
        options["api_versions"] = list(api_versions)
    if kube_version:
        options["kube_version"] = f"v{kube_version}"
    with helm.Chart.load(CHART) as chart:
        files = json.loads(
            _native.call_string(
                "helm_render", chart._raw(), json.dumps(values or {}), json.dumps(options)
            )
        )
    return Rendered.parse(files)


def lint(values: dict[str, Any] | None, kube_version: str) -> list[str]:
    """`helm lint --strict --kube-version`: every finding above info, as text."""
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{kube_version}")
    findings = [
        f"{m['path']}: {m['error'].strip()}" for m in report["messages"] if m["severity"] > 1
    ]
    return findings + [e.strip() for e in report["errors"]]


# === parsed objects ===


@dataclass
class Manifest:
    """One rendered Kubernetes object and the template it came from."""

    source: str
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.obj["kind"]

    @property
    def name(self) -> str:
        return self.obj["metadata"]["name"]

    @property
    def labels(self) -> dict[str, str]:
        return self.obj["metadata"].get("labels") or {}

    @property
    def annotations(self) -> dict[str, str]:
        return self.obj["metadata"].get("annotations") or {}

    def pod_spec(self) -> dict[str, Any] | None:
        """The pod template's spec of a Deployment or Job."""
        if self.kind in ("Deployment", "Job"):
            return self.obj["spec"]["template"]["spec"]
        return None

    def __repr__(self) -> str:
        return f"{self.kind}/{self.name} ({self.source})"


class Rendered:
    """All objects one render produced, with NOTES.txt apart."""

    def __init__(self, manifests: list[Manifest], notes: str) -> None:
        self.manifests = manifests
        self.notes = notes

    @classmethod
    def parse(cls, files: dict[str, str]) -> "Rendered":
        manifests, notes = [], ""
        for source, text in sorted(files.items()):
            if source.endswith("NOTES.txt"):
                notes = text
                continue
            for obj in yaml.load_all(text, Loader=_StrictLoader):
                if obj is not None:
                    manifests.append(Manifest(source, obj))
        return cls(manifests, notes)

    def __iter__(self) -> Iterator[Manifest]:
        return iter(self.manifests)

    def of_kind(self, kind: str) -> list[Manifest]:
        return [m for m in self.manifests if m.kind == kind]

    def one(self, kind: str, name: str) -> Manifest:
        """The object of this kind and name; fails the test if there is not exactly one."""
        found = [m for m in self.of_kind(kind) if m.name == name]
        if len(found) != 1:
            raise AssertionError(f"{len(found)} {kind}/{name} rendered, want 1: {self.manifests}")
        return found[0]

    def containers(self) -> Iterator[tuple[Manifest, dict[str, Any], dict[str, Any]]]:
        """(owner, pod spec, container) for every container and init container."""
        for manifest in self.manifests:
            spec = manifest.pod_spec()
            if spec is None:
                continue
            for container in spec.get("initContainers", []) + spec["containers"]:
                yield manifest, spec, container


def args_of(container: dict[str, Any]) -> dict[str, list[str]]:
    """A container's `--flag=value` arguments by flag (a bare flag maps to [""])."""
    flags: dict[str, list[str]] = {}
    for arg in container.get("args", []):
        if arg.startswith("--"):
            flag, _, value = arg.partition("=")
            flags.setdefault(flag, []).append(value)
    return flags


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys: PyYAML keeps the last one silently, and
    so would a lenient apply, hiding a template that emits a key twice."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)
