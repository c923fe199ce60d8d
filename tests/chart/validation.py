"""Validation of rendered objects.

Built-in kinds go through kubernetes-validate in strict mode: the Kubernetes OpenAPI
schemas of one release, unknown fields rejected. Kinds that only a CRD defines
(ServiceMonitor) ship no schema there, so they get structural checks here instead; so do
the properties of the chart's own CRDs that the apiserver enforces beyond the OpenAPI
shape (a structural schema, exactly one storage version).
"""

from __future__ import annotations

import re

import kubernetes_validate

from rendered import NAMESPACE, OLDEST_KUBE, Manifest, Rendered

#: Kubernetes versions every manifest must validate against: the oldest the chart
#: supports and the newest kubernetes-validate knows.
KUBE_VERSIONS = sorted({OLDEST_KUBE, kubernetes_validate.latest_version()})

#: Kinds the chart renders that only a CRD defines (checked by custom_kind_problems).
CUSTOM_KINDS = ("ServiceMonitor",)

#: The routing CRDs the chart installs: name -> (served versions, storage version).
ROUTING_CRDS = {
    "virtualservices.networking.istio.io": ({"v1", "v1beta1", "v1alpha3"}, "v1alpha3"),
    "destinationrules.networking.istio.io": ({"v1", "v1beta1", "v1alpha3"}, "v1alpha3"),
    "authorizationpolicies.security.istio.io": ({"v1", "v1beta1"}, "v1beta1"),
    "metarouters.metaprotocol.aeraki.io": ({"v1alpha1"}, "v1alpha1"),
    "redisservices.redis.aeraki.io": ({"v1alpha1"}, "v1alpha1"),
    "redisdestinations.redis.aeraki.io": ({"v1alpha1"}, "v1alpha1"),
}

#: Prometheus duration, as the Prometheus Operator's CRD pattern has it.
PROMETHEUS_DURATION = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$")
#: Fields of ServiceMonitor spec and of one endpoint the chart may use.
SERVICE_MONITOR_SPEC = {"selector", "namespaceSelector", "endpoints", "jobLabel"}
SERVICE_MONITOR_ENDPOINT = {"port", "path", "interval", "scheme", "scrapeTimeout"}


def schema_problems(rendered: Rendered, version: str) -> list[str]:
    """kubernetes-validate --strict against `version` for every object; CRD-defined
    kinds are checked by `custom_kind_problems` instead, any other unknown kind fails."""
    problems = []
    for manifest in rendered:
        try:
            kubernetes_validate.validate(manifest.obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            problems.append(f"{manifest!r} against {version}: {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError:
            if manifest.kind not in CUSTOM_KINDS:
                problems.append(f"{manifest!r}: no schema in Kubernetes {version}")
    return problems


def null_problems(rendered: Rendered) -> list[str]:
    """Fields rendered empty. The schemas above accept null almost everywhere, but an
    empty field is nearly always a template that referenced a value that is not there."""
    problems = []

    def walk(node: object, path: str, manifest: Manifest) -> None:
        if node is None:
            problems.append(f"{manifest!r}: {path} is empty")
        elif isinstance(node, dict):
            for key, child in node.items():
                walk(child, f"{path}.{key}", manifest)
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, f"{path}[{index}]", manifest)

    for manifest in rendered:
        walk(manifest.obj, "", manifest)
    return problems


def custom_kind_problems(rendered: Rendered) -> list[str]:
    """Structural checks of the objects kubernetes-validate has no schema for."""
    problems = []
    for monitor in rendered.of_kind("ServiceMonitor"):
        problems += service_monitor_problems(monitor, rendered)
    return problems


def service_monitor_problems(monitor: Manifest, rendered: Rendered) -> list[str]:
    """A ServiceMonitor must be well-formed and actually scrape the chart's Services:
    its selector must pick Services in its namespace that have the named port."""
    problems = []
    obj, spec = monitor.obj, monitor.obj.get("spec") or {}
    if obj.get("apiVersion") != "monitoring.coreos.com/v1":
        problems.append(f"{monitor!r}: apiVersion {obj.get('apiVersion')}")
    if set(obj) - {"apiVersion", "kind", "metadata", "spec"}:
        problems.append(f"{monitor!r}: unknown top-level fields {set(obj) - {'apiVersion', 'kind', 'metadata', 'spec'}}")
    if set(spec) - SERVICE_MONITOR_SPEC:
        problems.append(f"{monitor!r}: unknown spec fields {set(spec) - SERVICE_MONITOR_SPEC}")
    if spec.get("namespaceSelector") != {"matchNames": [NAMESPACE]}:
        problems.append(f"{monitor!r}: namespaceSelector {spec.get('namespaceSelector')}")
    match = (spec.get("selector") or {}).get("matchLabels") or {}
    selected = [
        s for s in rendered.of_kind("Service")
        if match and all(s.labels.get(k) == v for k, v in match.items())
    ]
    if len(selected) < 3:
        problems.append(f"{monitor!r}: selects {selected}, want the gateway, controller and dns Services")
    endpoints = spec.get("endpoints") or []
    if not endpoints:
        problems.append(f"{monitor!r}: no endpoints")
    for endpoint in endpoints:
        if set(endpoint) - SERVICE_MONITOR_ENDPOINT:
            problems.append(f"{monitor!r}: unknown endpoint fields {set(endpoint) - SERVICE_MONITOR_ENDPOINT}")
        if not PROMETHEUS_DURATION.match(str(endpoint.get("interval", "30s"))):
            problems.append(f"{monitor!r}: interval {endpoint.get('interval')!r}")
        for service in selected:
            ports = {p.get("name") for p in service.obj["spec"]["ports"]}
            if endpoint.get("port") not in ports:
                problems.append(f"{monitor!r}: {service!r} has no port {endpoint.get('port')!r}")
    return problems


def crd_problems(rendered: Rendered) -> list[str]:
    """What the apiserver demands of a CRD beyond its OpenAPI shape: a structural schema
    (a type on every node; unknown fields kept only where declared), exactly one storage
    version, metadata.name = <plural>.<group>; and the chart's own promises: the served
    versions, a status subresource."""
    problems = []
    for crd in rendered.of_kind("CustomResourceDefinition"):
        spec = crd.obj["spec"]
        if crd.name != f"{spec['names']['plural']}.{spec['group']}":
            problems.append(f"{crd!r}: name is not <plural>.<group>")
        if crd.name not in ROUTING_CRDS:
            problems.append(f"{crd!r}: not a routing API of DESIGN.md §4")
            continue
        served, storage = ROUTING_CRDS[crd.name]
        versions = {v["name"]: v for v in spec["versions"]}
        if {n for n, v in versions.items() if v["served"]} != served:
            problems.append(f"{crd!r}: serves {sorted(versions)}, want {sorted(served)}")
        if [n for n, v in versions.items() if v["storage"]] != [storage]:
            problems.append(f"{crd!r}: storage versions {[n for n, v in versions.items() if v['storage']]}, want [{storage}]")
        for name, version in versions.items():
            if version.get("subresources", {}).get("status") != {}:
                problems.append(f"{crd!r} {name}: no status subresource")
            schema = version.get("schema", {}).get("openAPIV3Schema", {})
            problems += [f"{crd!r} {name}: {p}" for p in structural_problems(schema, "openAPIV3Schema")]
            for field in ("spec", "status"):
                node = schema.get("properties", {}).get(field, {})
                if node.get("type") != "object" or node.get("x-kubernetes-preserve-unknown-fields") is not True:
                    problems.append(f"{crd!r} {name}: {field} is not an open object")
    return problems


def structural_problems(node: dict, path: str) -> list[str]:
    """Kubernetes' structural schema rule, for the subset of OpenAPI the chart uses:
    every node has a type, and nothing but properties/items nests further."""
    problems = []
    if "type" not in node:
        problems.append(f"{path}: no type")
    for forbidden in ("additionalProperties", "$ref", "anyOf", "oneOf", "allOf", "not"):
        if forbidden in node:
            problems.append(f"{path}: {forbidden} is not used by structural schemas here")
    for name, child in (node.get("properties") or {}).items():
        problems += structural_problems(child, f"{path}.{name}")
    if "items" in node:
        problems += structural_problems(node["items"], f"{path}.items")
    return problems
