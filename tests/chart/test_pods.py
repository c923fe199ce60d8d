"""What the chart promises about its pods: hardened containers, and components wired to
each other the way the binaries expect (the gateway selector, xDS and probe ports, the
drain order, DNS on an unprivileged port)."""

from __future__ import annotations

import unittest

import helm_python as helm

from rendered import CHART, NAMESPACE, SERVICE_MONITOR_API, Rendered, args_of, render, variant_values

#: The image every container runs: corridor/corridor:<appVersion>.
with helm.Chart.load(CHART) as _chart:
    IMAGE = f"corridor/corridor:{_chart.metadata['appVersion']}"


def variant() -> Rendered:
    return render(variant_values(), api_versions=(SERVICE_MONITOR_API,))


def container(rendered: Rendered, deployment: str) -> dict:
    """The one container of a Deployment."""
    (only,) = rendered.one("Deployment", deployment).pod_spec()["containers"]
    return only


def port_number(container: dict, port: int | str) -> int:
    """A probe's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return number


def address_port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


class Hardening(unittest.TestCase):
    """Every container of every pod: non-root, read-only root, no capabilities, no
    privilege escalation, RuntimeDefault seccomp, bounded resources, the one image."""

    def test_every_container_is_hardened(self) -> None:
        for name, rendered, want in (("default", render(), 3), ("variant", variant(), 5)):
            containers = list(rendered.containers())
            self.assertEqual(len(containers), want, name)  # the loop below saw them all
            for owner, spec, c in containers:
                with self.subTest(values=name, pod=repr(owner), container=c["name"]):
                    pod = spec["securityContext"]
                    self.assertIs(pod["runAsNonRoot"], True)
                    self.assertNotEqual(pod.get("runAsUser"), 0)
                    self.assertEqual(pod["seccompProfile"], {"type": "RuntimeDefault"})
                    sc = c["securityContext"]
                    self.assertIs(sc["runAsNonRoot"], True)
                    self.assertIs(sc["readOnlyRootFilesystem"], True)
                    self.assertIs(sc["allowPrivilegeEscalation"], False)
                    self.assertEqual(sc["capabilities"], {"drop": ["ALL"]})
                    self.assertEqual(sc["seccompProfile"], {"type": "RuntimeDefault"})
                    self.assertNotIn("privileged", sc)
                    for host in ("hostNetwork", "hostPID", "hostIPC"):
                        self.assertNotIn(host, spec)
                    # Without NET_BIND_SERVICE nothing below 1024 can be bound.
                    for port in c.get("ports", []):
                        self.assertGreaterEqual(port["containerPort"], 1024, port)
                    for kind in ("requests", "limits"):
                        self.assertEqual(set(c["resources"][kind]), {"cpu", "memory"})
                    self.assertEqual(c["image"], IMAGE)
                    self.assertRegex(c["command"][0], r"^/usr/local/bin/corridor-(gateway|controller|dns|load)$")

    def test_only_the_controller_gets_an_api_token(self) -> None:
        for owner, spec, _ in variant().containers():
            with self.subTest(pod=repr(owner)):
                if spec.get("serviceAccountName") in ("corridor-controller", "corridor-coredns-hook"):
                    self.assertNotIn("automountServiceAccountToken", spec)
                else:
                    self.assertIs(spec["automountServiceAccountToken"], False)


class GatewaySelector(unittest.TestCase):
    """The controller's --gateway-selector picks the gateway pods and nothing else: its
    address Services select them and their readiness drives DNS fail-open."""

    def test_selector_matches_gateway_pods_only(self) -> None:
        for rendered in (render(), variant()):
            (selector,) = args_of(container(rendered, "corridor-controller"))["--gateway-selector"]
            wanted = dict(pair.split("=", 1) for pair in selector.split(","))
            self.assertIn("app.kubernetes.io/name", wanted)
            gateway = rendered.one("Deployment", "corridor-gateway").obj
            labels = gateway["spec"]["template"]["metadata"]["labels"]
            self.assertEqual({k: labels.get(k) for k in wanted}, wanted)
            # The Deployment owns exactly the pods the controller counts.
            self.assertEqual(gateway["spec"]["selector"]["matchLabels"], wanted)
            for owner, _, _ in rendered.containers():
                if owner.name != "corridor-gateway":
                    other = owner.obj["spec"]["template"]["metadata"]["labels"]
                    self.assertNotEqual({k: other.get(k) for k in wanted}, wanted, owner)


class Controller(unittest.TestCase):
    """The controller's flags agree with the objects the chart renders around it."""

    def test_cluster_mode_flags(self) -> None:
        rendered = variant()
        deployment = rendered.one("Deployment", "corridor-controller")
        c = container(rendered, "corridor-controller")
        flags = args_of(c)
        self.assertEqual(deployment.obj["spec"]["replicas"], 2)
        self.assertIn("--kubernetes", flags)
        self.assertNotIn("--manifests", flags)
        self.assertEqual(flags["--namespace"], [NAMESPACE])
        self.assertEqual(flags["--dns-mode"], ["stub"])
        self.assertEqual(flags["--coredns-configmap"], ["kube-system/coredns"])
        self.assertEqual(flags["--lease-name"], ["corridor-controller"])
        # The Service the stub server block forwards to is the chart's DNS Service.
        (dns_service,) = flags["--dns-service"]
        rendered.one("Service", dns_service)
        # The leader identity comes from the downward API.
        self.assertEqual(flags["--pod-name"], ["$(POD_NAME)"])
        (pod_name,) = [e for e in c["env"] if e["name"] == "POD_NAME"]
        self.assertEqual(pod_name["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name")
        # The address Services' target ports are the ports the NetworkPolicy opens.
        (ports,) = flags["--gateway-ports"]
        policy = rendered.one("NetworkPolicy", "corridor-gateway").obj["spec"]["ingress"][0]
        (opened,) = policy["ports"]
        self.assertEqual(ports, f"{opened['port']}-{opened['endPort']}")
        # xDS: the Service port the gateway and dns pods dial is the one it listens on.
        (xds,) = flags["--xds-listen"]
        service = rendered.one("Service", "corridor-controller").obj["spec"]["ports"]
        self.assertIn(address_port(xds), [p["port"] for p in service if p["name"] == "grpc-xds"])
        (probe,) = flags["--probe-listen"]
        self.assertEqual(address_port(probe), 15014)
        for kind, path in (("readinessProbe", "/ready"), ("livenessProbe", "/healthz")):
            self.assertEqual(c[kind]["httpGet"]["path"], path)
            self.assertEqual(port_number(c, c[kind]["httpGet"]["port"]), 15014)

    def test_xds_clients_dial_the_controller_service(self) -> None:
        rendered = render()
        for deployment in ("corridor-gateway", "corridor-dns"):
            c = container(rendered, deployment)
            (xds,) = [e["value"] for e in c["env"] if e["name"] == "CORRIDOR_XDS"]
            # The kubelet's service variable of the Service named corridor-controller.
            self.assertEqual(xds, "$(CORRIDOR_CONTROLLER_SERVICE_HOST):15010", deployment)
            self.assertIs(rendered.one("Deployment", deployment).pod_spec()["enableServiceLinks"], True)
        rendered.one("Service", "corridor-controller")


class Gateway(unittest.TestCase):
    def test_probes_and_admin(self) -> None:
        c = container(render(), "corridor-gateway")
        flags = args_of(c)
        self.assertEqual(flags["--probe-listen"], ["0.0.0.0:15020"])
        # The full admin API (drain, config_dump) never leaves the pod.
        self.assertEqual(flags["--admin"], ["127.0.0.1:15000"])
        self.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/ready")
        self.assertEqual(port_number(c, c["readinessProbe"]["httpGet"]["port"]), 15020)
        self.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/healthz")

    def test_drain_fits_in_the_grace_period(self) -> None:
        for rendered in (render(), variant()):
            spec = rendered.one("Deployment", "corridor-gateway").pod_spec()
            (c,) = spec["containers"]
            sleep = c["lifecycle"]["preStop"]["sleep"]["seconds"]
            (drain,) = args_of(c)["--drain-timeout"]
            self.assertRegex(drain, r"^[0-9]+s$")
            self.assertGreater(spec["terminationGracePeriodSeconds"], sleep + int(drain[:-1]))

    def test_spread_over_zones_and_nodes(self) -> None:
        spec = variant().one("Deployment", "corridor-gateway").pod_spec()
        keys = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
        self.assertEqual(keys, {"topology.kubernetes.io/zone", "kubernetes.io/hostname"})
        anti = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        self.assertEqual(anti[0]["topologyKey"], "kubernetes.io/hostname")
        default = render().one("Deployment", "corridor-gateway").pod_spec()["affinity"]
        self.assertIn("preferredDuringSchedulingIgnoredDuringExecution", default["podAntiAffinity"])


    def test_zone_is_off_fixed_or_the_pods_own(self) -> None:
        c = container(render(), "corridor-gateway")
        self.assertNotIn("--zone", args_of(c))
        self.assertNotIn("CORRIDOR_ZONE", [e["name"] for e in c["env"]])
        fixed = container(render({"gateway": {"zone": "eu-west-1a"}}), "corridor-gateway")
        self.assertEqual(args_of(fixed)["--zone"], ["eu-west-1a"])
        auto = container(render({"gateway": {"zone": "auto"}}), "corridor-gateway")
        self.assertNotIn("--zone", args_of(auto))
        (zone,) = [e for e in auto["env"] if e["name"] == "CORRIDOR_ZONE"]
        path = zone["valueFrom"]["fieldRef"]["fieldPath"]
        self.assertEqual(path, "metadata.labels['topology.kubernetes.io/zone']")


class Dns(unittest.TestCase):
    def test_unprivileged_port_behind_port_53(self) -> None:
        rendered = render()
        deployment = rendered.one("Deployment", "corridor-dns")
        self.assertGreaterEqual(deployment.obj["spec"]["replicas"], 2)
        spec = deployment.pod_spec()
        # Upstream names must not come back to cluster DNS, i.e. to corridor-dns itself.
        self.assertEqual(spec["dnsPolicy"], "Default")
        c = container(rendered, "corridor-dns")
        flags = args_of(c)
        self.assertEqual(flags["--listen"], ["0.0.0.0:5353"])
        self.assertEqual(flags["--zone"], ["cluster.local"])
        service = rendered.one("Service", "corridor-dns").obj["spec"]["ports"]
        for protocol in ("UDP", "TCP"):
            (port,) = [p for p in service if p["protocol"] == protocol and p["port"] == 53]
            target = [cp for cp in c["ports"] if cp["name"] == port["targetPort"]]
            self.assertEqual([(t["containerPort"], t["protocol"]) for t in target], [(5353, protocol)])
        self.assertEqual(port_number(c, c["readinessProbe"]["httpGet"]["port"]), 8181)
        self.assertEqual(port_number(c, c["livenessProbe"]["httpGet"]["port"]), 8080)

    def test_upstreams_and_fixed_cluster_ip(self) -> None:
        rendered = render({"dns": {"mode": "replace", "upstreams": ["10.0.0.2"], "service": {"clusterIP": "10.96.0.10"}}})
        self.assertEqual(args_of(container(rendered, "corridor-dns"))["--upstream"], ["10.0.0.2"])
        self.assertEqual(rendered.one("Service", "corridor-dns").obj["spec"]["clusterIP"], "10.96.0.10")


class LoadTest(unittest.TestCase):
    def test_each_protocol(self) -> None:
        # `corridor-load <protocol> --target ... --json` with each protocol's own flags.
        cases = {
            "http": ({"target": "http://web.shop:8080/"}, {"--target": ["http://web.shop:8080/"]}),
            "grpc": ({"target": "greeter.shop:50051", "method": "/shop.Greeter/Hello"},
                     {"--target": ["greeter.shop:50051"], "--method": ["/shop.Greeter/Hello"]}),
            "dubbo": ({"target": "orders.shop:20880", "interface": "com.shop.Orders", "method": "get"},
                      {"--target": ["orders.shop:20880"], "--interface": ["com.shop.Orders"], "--method": ["get"]}),
            "thrift": ({"target": "cart.shop:9090", "method": "add"}, {"--target": ["cart.shop:9090"], "--method": ["add"]}),
            "redis": ({"target": "cache.shop:6379"}, {"--target": ["cache.shop:6379"]}),
            "dns": ({"target": "10.96.0.10:53", "names": "web.shop.svc.cluster.local,cart.shop.svc.cluster.local"},
                    {"--target": ["10.96.0.10:53"], "--names": ["web.shop.svc.cluster.local,cart.shop.svc.cluster.local"]}),
        }
        own_flags = {"--interface", "--method", "--names"}
        for protocol, (values, want) in cases.items():
            with self.subTest(protocol=protocol):
                load = {"enabled": True, "protocol": protocol, "rate": 500, "duration": "30s", "connections": 8, **values}
                (job,) = [j for j in render({"loadTest": load}).of_kind("Job")]
                (c,) = job.pod_spec()["containers"]
                self.assertEqual(c["command"], ["/usr/local/bin/corridor-load"])
                self.assertEqual(c["args"][0], protocol)
                flags = args_of(c)
                self.assertEqual({k: flags[k] for k in want}, want)
                # No other protocol's flags (the CLI refuses unknown flags).
                self.assertEqual(own_flags & flags.keys(), own_flags & want.keys())
                self.assertEqual(flags["--rate"], ["500"])
                self.assertEqual(flags["--duration"], ["30s"])
                self.assertEqual(flags["--connections"], ["8"])
                self.assertEqual(flags["--json"], [""])
                self.assertNotIn("--url", flags)

    def test_extra_args_come_last_as_given(self) -> None:
        load = {"enabled": True, "target": "web.shop:8080", "extraArgs": ["--warmup=5s", "--header", "x-test: a b"]}
        (job,) = render({"loadTest": load}).of_kind("Job")
        (c,) = job.pod_spec()["containers"]
        self.assertEqual(c["args"][-3:], ["--warmup=5s", "--header", "x-test: a b"])
        self.assertEqual(c["args"][:2], ["http", "--target=web.shop:8080"])

    def test_off_by_default(self) -> None:
        self.assertEqual(render().of_kind("Job"), [])


if __name__ == "__main__":
    unittest.main()
