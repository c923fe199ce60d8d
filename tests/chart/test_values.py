"""values.schema.json and the templates' own guards turn wrong values into an error that
names the value, before anything reaches a cluster (helm install, template and lint all
validate against the schema)."""

from __future__ import annotations

import unittest

import helm_python as helm

from rendered import OLDEST_KUBE, lint, render


class Schema(unittest.TestCase):
    #: (values, the path and words the error must carry)
    WRONG = [
        ({"gateway": {"replicas": "three"}}, "/gateway/replicas", "want integer"),
        ({"gateway": {"replicas": 0}}, "/gateway/replicas", "minimum"),
        ({"dns": {"mode": "on"}}, "/dns/mode", "one of"),
        # `mode: off` unquoted in a values file is YAML 1.1's false.
        ({"dns": {"mode": False}}, "/dns/mode", "want string"),
        ({"dns": {"replicas": 1}}, "/dns/replicas", "minimum"),
        ({"dns": {"port": 53}}, "/dns/port", "minimum"),
        ({"gateway": {"podAntiAffinity": "always"}}, "/gateway/podAntiAffinity", "one of"),
        ({"gateway": {"autoscaling": {"enabled": "yes"}}}, "/gateway/autoscaling/enabled", "want boolean"),
        ({"gateway": {"replica": 3}}, "/gateway", "additional properties 'replica'"),
        ({"controler": {"replicas": 2}}, "", "additional properties 'controler'"),
        ({"loadTest": {"protocol": "kafka"}}, "/loadTest/protocol", "one of"),
        ({"loadTest": {"enabled": True, "protocol": "grpc", "target": "g:50051", "method": "Greeter/Hello"}},
         "/loadTest/method", "pattern"),
        ({"loadTest": {"enabled": True, "protocol": "grpc", "target": "g:50051"}}, "/loadTest/method", "pattern"),
        ({"loadTest": {"duration": "2 minutes"}}, "/loadTest/duration", "pattern"),
        ({"gateway": {"pdb": {"maxUnavailable": "one"}}}, "/gateway/pdb/maxUnavailable", ""),
    ]

    def test_wrong_values_fail_render(self) -> None:
        for values, path, words in self.WRONG:
            with self.subTest(values=values):
                with self.assertRaises(helm.HelmValuesError) as caught:
                    render(values)
                message = str(caught.exception)
                self.assertIn(f"at '{path}'", message)
                self.assertIn(words, message)

    def test_wrong_type_fails_lint(self) -> None:
        errors = lint({"gateway": {"replicas": "three"}}, OLDEST_KUBE)
        self.assertTrue(any("/gateway/replicas" in e and "want integer" in e for e in errors), errors)

    def test_right_values_pass(self) -> None:
        # The same keys, well typed: the schema is strict, not unusable.
        render({
            "gateway": {"replicas": 5, "podAntiAffinity": "hard", "pdb": {"maxUnavailable": "25%"}},
            "dns": {"mode": "replace", "replicas": 3, "port": 10053},
            "loadTest": {"protocol": "dns", "duration": "1m30s", "names": "a.example,b.example"},
        })


class Guards(unittest.TestCase):
    """Combinations a schema cannot see, refused by the templates with a reason."""

    def assert_refused(self, values: dict, words: str) -> None:
        with self.assertRaises(helm.HelmRenderError) as caught:
            render(values)
        self.assertIn(words, str(caught.exception))

    def test_grace_period_shorter_than_drain(self) -> None:
        self.assert_refused(
            {"gateway": {"terminationGracePeriodSeconds": 20, "drain": {"preStopSleepSeconds": 5, "timeoutSeconds": 15}}},
            "must exceed",
        )

    def test_autoscaling_bounds(self) -> None:
        self.assert_refused(
            {"gateway": {"autoscaling": {"enabled": True, "minReplicas": 10, "maxReplicas": 5}}}, "above maxReplicas"
        )

    def test_load_test_needs_a_target(self) -> None:
        self.assert_refused({"loadTest": {"enabled": True}}, "loadTest.target is required")
        self.assert_refused(
            {"loadTest": {"enabled": True, "protocol": "dubbo", "target": "orders:20880", "method": "get"}},
            "loadTest.interface is required",
        )
        self.assert_refused({"loadTest": {"enabled": True, "protocol": "dns", "target": "10.0.0.10:53"}},
                            "loadTest.names is required")


if __name__ == "__main__":
    unittest.main()
