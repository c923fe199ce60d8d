#!/usr/bin/env python3
"""A Dubbo2 client for Corridor's end-to-end tests: PyPI `dubbo-python`'s DubboClient,
connected directly to --target (no registry).

Makes --repeat calls of `<interface>.<method>(arg)` with the service version --version,
all over the library's one pooled connection to the target, and prints one JSON object
on stdout, exiting 0 whatever the calls' outcomes were:
  {"calls": [{"value": <the result>} | {"error": {"type", "message"}}]}

dubbo-python writes exactly three attachments (path, interface, version); its API has no
way to add others, so the service version is what a caller can vary to be routed.
"""

import argparse
import json
import logging
import sys

from dubbo.client import DubboClient


def error_of(err):
    return {"type": type(err).__name__, "message": str(err).strip()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, help="HOST:PORT")
    parser.add_argument("--interface", default="org.apache.dubbo.demo.DemoService")
    parser.add_argument("--method", default="sayHello")
    parser.add_argument("--arg", default="world", help="the one string argument")
    parser.add_argument("--version", default="1.0.0", help="the service version (an attachment)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=10.0, help="per call, seconds")
    args = parser.parse_args()
    # The library logs every failed call with its stack on the root logger; the JSON
    # carries the outcome, so keep stderr for real problems.
    logging.getLogger("python-dubbo").setLevel(logging.CRITICAL)

    client = DubboClient(args.interface, version=args.version, host=args.target)
    calls = []
    for _ in range(args.repeat):
        try:
            calls.append({"value": client.call(args.method, args.arg, timeout=args.timeout)})
        except Exception as err:  # every failure is an outcome the test asserts on
            calls.append({"error": error_of(err)})
    print(json.dumps({"calls": calls}, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
