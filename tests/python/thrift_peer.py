#!/usr/bin/env python3
"""A Thrift client for Corridor's end-to-end tests, built on the Apache Thrift Python
library (PyPI `thrift`) with no generated code.

It opens one connection to --target with the chosen transport and protocol, then makes
the calls given by --call/--oneway in order (all of them --repeat times) on that one
client, as code generated from this IDL would:

    service Echo {
        string <method>(1: string s)
        oneway void <method>(1: string s)
    }

A two-way call writes CALL `<method>` with the args struct {1: STRING s}, then reads the
reply: an EXCEPTION message is read as a TApplicationException and raised, a REPLY's
result struct field 0 is the value. A oneway call writes ONEWAY and reads nothing.

Prints one JSON object on stdout and exits 0 whatever the calls' outcomes were:
  {"calls": [{"method", "type": "call"|"oneway", "seqid",
              "value"?: str,                          # the result, for a REPLY
              "reply"?: {"name", "seqid", "type"},    # the answer's message header
              "headers"?: {k: v},                     # THeader answer headers
              "header_protocol"?: "binary"|"compact", # THeader answer sub-protocol
              "error"?: {"type", "message", "kind"?}}]}
"""

import argparse
import json
import sys

from thrift.Thrift import TApplicationException, TMessageType, TType
from thrift.protocol import TBinaryProtocol, TCompactProtocol
from thrift.protocol.THeaderProtocol import THeaderProtocol
from thrift.transport import TSocket, TTransport
from thrift.transport.THeaderTransport import THeaderClientType, THeaderSubprotocolID

# The Thrift message type names the JSON output uses.
MESSAGE_TYPES = {
    TMessageType.CALL: "call",
    TMessageType.REPLY: "reply",
    TMessageType.EXCEPTION: "exception",
    TMessageType.ONEWAY: "oneway",
}

# THeader sub-protocol ids by name.
SUBPROTOCOLS = {THeaderSubprotocolID.BINARY: "binary", THeaderSubprotocolID.COMPACT: "compact"}


class ReplyError(Exception):
    """A reply that is not the answer to the call just made."""


def open_client(args):
    """(transport, protocol) for --transport/--protocol, connected to --target."""
    host, _, port = args.target.rpartition(":")
    socket = TSocket.TSocket(host, int(port))
    socket.setTimeout(int(args.timeout * 1000))
    if args.transport == "header":
        sub = THeaderSubprotocolID.COMPACT if args.protocol == "compact" else THeaderSubprotocolID.BINARY
        # Only THeader answers are acceptable: a framed or unframed answer to a THeader
        # call is a gateway bug the client must report, not adapt to.
        protocol = THeaderProtocol(socket, [THeaderClientType.HEADERS], sub)
        transport = protocol.trans
    else:
        if args.transport == "framed":
            transport = TTransport.TFramedTransport(socket)
        else:
            transport = TTransport.TBufferedTransport(socket)
        if args.protocol == "compact":
            protocol = TCompactProtocol.TCompactProtocol(transport)
        else:
            protocol = TBinaryProtocol.TBinaryProtocol(transport)
    transport.open()
    return transport, protocol


def write_call(protocol, method, arg, message_type, seqid, headers):
    if headers:
        for key, value in headers.items():
            protocol.set_header(key.encode(), value.encode())
    protocol.writeMessageBegin(method, message_type, seqid)
    protocol.writeStructBegin(f"{method}_args")
    protocol.writeFieldBegin("s", TType.STRING, 1)
    protocol.writeString(arg)
    protocol.writeFieldEnd()
    protocol.writeFieldStop()
    protocol.writeStructEnd()
    protocol.writeMessageEnd()
    protocol.trans.flush()


def read_reply(protocol, record):
    """Reads the answer to a two-way call into `record`; raises what the client raises."""
    name, message_type, seqid = protocol.readMessageBegin()
    record["reply"] = {"name": name, "seqid": seqid, "type": MESSAGE_TYPES.get(message_type, str(message_type))}
    if isinstance(protocol, THeaderProtocol):
        # The sub-protocol the answer was written in (THeader names it per message).
        record["header_protocol"] = SUBPROTOCOLS.get(protocol.trans.protocol_id, str(protocol.trans.protocol_id))
        record["headers"] = {
            k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in protocol.get_headers().items()
        }
    if message_type == TMessageType.EXCEPTION:
        error = TApplicationException()
        error.read(protocol)
        protocol.readMessageEnd()
        raise error
    if message_type != TMessageType.REPLY:
        raise ReplyError(f"message type {message_type} in answer to a call")
    value = None
    protocol.readStructBegin()
    while True:
        _, field_type, field_id = protocol.readFieldBegin()
        if field_type == TType.STOP:
            break
        if field_id == 0 and field_type == TType.STRING:
            value = protocol.readString()
        else:
            protocol.skip(field_type)
        protocol.readFieldEnd()
    protocol.readStructEnd()
    protocol.readMessageEnd()
    if value is None:
        # What generated code raises for a result struct without a success field.
        raise TApplicationException(TApplicationException.MISSING_RESULT, f"{name} failed: unknown result")
    return value


def error_of(err):
    error = {"type": type(err).__name__, "message": str(getattr(err, "message", "") or err)}
    if hasattr(err, "type"):
        error["kind"] = err.type
    return error


def run(args, protocol):
    headers = dict(h.split("=", 1) for h in args.header)
    calls = []
    seqid = 0
    for _ in range(args.repeat):
        for kind, method, arg in args.steps:
            seqid += 1
            record = {"method": method, "type": kind, "seqid": seqid}
            try:
                message_type = TMessageType.ONEWAY if kind == "oneway" else TMessageType.CALL
                write_call(protocol, method, arg, message_type, seqid, headers)
                if kind == "call":
                    record["value"] = read_reply(protocol, record)
            except Exception as err:  # every failure is an outcome the test asserts on
                record["error"] = error_of(err)
            calls.append(record)
    return calls


class Step(argparse.Action):
    """--call/--oneway METHOD=ARG, kept in command-line order."""

    def __call__(self, parser, namespace, value, option_string=None):
        method, sep, arg = value.partition("=")
        if not sep:
            parser.error(f"{option_string} wants METHOD=ARG, got {value!r}")
        steps = getattr(namespace, "steps", None) or []
        steps.append(("oneway" if option_string == "--oneway" else "call", method, arg))
        namespace.steps = steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, help="HOST:PORT")
    parser.add_argument("--transport", choices=["framed", "buffered", "header"], default="framed")
    parser.add_argument("--protocol", choices=["binary", "compact"], default="binary")
    parser.add_argument("--call", action=Step, dest="steps", metavar="METHOD=ARG", help="a two-way call")
    parser.add_argument("--oneway", action=Step, dest="steps", metavar="METHOD=ARG", help="a oneway call")
    parser.add_argument("--header", action="append", default=[], metavar="K=V", help="THeader header on every call")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=10.0, help="socket timeout, seconds")
    args = parser.parse_args()
    if not args.steps:
        parser.error("nothing to do: give --call or --oneway")
    try:
        transport, protocol = open_client(args)
    except Exception as err:
        print(json.dumps({"connect_error": error_of(err)}), flush=True)
        return 0
    try:
        calls = run(args, protocol)
    finally:
        transport.close()
    print(json.dumps({"calls": calls}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
