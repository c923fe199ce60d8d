#!/usr/bin/env python3
"""A gRPC peer for Corridor's end-to-end tests, built on grpcio with no generated code.

serve: a server implementing the service `corridor.test.Echo` with raw-bytes messages:
  /corridor.test.Echo/Unary   echoes the request; initial metadata `x-backend: <name>`,
                              trailing metadata `x-served-by: <name>`.
  /corridor.test.Echo/Stream  sends `<request>-<i>` for i in 0..count, count from the
                              request metadata `x-count` (default 3).
  Either method ends with a non-OK status when the request metadata carries `x-fail-code`
  (a numeric grpc status code) and optionally `x-fail-message`; the stream sends its
  messages first, then the status. Trailing metadata is sent in every case.
  Prints `grpc_peer bound addr=HOST:PORT` on stdout once listening.

call: calls a method against --target and prints one JSON object
  {"calls": [{"code", "details", "messages", "initial_metadata", "trailing_metadata"}]}
  (one entry per --repeat), then exits 0 whatever the calls' statuses were.
"""

import argparse
import json
import signal
import sys
import threading
from concurrent import futures

import grpc

SERVICE = "corridor.test.Echo"
# Never route test traffic through a proxy the environment may define.
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]


def metadata_dict(metadata):
    result = {}
    for item in metadata or ():
        key, value = item[0], item[1]
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        result[key] = value
    return result


def fail_status(context):
    """The (code, message) the client asked for with x-fail-code, or None."""
    md = metadata_dict(context.invocation_metadata())
    if "x-fail-code" not in md:
        return None
    number = int(md["x-fail-code"])
    code = next((c for c in grpc.StatusCode if c.value[0] == number), grpc.StatusCode.UNKNOWN)
    return code, md.get("x-fail-message", "failed on request")


def serve(args):
    name = args.name

    def unary(request, context):
        context.send_initial_metadata((("x-backend", name),))
        context.set_trailing_metadata((("x-served-by", name),))
        failure = fail_status(context)
        if failure:
            context.set_code(failure[0])
            context.set_details(failure[1])
            return b""
        return request

    def stream(request, context):
        context.send_initial_metadata((("x-backend", name),))
        context.set_trailing_metadata((("x-served-by", name),))
        md = metadata_dict(context.invocation_metadata())
        for i in range(int(md.get("x-count", "3"))):
            yield request + b"-" + str(i).encode()
        failure = fail_status(context)
        if failure:
            context.set_code(failure[0])
            context.set_details(failure[1])

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Stream": grpc.unary_stream_rpc_method_handler(stream),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"{args.host}:{args.port}")
    if port == 0:
        print(f"grpc_peer: cannot bind {args.host}:{args.port}", file=sys.stderr)
        return 1
    server.start()
    print(f"grpc_peer bound addr={args.host}:{port}", flush=True)

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop(grace=1).wait()
    return 0


def one_call(channel, args):
    metadata = [("x-count", str(args.count))]
    if args.fail_code is not None:
        metadata.append(("x-fail-code", str(args.fail_code)))
        metadata.append(("x-fail-message", args.fail_message))
    payload = args.message.encode()
    path = f"/{SERVICE}/{'Unary' if args.method == 'unary' else 'Stream'}"
    messages = []
    if args.method == "unary":
        call_fn = channel.unary_unary(path)
        try:
            response, call = call_fn.with_call(payload, metadata=metadata, timeout=args.timeout)
            messages.append(response)
            code, details = call.code(), call.details()
            initial, trailing = call.initial_metadata(), call.trailing_metadata()
        except grpc.RpcError as err:
            code, details = err.code(), err.details()
            initial, trailing = err.initial_metadata(), err.trailing_metadata()
    else:
        call = channel.unary_stream(path)(payload, metadata=metadata, timeout=args.timeout)
        try:
            for message in call:
                messages.append(message)
        except grpc.RpcError:
            pass
        code, details = call.code(), call.details()
        initial, trailing = call.initial_metadata(), call.trailing_metadata()
    return {
        "code": code.name,
        "details": details or "",
        "messages": [m.decode("utf-8", "replace") for m in messages],
        "initial_metadata": metadata_dict(initial),
        "trailing_metadata": metadata_dict(trailing),
    }


def call(args):
    with grpc.insecure_channel(args.target, options=CHANNEL_OPTIONS) as channel:
        calls = [one_call(channel, args) for _ in range(args.repeat)]
    print(json.dumps({"calls": calls}), flush=True)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--name", required=True)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    c = sub.add_parser("call")
    c.add_argument("--target", required=True)
    c.add_argument("--method", choices=["unary", "stream"], default="unary")
    c.add_argument("--message", default="hello")
    c.add_argument("--count", type=int, default=3)
    c.add_argument("--fail-code", type=int)
    c.add_argument("--fail-message", default="failed on request")
    c.add_argument("--repeat", type=int, default=1)
    c.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    return serve(args) if args.mode == "serve" else call(args)


if __name__ == "__main__":
    sys.exit(main())
