#!/usr/bin/env node
// A Redis client built on npm ioredis 6, run by Corridor's end-to-end tests.
//
//   node redis_peer.js --host H --port P [--password PW [--username U]]
//       [--protocol 2|3] [--cluster] [--pipeline] [--no-reconnect] [--timeout SECONDS]
//       (--commands '[["SET","k","v"],["GET","k"]]' | -- CMD ARG ...)
//
// Connects with ioredis's DEFAULT options unless a flag says otherwise: RESP3, so the
// connection starts with HELLO 3 (carrying AUTH when a password is given), then
// CLIENT SETINFO LIB-VER and LIB-NAME. Runs the commands one after the other (or all at
// once as one ioredis pipeline with --pipeline) through `call`, so any command name works.
// --cluster uses Redis.Cluster with the host/port as its seed (MOVED/ASK followed by
// ioredis). --no-reconnect gives up on the first closed connection instead of ioredis's
// default reconnect loop, so a proxy that drops the connection fails fast.
//
// Prints one JSON object on stdout:
//   {"connections": <TCP connections opened>,
//    "replies": [{"command": [...], "value": <reply> | null,
//                 "error": null | {"name": "<error class>", "message": "..."}}, ...],
//    "events": [{"event": "error" | "close" | "reconnecting" | "ready", "message": "..."}]}
// Replies are as ioredis delivered them (strings, numbers, nulls, arrays); commands still
// pending at the deadline get the error {"name": "Timeout"}.
// Modules resolve through NODE_PATH (the test runner points it at $CORRIDOR_NODE).

'use strict';

const net = require('net');

// Count the TCP connections the library opens, so a test can check that the gateway never
// dropped one (ioredis would silently reconnect). Observation only.
let connections = 0;
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  this.once('connect', () => {
    connections += 1;
  });
  return connect.apply(this, args);
};

const Redis = require('ioredis');

// Overall bound on one run when --timeout is not given, in seconds: well inside the test
// runner's own patience, so this script always gets to print what it saw.
const DEFAULT_TIMEOUT_SECS = 20;

function parseArgs(argv) {
  const opts = {
    host: '127.0.0.1',
    port: 6379,
    password: undefined,
    username: undefined,
    protocol: undefined,
    cluster: false,
    pipeline: false,
    reconnect: true,
    timeout: DEFAULT_TIMEOUT_SECS,
    commands: [],
  };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    const value = () => {
      i += 1;
      if (i >= argv.length) throw new Error(`${flag} needs a value`);
      return argv[i];
    };
    switch (flag) {
      case '--host': opts.host = value(); break;
      case '--port': opts.port = Number(value()); break;
      case '--password': opts.password = value(); break;
      case '--username': opts.username = value(); break;
      case '--protocol': opts.protocol = Number(value()); break;
      case '--cluster': opts.cluster = true; break;
      case '--pipeline': opts.pipeline = true; break;
      case '--no-reconnect': opts.reconnect = false; break;
      case '--timeout': opts.timeout = Number(value()); break;
      case '--commands': opts.commands = opts.commands.concat(JSON.parse(value())); break;
      case '--': opts.commands.push(argv.slice(i + 1)); i = argv.length; break;
      default: throw new Error(`unknown flag ${flag}`);
    }
  }
  if (opts.commands.length === 0) throw new Error('no commands given');
  for (const command of opts.commands) {
    if (!Array.isArray(command) || command.length === 0) {
      throw new Error(`a command is a non-empty list: ${JSON.stringify(command)}`);
    }
  }
  return opts;
}

function connectionOptions(opts) {
  // Only what a flag asked for: everything else stays at ioredis's defaults.
  const options = {};
  if (opts.password !== undefined) options.password = opts.password;
  if (opts.username !== undefined) options.username = opts.username;
  if (opts.protocol !== undefined) options.protocol = opts.protocol;
  if (!opts.reconnect) {
    options.retryStrategy = () => null;
    options.maxRetriesPerRequest = 0;
  }
  return options;
}

function client(opts, events) {
  const options = connectionOptions(opts);
  const redis = opts.cluster
    ? new Redis.Cluster([{ host: opts.host, port: opts.port }], {
      redisOptions: options,
      clusterRetryStrategy: opts.reconnect ? undefined : () => null,
    })
    : new Redis({ host: opts.host, port: opts.port, ...options });
  // Without an 'error' listener ioredis prints "Unhandled error event"; record them instead.
  for (const event of ['error', 'close', 'reconnecting', 'ready']) {
    redis.on(event, (arg) => {
      const message = arg instanceof Error ? arg.message : (arg === undefined ? '' : String(arg));
      events.push({ event, message });
      if (event === 'error') process.stderr.write(`ioredis error: ${message}\n`);
    });
  }
  return redis;
}

function errorOf(err) {
  return { name: (err && err.name) || 'Error', message: (err && err.message) || String(err) };
}

async function runSequential(redis, commands, replies) {
  for (const [i, command] of commands.entries()) {
    try {
      replies[i].value = await redis.call(...command);
    } catch (err) {
      replies[i].error = errorOf(err);
    }
    replies[i].done = true;
  }
}

async function runPipeline(redis, commands, replies) {
  try {
    const results = await redis.pipeline(commands.map((c) => ['call', ...c])).exec();
    results.forEach(([err, value], i) => {
      if (err) replies[i].error = errorOf(err);
      else replies[i].value = value;
      replies[i].done = true;
    });
  } catch (err) {
    for (const reply of replies) {
      reply.error = errorOf(err);
      reply.done = true;
    }
  }
}

// JSON has no BigInt or Buffer: print them as text.
function replacer(_key, value) {
  if (typeof value === 'bigint') return value.toString();
  if (value && value.type === 'Buffer' && Array.isArray(value.data)) return Buffer.from(value.data).toString();
  return value;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const events = [];
  const replies = opts.commands.map((command) => ({ command, value: null, error: null, done: false }));
  const redis = client(opts, events);
  const run = opts.pipeline ? runPipeline(redis, opts.commands, replies) : runSequential(redis, opts.commands, replies);
  let timer;
  const deadline = new Promise((resolve) => { timer = setTimeout(resolve, opts.timeout * 1000); });
  await Promise.race([run, deadline]);
  clearTimeout(timer);
  for (const reply of replies) {
    if (!reply.done) reply.error = { name: 'Timeout', message: `no reply within ${opts.timeout}s` };
    delete reply.done;
  }
  redis.disconnect();
  process.stdout.write(`${JSON.stringify({ connections, replies, events }, replacer)}\n`);
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`redis_peer.js: ${err.stack || err}\n`);
  process.exit(2);
});
