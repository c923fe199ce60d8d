"""Who may do what: least-privilege RBAC, NetworkPolicies, and the objects that exist
only when a value asks for them (PDBs, the HPA, CRDs, the CoreDNS Role and hook)."""

from __future__ import annotations

import unittest

from rendered import NAMESPACE, Manifest, Rendered, args_of, render, variant_values

READ = {"get", "list", "watch"}
#: Everything the controller may read cluster-wide: (API group, resource).
READABLE = {
    ("", "services"), ("", "pods"), ("", "namespaces"), ("", "secrets"),
    ("discovery.k8s.io", "endpointslices"),
    ("networking.istio.io", "virtualservices"), ("networking.istio.io", "destinationrules"),
    ("security.istio.io", "authorizationpolicies"),
    ("metaprotocol.aeraki.io", "metarouters"),
    ("redis.aeraki.io", "redisservices"), ("redis.aeraki.io", "redisdestinations"),
}
ROUTING = {pair for pair in READABLE if "." in pair[0] and pair[0] != "discovery.k8s.io"}


def grants(role: Manifest) -> set[tuple[str, str, str, tuple[str, ...]]]:
    """(group, resource, verb, resourceNames) for every permission a Role grants."""
    out = set()
    for rule in role.obj["rules"]:
        names = tuple(rule.get("resourceNames", ()))
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((group, resource, verb, names))
    return out


def in_namespace(rendered: Rendered, kind: str, namespace: str) -> list[Manifest]:
    return [m for m in rendered.of_kind(kind) if m.obj["metadata"].get("namespace") == namespace]


def bound_to(rendered: Rendered, role: Manifest) -> list[str]:
    """Service accounts the bindings of `role` name."""
    binding_kind = "ClusterRoleBinding" if role.kind == "ClusterRole" else "RoleBinding"
    return [
        f"{s['namespace']}/{s['name']}"
        for b in rendered.of_kind(binding_kind)
        if b.obj["roleRef"]["name"] == role.name and b.obj["roleRef"]["kind"] == role.kind
        and b.obj["metadata"].get("namespace") == role.obj["metadata"].get("namespace")
        for s in b.obj["subjects"]
    ]


class Rbac(unittest.TestCase):
    def test_cluster_wide_is_read_only_but_status(self) -> None:
        rendered = render()
        (role,) = rendered.of_kind("ClusterRole")
        self.assertEqual(bound_to(rendered, role), [f"{NAMESPACE}/corridor-controller"])
        allowed = grants(role)
        self.assertTrue(allowed)
        for group, resource, verb, names in allowed:
            with self.subTest(grant=(group, resource, verb)):
                self.assertNotIn("*", (group, resource, verb))
                self.assertEqual(names, ())
                if resource.endswith("/status"):
                    # The Accepted condition, by merge patch; nothing else of the object.
                    self.assertEqual(verb, "patch")
                    self.assertIn((group, resource.removesuffix("/status")), ROUTING)
                else:
                    self.assertIn(verb, READ)
                    self.assertIn((group, resource), READABLE)
        read = {(g, r) for g, r, v, _ in allowed if v in READ}
        self.assertEqual(read, READABLE)
        status = {(g, r.removesuffix("/status")) for g, r, v, _ in allowed if v == "patch"}
        self.assertEqual(status, ROUTING)

    def test_secrets_only_on_request(self) -> None:
        (role,) = render({"rbac": {"readSecrets": False}}).of_kind("ClusterRole")
        self.assertNotIn("secrets", {r for _, r, _, _ in grants(role)})

    def test_writes_in_own_namespace_are_services_and_leases(self) -> None:
        rendered = render()
        (role,) = in_namespace(rendered, "Role", NAMESPACE)
        self.assertEqual(bound_to(rendered, role), [f"{NAMESPACE}/corridor-controller"])
        resources = {(g, r) for g, r, _, _ in grants(role)}
        self.assertEqual(resources, {("", "services"), ("coordination.k8s.io", "leases")})
        verbs = {v for _, r, v, _ in grants(role) if r == "services"}
        self.assertEqual(verbs, {"create", "update", "patch", "delete"})
        # Nothing outside the release namespace unless dns.mode=stub.
        roles = rendered.of_kind("Role") + rendered.of_kind("RoleBinding")
        self.assertEqual({m.obj["metadata"]["namespace"] for m in roles}, {NAMESPACE})


class CorednsHook(unittest.TestCase):
    """The coredns ConfigMap is writable only in stub mode, and only that one object."""

    def test_only_in_stub_mode(self) -> None:
        for mode in ("off", "replace"):
            with self.subTest(mode=mode):
                rendered = render({"dns": {"mode": mode}})
                self.assertEqual(in_namespace(rendered, "Role", "kube-system"), [])
                self.assertEqual(in_namespace(rendered, "RoleBinding", "kube-system"), [])
                self.assertEqual(rendered.of_kind("Job"), [])

    def test_stub_mode_role_and_uninstall_hook(self) -> None:
        rendered = render(variant_values())
        roles = in_namespace(rendered, "Role", "kube-system")
        self.assertEqual({r.name for r in roles}, {"corridor-controller-coredns", "corridor-coredns-hook"})
        for role in roles:
            with self.subTest(role=role.name):
                self.assertEqual(
                    {(g, r, names) for g, r, _, names in grants(role)}, {("", "configmaps", ("coredns",))}
                )
        controller_role = next(r for r in roles if r.name == "corridor-controller-coredns")
        self.assertEqual(bound_to(rendered, controller_role), [f"{NAMESPACE}/corridor-controller"])
        self.assertNotIn("helm.sh/hook", controller_role.annotations)
        (hook,) = [j for j in rendered.of_kind("Job") if "helm.sh/hook" in j.annotations]
        self.assertIn("pre-delete", hook.annotations["helm.sh/hook"].split(","))
        (c,) = hook.pod_spec()["containers"]
        self.assertEqual(c["command"], ["/usr/local/bin/corridor-controller"])
        flags = args_of(c)
        self.assertIn("--uninstall-coredns-hook", flags)
        self.assertEqual(flags["--coredns-configmap"], ["kube-system/coredns"])
        # The hook's RBAC exists during the hook (created before the Job, same phases).
        account = hook.pod_spec()["serviceAccountName"]
        hook_role = next(r for r in roles if r.name == "corridor-coredns-hook")
        self.assertEqual(bound_to(rendered, hook_role), [f"{NAMESPACE}/{account}"])
        for m in [hook_role, rendered.one("ServiceAccount", account)]:
            self.assertEqual(m.annotations["helm.sh/hook"], hook.annotations["helm.sh/hook"])
            self.assertLess(int(m.annotations["helm.sh/hook-weight"]), int(hook.annotations["helm.sh/hook-weight"]))


class Toggles(unittest.TestCase):
    def test_pdbs_and_hpa(self) -> None:
        rendered = render()
        pdbs = {p.name: p for p in rendered.of_kind("PodDisruptionBudget")}
        self.assertEqual(set(pdbs), {"corridor-gateway", "corridor-controller", "corridor-dns"})
        for name, pdb in pdbs.items():
            pods = rendered.one("Deployment", name).obj["spec"]["template"]["metadata"]["labels"]
            selector = pdb.obj["spec"]["selector"]["matchLabels"]
            self.assertEqual({k: pods.get(k) for k in selector}, selector, name)
        self.assertEqual(rendered.of_kind("HorizontalPodAutoscaler"), [])
        self.assertEqual(rendered.one("Deployment", "corridor-gateway").obj["spec"]["replicas"], 3)

        rendered = render({"gateway": {"pdb": {"enabled": False}, "autoscaling": {"enabled": True}}})
        self.assertNotIn("corridor-gateway", {p.name for p in rendered.of_kind("PodDisruptionBudget")})
        (hpa,) = rendered.of_kind("HorizontalPodAutoscaler")
        self.assertEqual(hpa.obj["spec"]["scaleTargetRef"]["name"], "corridor-gateway")
        self.assertEqual([m["type"] for m in hpa.obj["spec"]["metrics"]], ["Resource"])
        # The HPA owns the replica count; a fixed one would fight it on every upgrade.
        self.assertNotIn("replicas", rendered.one("Deployment", "corridor-gateway").obj["spec"])

    def test_hpa_on_requests_per_second(self) -> None:
        (hpa,) = render(variant_values()).of_kind("HorizontalPodAutoscaler")
        (pods,) = [m["pods"] for m in hpa.obj["spec"]["metrics"] if m["type"] == "Pods"]
        self.assertEqual(pods["metric"]["name"], "corridor_gateway_requests_per_second")
        self.assertEqual(pods["target"], {"type": "AverageValue", "averageValue": "2500"})

    def test_crds_skipped_on_request(self) -> None:
        self.assertEqual(len(render().of_kind("CustomResourceDefinition")), 6)
        self.assertEqual(render({"crds": {"install": False}}).of_kind("CustomResourceDefinition"), [])
        for crd in render().of_kind("CustomResourceDefinition"):
            self.assertEqual(crd.annotations.get("helm.sh/resource-policy"), "keep")


class NetworkPolicies(unittest.TestCase):
    def policy(self, rendered: Rendered, component: str) -> list[dict]:
        return rendered.one("NetworkPolicy", f"corridor-{component}").obj["spec"]["ingress"]

    def test_xds_only_from_gateway_and_dns(self) -> None:
        rendered = render()
        (xds,) = [r for r in self.policy(rendered, "controller") if r["ports"][0]["port"] == 15010]
        sources = [peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for peer in xds["from"]]
        self.assertEqual(sorted(sources), ["corridor-dns", "corridor-gateway"])
        self.assertTrue(all(set(peer) == {"podSelector"} for peer in xds["from"]))

    def test_traffic_open_and_metrics_restricted(self) -> None:
        rendered = render()
        monitoring = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
        for component, open_ports, metrics in (
            ("gateway", [("TCP", 20000, 59999)], 15020),
            ("dns", [("UDP", 5353, None), ("TCP", 5353, None)], 9153),
            ("controller", [], 15014),
        ):
            with self.subTest(component=component):
                rules = self.policy(rendered, component)
                anyone = [
                    (p["protocol"], p["port"], p.get("endPort")) for r in rules if "from" not in r for p in r["ports"]
                ]
                self.assertEqual(anyone, open_ports)
                (scrape,) = [r for r in rules if r["ports"][0]["port"] == metrics]
                self.assertEqual(scrape["from"], monitoring)
        rendered = render({"networkPolicy": {"metricsFrom": []}})
        (scrape,) = [r for r in self.policy(rendered, "controller") if r["ports"][0]["port"] == 15014]
        self.assertNotIn("from", scrape)
        self.assertEqual(render({"networkPolicy": {"enabled": False}}).of_kind("NetworkPolicy"), [])


if __name__ == "__main__":
    unittest.main()
