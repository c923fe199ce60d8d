#!/usr/bin/env python3
"""A DNS peer for corridor-dns's end-to-end tests, built on dnspython.

serve: an authoritative server for the names given with --record, on UDP and TCP on the
  same port (--port 0 picks a free one). Prints `dns_upstream bound addr=HOST:PORT` on
  stdout once listening, and one `query <proto> <name> <type>` line per query on stderr.
  - `--record "NAME TTL TYPE RDATA"` (repeatable) serves that record;
  - `--big-txt NAME` serves a TXT record of about 5 KB: larger than any UDP payload a
    resolver advertises in practice (4096), so a UDP reply carries TC and the resolver has
    to ask again over TCP;
  - a TXT query for `count.<name>` answers `udp=<n> tcp=<m>`: how often `<name>` (any type,
    case-insensitive) was asked over each transport. It is never counted itself and has
    TTL 0, so a test asks it directly, not through a cache;
  - every other name is NXDOMAIN with the SOA of --zone in the authority section.
  UDP replies larger than the query's payload (512 without EDNS) are truncated: TC set,
  answer section empty, as a real server does.

query: one query with dnspython's client against --server, printed as one JSON object:
  {"rcode", "flags", "answer", "authority", "additional", "edns", "payload", "options"}
  where each section is a list of [name, ttl, type, rdata]; "edns" is the response's EDNS
  version or -1 without OPT. Options: --tcp, --no-edns, --edns-version N, --payload N,
  --option CODE:HEX (repeatable, EDNS options sent with the query).
"""

import argparse
import json
import socketserver
import struct
import sys
import threading

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

# Size of each string of the --big-txt record, and how many: 20 x 250 bytes is about
# 5 KB, over the 4096-byte payload resolvers advertise at most.
BIG_TXT_STRING = 250
BIG_TXT_STRINGS = 20
# Payload a UDP query without EDNS may receive (RFC 1035).
CLASSIC_UDP_PAYLOAD = 512


class Zone:
    """The records served, the query counts, and the answer logic (shared by both transports)."""

    def __init__(self, args):
        self.origin = dns.name.from_text(args.zone)
        self.records = {}
        for text in args.record:
            name, ttl, rdtype, rdata = text.split(None, 3)
            rrset = dns.rrset.from_text(dns.name.from_text(name), int(ttl), "IN", rdtype, rdata)
            self.add(rrset)
        for name in args.big_txt:
            strings = " ".join('"%s"' % (chr(ord("a") + i % 26) * BIG_TXT_STRING) for i in range(BIG_TXT_STRINGS))
            self.add(dns.rrset.from_text(dns.name.from_text(name), 60, "IN", "TXT", strings))
        self.soa = dns.rrset.from_text(
            self.origin, 60, "IN", "SOA", "ns.%s hostmaster.%s 1 60 60 600 5" % (self.origin, self.origin)
        )
        self.counts = {}
        self.lock = threading.Lock()

    def add(self, rrset):
        key = (rrset.name.canonicalize(), rrset.rdtype)
        if key in self.records:
            self.records[key].union_update(rrset)
        else:
            self.records[key] = rrset

    def names(self):
        return {name for (name, _) in self.records}

    def answer(self, wire, proto):
        """The reply to `wire` (bytes), or None to drop it."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException as e:
            print("dropping an unparsable query: %s" % e, file=sys.stderr, flush=True)
            return None
        if not query.question:
            return None
        question = query.question[0]
        qname = question.name.canonicalize()
        print("query %s %s %s" % (proto, question.name, dns.rdatatype.to_text(question.rdtype)),
              file=sys.stderr, flush=True)
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        first = qname.labels[0] if qname.labels else b""
        if first.lower() == b"count" and question.rdtype == dns.rdatatype.TXT:
            counted = dns.name.Name(qname.labels[1:])
            with self.lock:
                udp, tcp = self.counts.get(counted, (0, 0))
            reply.answer.append(dns.rrset.from_text(question.name, 0, "IN", "TXT", '"udp=%d tcp=%d"' % (udp, tcp)))
            return reply
        with self.lock:
            udp, tcp = self.counts.get(qname, (0, 0))
            self.counts[qname] = (udp + (proto == "udp"), tcp + (proto == "tcp"))
        rrset = self.records.get((qname, question.rdtype))
        if rrset is not None:
            answer = dns.rrset.RRset(question.name, rrset.rdclass, rrset.rdtype)
            answer.update(rrset)
            answer.ttl = rrset.ttl
            reply.answer.append(answer)
        else:
            if qname not in self.names():
                reply.set_rcode(dns.rcode.NXDOMAIN)
            reply.authority.append(self.soa)
        return reply


def udp_payload(query_wire):
    try:
        query = dns.message.from_wire(query_wire)
    except dns.exception.DNSException:
        return CLASSIC_UDP_PAYLOAD
    return max(query.payload, CLASSIC_UDP_PAYLOAD) if query.edns >= 0 else CLASSIC_UDP_PAYLOAD


def serve(args):
    zone = Zone(args)

    class Udp(socketserver.BaseRequestHandler):
        def handle(self):
            data, sock = self.request
            reply = zone.answer(data, "udp")
            if reply is None:
                return
            limit = udp_payload(data)
            try:
                wire = reply.to_wire(max_size=limit)
            except dns.exception.TooBig:
                reply.answer = []
                reply.authority = []
                reply.additional = []
                reply.flags |= dns.flags.TC
                wire = reply.to_wire()
            sock.sendto(wire, self.client_address)

    class Tcp(socketserver.BaseRequestHandler):
        def handle(self):
            conn = self.request
            while True:
                head = read_exact(conn, 2)
                if head is None:
                    return
                data = read_exact(conn, struct.unpack("!H", head)[0])
                if data is None:
                    return
                reply = zone.answer(data, "tcp")
                if reply is None:
                    return
                # A TCP reply may use the whole 64 KiB whatever payload the query advertised
                # (dnspython would otherwise apply the EDNS payload here too).
                wire = reply.to_wire(max_size=65535)
                conn.sendall(struct.pack("!H", len(wire)) + wire)

    class UdpServer(socketserver.ThreadingMixIn, socketserver.UDPServer):
        daemon_threads = True

    class TcpServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
        daemon_threads = True
        allow_reuse_address = True

    # Bind UDP first (port 0 picks one), then TCP on the same number; another process may
    # hold that TCP port, so try a few times.
    for _ in range(50):
        udp = UdpServer((args.host, args.port), Udp)
        port = udp.server_address[1]
        try:
            tcp = TcpServer((args.host, port), Tcp)
            break
        except OSError:
            udp.server_close()
            if args.port != 0:
                raise
    else:
        sys.exit("no port free on both UDP and TCP")
    for server in (udp, tcp):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("dns_upstream bound addr=%s:%d" % (args.host, port), flush=True)
    threading.Event().wait()


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def rrsets(section):
    out = []
    for rrset in section:
        for rdata in rrset:
            out.append([rrset.name.to_text(), rrset.ttl, dns.rdatatype.to_text(rrset.rdtype), rdata.to_text()])
    return out


def query(args):
    host, port = args.server.rsplit(":", 1)
    options = []
    for text in args.option:
        code, data = text.split(":", 1)
        options.append(dns.edns.GenericOption(int(code), bytes.fromhex(data)))
    if args.no_edns:
        message = dns.message.make_query(args.name, args.type, use_edns=False)
    else:
        message = dns.message.make_query(args.name, args.type, use_edns=args.edns_version,
                                         payload=args.payload, options=options)
    if args.tcp:
        reply = dns.query.tcp(message, host, port=int(port), timeout=args.timeout)
    else:
        reply = dns.query.udp(message, host, port=int(port), timeout=args.timeout, ignore_trailing=False)
    print(json.dumps({
        "rcode": dns.rcode.to_text(reply.rcode()),
        "flags": dns.flags.to_text(reply.flags).split(),
        "answer": rrsets(reply.answer),
        "authority": rrsets(reply.authority),
        "additional": rrsets(reply.additional),
        "edns": reply.edns,
        "payload": reply.payload if reply.edns >= 0 else 0,
        "options": [[int(o.otype), o.to_wire().hex()] for o in reply.options],
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--zone", default="example.test.")
    s.add_argument("--record", action="append", default=[])
    s.add_argument("--big-txt", action="append", default=[])
    q = sub.add_parser("query")
    q.add_argument("--server", required=True)
    q.add_argument("--name", required=True)
    q.add_argument("--type", default="A")
    q.add_argument("--tcp", action="store_true")
    q.add_argument("--no-edns", action="store_true")
    q.add_argument("--edns-version", type=int, default=0)
    q.add_argument("--payload", type=int, default=1232)
    q.add_argument("--option", action="append", default=[])
    q.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args)
    else:
        query(args)


if __name__ == "__main__":
    main()
