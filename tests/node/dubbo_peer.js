#!/usr/bin/env node
// A Dubbo consumer built on npm dubbo2.js, run by Corridor's end-to-end tests.
//
//   node dubbo_peer.js --target HOST:PORT [--interface I] [--method M]
//       [--arg S | --prefix P --count N] [--concurrency C]
//       [--group G] [--version V] [--timeout SECONDS]
//
// Calls M(arg) on interface I through dubbo2.js's DirectlyDubbo, which keeps ONE socket to
// the target and multiplexes every call on it by request id. With --prefix, makes N calls
// with the arguments P0 .. P(N-1), at most C of them in flight at once. The group and the
// version are passed to proxyService, so dubbo2.js sends them as attachments.
//
// Prints one JSON object on stdout:
//   {"connections": <TCP connections opened>,
//    "calls": [{"arg": "...", "value": <the answer> | null,
//               "error": null | {"type": "<error class>", "message": "..."}}, ...],
//    "completed": [<indices of the calls in the order their outcome arrived>]}
// Every outcome is reported as dubbo2.js delivered it: a value, or the error it raised.
// Modules resolve through NODE_PATH (the test runner points it at $CORRIDOR_NODE).

'use strict';

const net = require('net');

// Count the TCP connections the library opens, so a test can check that its calls were
// multiplexed on one socket. Observation only: the connect itself is unchanged.
let connections = 0;
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  this.once('connect', () => {
    connections += 1;
  });
  return connect.apply(this, args);
};

const { DirectlyDubbo, java } = require('dubbo2.js');
// The library's own trace events (connects, closes, retries) go to stderr, where the test
// runner shows them when a test fails.
require('dubbo2.js/es7/util').msg.on('sys:trace', (event) => {
  process.stderr.write(`dubbo2.js ${event.type}: ${event.msg}\n`);
});

// The Dubbo protocol version written in each request (Dubbo 2.7's).
const DUBBO_VERSION = '2.0.2';
// dubbo2.js's own per-call timeout when --timeout is not given, in seconds: long enough
// that a gateway answer (or its own timeout) always comes first in the tests.
const DEFAULT_TIMEOUT_SECS = 20;

function parseArgs(argv) {
  const opts = {
    interface: 'org.apache.dubbo.demo.DemoService',
    method: 'sayHello',
    arg: 'world',
    prefix: null,
    count: 1,
    concurrency: 1,
    group: undefined,
    version: undefined,
    timeout: DEFAULT_TIMEOUT_SECS,
  };
  const numeric = new Set(['count', 'concurrency', 'timeout']);
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (!flag.startsWith('--') || value === undefined) {
      throw new Error(`bad argument ${flag} (flags are --name value)`);
    }
    const name = flag.slice(2);
    if (!(name in opts) && name !== 'target') {
      throw new Error(`unknown flag ${flag}`);
    }
    opts[name] = numeric.has(name) ? Number(value) : value;
  }
  if (!opts.target) {
    throw new Error('--target HOST:PORT is required');
  }
  for (const name of numeric) {
    if (!Number.isFinite(opts[name]) || opts[name] <= 0) {
      throw new Error(`--${name} must be a positive number`);
    }
  }
  return opts;
}

function describe(err) {
  return {
    type: (err && err.constructor && err.constructor.name) || typeof err,
    message: err && err.message !== undefined ? String(err.message) : String(err),
  };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const dubbo = DirectlyDubbo.from({
    dubboAddress: opts.target,
    dubboVersion: DUBBO_VERSION,
    dubboInvokeTimeout: opts.timeout,
  });
  const service = dubbo.proxyService({
    dubboInterface: opts.interface,
    group: opts.group,
    version: opts.version,
    methods: {
      [opts.method](text) {
        return [java.String(text)];
      },
    },
  });

  const args = opts.prefix === null
    ? [opts.arg]
    : Array.from({ length: opts.count }, (_, i) => `${opts.prefix}${i}`);
  const calls = new Array(args.length);
  const completed = [];
  let next = 0;
  // A pool of `concurrency` workers, each taking the next argument when its call ends.
  async function worker() {
    while (next < args.length) {
      const index = next++;
      const { res, err } = await service[opts.method](args[index]);
      calls[index] = {
        arg: args[index],
        value: err ? null : res,
        error: err ? describe(err) : null,
      };
      completed.push(index);
    }
  }
  const workers = Math.min(opts.concurrency, args.length);
  await Promise.all(Array.from({ length: workers }, worker));
  return `${JSON.stringify({ connections, calls, completed })}\n`;
}

main().then(
  // Exit once the JSON is out: the socket (and dubbo2.js's heartbeat timer) would keep
  // node alive.
  (json) => process.stdout.write(json, () => process.exit(0)),
  (err) => {
    process.stderr.write(`dubbo_peer.js: ${err && err.stack ? err.stack : err}\n`);
    process.exit(2);
  },
);
