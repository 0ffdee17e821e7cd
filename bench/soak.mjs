#!/usr/bin/env node
// Soak: asyncore-echo under many clients that send random-sized random data, check every
// echoed byte, and disconnect at random (some by FIN, some by RST) and reconnect.
//
//   node bench/soak.mjs [--seconds 60] [--connections 50] [--mode sync|thread]
//                       [--backend auto|select|poll|epoll] [--seed N] [--json] [--echo PATH]
//
// The server is dist/cli/echo.js (run `npx tsc -p tsconfig.build.json` first), or the
// asyncore-echo script --echo names (another build, to compare); the clients
// are node:net, a peer independent of the package under test. Prints totals and exits 1 on
// any lost or corrupted byte, any error the server caused, or a server that did not stop
// cleanly on SIGINT; 0 otherwise.
//
// What counts:
// - verified: echoed bytes that matched what was sent, in order.
// - corrupted: an echoed byte that differs from the one sent at that position, or bytes
//   nobody sent.
// - lost: bytes of a session that ended by FIN (or a normal close) that never came back.
//   A session that ends by RST abandons its bytes in flight; those are counted as abandoned.
// - errors: a reset or error on a connection this client did not reset itself.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { flags, vmRssKiB } from './lib.mjs';

const ECHO = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'echo.js');
const POOL_BYTES = 1 << 20;
const MAX_CHUNK = 64 * 1024;
const MAX_IN_FLIGHT = 256 * 1024;
const MAX_CHUNKS_PER_SESSION = 64;
// One session in ten reads slowly (a pause after every read) and sends megabytes: the server
// queues part of the echo, stops reading at its limit, and reads our FIN with a reply queued.
const SLOW_SESSION_CHANCE = 0.1;
const SLOW_READ_PAUSE_MS = 5;
const SLOW_CHUNK = [64 * 1024, 256 * 1024];
const SLOW_IN_FLIGHT = 8 << 20;

const USAGE = `usage: node bench/soak.mjs [--seconds 60] [--connections 50] [--mode sync|thread]
                          [--backend auto|select|poll|epoll] [--seed N] [--json] [--echo PATH]`;

function parseOptions() {
  const values = flags(
    {
      seconds: 60,
      connections: 50,
      mode: 'sync',
      backend: 'auto',
      seed: Date.now() % 2 ** 31,
      json: false,
      echo: ECHO,
    },
    USAGE,
  );
  const number = (name, min) => {
    const value = values[name];
    if (value < min) {
      console.error(`soak: --${name} must be a number >= ${min}\n${USAGE}`);
      process.exit(2);
    }
    return value;
  };
  if (values.mode !== 'sync' && values.mode !== 'thread') {
    console.error(`soak: --mode must be sync or thread\n${USAGE}`);
    process.exit(2);
  }
  return {
    seconds: number('seconds', 0.1),
    connections: Math.floor(number('connections', 1)),
    mode: values.mode,
    backend: values.backend,
    seed: Math.floor(number('seed', 0)),
    json: values.json,
    echo: values.echo,
  };
}

/** xorshift32: decisions and data reproducible from --seed. */
class Rng {
  #state;

  constructor(seed) {
    this.#state = seed >>> 0 || 0x9e3779b9;
  }

  /** A uint32. */
  next() {
    let x = this.#state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#state = x >>> 0;
    return this.#state;
  }

  /** An integer in [min, max]. */
  int(min, max) {
    return min + (this.next() % (max - min + 1));
  }

  chance(p) {
    return this.next() / 2 ** 32 < p;
  }

  /** Sizes from 1 byte to `max`, spread evenly over the orders of magnitude. */
  size(max) {
    return Math.max(1, Math.floor(Math.exp((this.next() / 2 ** 32) * Math.log(max))));
  }

  bytes(n) {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i + 4 <= n; i += 4) out.writeUInt32LE(this.next(), i);
    for (let i = n - (n % 4); i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }
}

class Totals {
  sessions = 0;
  slow = 0;
  byFin = 0;
  byReset = 0;
  byClose = 0;
  sent = 0;
  verified = 0;
  abandoned = 0;
  lost = 0;
  corrupted = 0;
  errors = 0;
  firstProblem = null;

  problem(text) {
    this.firstProblem ??= text;
  }
}

/**
 * Echoed bytes still expected, as slices of the data pool in the order they were sent.
 * check() compares what came back against them, byte for byte.
 */
class Expected {
  #slices = [];
  #offset = 0;
  pending = 0;

  push(slice) {
    this.#slices.push(slice);
    this.pending += slice.length;
  }

  /** Returns how many bytes of `chunk` matched; the rest (if any) is corrupt or unexpected. */
  check(chunk) {
    let at = 0;
    while (at < chunk.length) {
      const head = this.#slices[0];
      if (head === undefined) return at;
      const n = Math.min(head.length - this.#offset, chunk.length - at);
      if (chunk.compare(head, this.#offset, this.#offset + n, at, at + n) !== 0) return at;
      at += n;
      this.#offset += n;
      this.pending -= n;
      if (this.#offset === head.length) {
        this.#slices.shift();
        this.#offset = 0;
      }
    }
    return at;
  }
}

/** One connection: sends random chunks, checks the echo, and ends by FIN, RST or close. */
function session(port, rng, pool, totals, deadline) {
  return new Promise((resolve) => {
    const slow = rng.chance(SLOW_SESSION_CHANCE);
    const ending = slow || rng.chance(0.4) ? 'fin' : rng.chance(0.5) ? 'reset' : 'close';
    const inFlight = slow ? SLOW_IN_FLIGHT : MAX_IN_FLIGHT;
    const chunkSize = slow ? () => rng.int(SLOW_CHUNK[0], SLOW_CHUNK[1]) : () => rng.size(MAX_CHUNK);
    let chunksLeft = rng.int(1, MAX_CHUNKS_PER_SESSION);
    const expected = new Expected();
    let finished = false;
    const socket = connect(port, '127.0.0.1');
    totals.sessions++;
    if (slow) totals.slow++;

    const finish = (kind) => {
      if (finished) return;
      finished = true;
      if (kind === 'reset') {
        totals.byReset++;
        totals.abandoned += expected.pending;
        socket.resetAndDestroy();
      } else {
        if (kind === 'fin') totals.byFin++;
        else totals.byClose++;
        if (expected.pending > 0) {
          totals.lost += expected.pending;
          totals.problem(`a ${kind} session ended with ${expected.pending} bytes not echoed`);
        }
        socket.destroy();
      }
      resolve();
    };

    const pump = () => {
      // Past the deadline, no new chunks: a session in progress ends as planned.
      if (performance.now() > deadline) chunksLeft = 0;
      while (chunksLeft > 0 && expected.pending < inFlight) {
        const size = chunkSize();
        const start = rng.int(0, pool.length - size);
        const slice = pool.subarray(start, start + size);
        expected.push(slice);
        totals.sent += size;
        chunksLeft--;
        if (!socket.write(slice)) break;
      }
      if (chunksLeft > 0) return;
      if (ending === 'reset') finish('reset');
      // FIN right after the last chunk: the server must still echo all of it (half-close).
      else if (ending === 'fin' && !socket.writableEnded) socket.end();
      else if (ending === 'close' && expected.pending === 0) finish('close');
    };

    socket.setNoDelay(rng.chance(0.5));
    socket.on('connect', pump);
    socket.on('drain', pump);
    socket.on('data', (chunk) => {
      if (finished) return;
      if (slow) {
        socket.pause();
        setTimeout(() => socket.resume(), SLOW_READ_PAUSE_MS);
      }
      const matched = expected.check(chunk);
      totals.verified += matched;
      if (matched < chunk.length) {
        totals.corrupted += chunk.length - matched;
        totals.problem(`corrupted or unexpected echo: ${chunk.length - matched} bytes`);
        finish('close');
        return;
      }
      pump();
    });
    socket.on('end', () => {
      // The server closes its side only after our FIN, and only once it sent everything.
      if (ending !== 'fin') {
        totals.errors++;
        totals.problem(`the server closed a ${ending} session by itself`);
      }
      finish(ending === 'fin' ? 'fin' : 'close');
    });
    socket.on('error', (err) => {
      if (finished) return;
      totals.errors++;
      totals.problem(`${ending} session: ${err.code ?? err.message}`);
      finish('close');
    });
  });
}

/** One client slot: sessions back to back until the deadline. */
async function slot(port, seed, pool, totals, deadline) {
  const rng = new Rng(seed);
  while (performance.now() < deadline) await session(port, rng, pool, totals, deadline);
}

function startServer(echo, mode, backend) {
  const child = spawn(process.execPath, [echo, '--port', '0', '--mode', mode, '--backend', backend], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr.on('data', (d) => (output += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`asyncore-echo did not start: ${output}`)), 10_000);
    child.stdout.on('data', (d) => {
      output += d;
      const match = /listening on .*:(\d+) \(backend (\w+)/.exec(output);
      if (match === null) return;
      clearTimeout(timer);
      resolve({ child, port: Number(match[1]), backend: match[2], output: () => output });
    });
    child.on('exit', (code) => reject(new Error(`asyncore-echo exited with ${code}: ${output}`)));
  });
}

/** The server's resident memory in MiB; 0 once it has gone. */
function rssMiB(pid) {
  try {
    return vmRssKiB(pid) / 1024;
  } catch {
    return 0;
  }
}

function exitOf(child, ms) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve(child.exitCode ?? child.signalCode);
      return;
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? signal);
    });
  });
}

async function main() {
  const options = parseOptions();
  const pool = new Rng(options.seed).bytes(POOL_BYTES);
  const server = await startServer(options.echo, options.mode, options.backend);
  const totals = new Totals();
  let peakRss = rssMiB(server.child.pid);
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssMiB(server.child.pid))), 250);
  const started = performance.now();
  const deadline = started + options.seconds * 1000;
  let serverExit;
  try {
    await Promise.all(
      Array.from({ length: options.connections }, (_, i) =>
        slot(server.port, options.seed + 7919 * (i + 1), pool, totals, deadline),
      ),
    );
  } finally {
    clearInterval(sampler);
    server.child.kill('SIGINT');
    serverExit = await exitOf(server.child, 5000);
  }
  const seconds = (performance.now() - started) / 1000;
  const ok = totals.lost === 0 && totals.corrupted === 0 && totals.errors === 0 && serverExit === 0;
  const summary = {
    ok,
    mode: options.mode,
    backend: server.backend,
    seed: options.seed,
    seconds: Number(seconds.toFixed(2)),
    connections: options.connections,
    sessions: totals.sessions,
    slowSessions: totals.slow,
    byFin: totals.byFin,
    byReset: totals.byReset,
    byClose: totals.byClose,
    sent: totals.sent,
    verified: totals.verified,
    abandoned: totals.abandoned,
    lost: totals.lost,
    corrupted: totals.corrupted,
    errors: totals.errors,
    firstProblem: totals.firstProblem,
    serverExit,
    serverPeakRssMiB: Number(peakRss.toFixed(1)),
  };
  if (options.json) {
    console.log(JSON.stringify(summary));
  } else {
    const mib = (n) => (n / 2 ** 20).toFixed(1);
    console.log(
      `soak ${summary.mode}/${summary.backend} seed ${summary.seed}: ${summary.seconds} s, ` +
        `${summary.connections} connections, ${summary.sessions} sessions ` +
        `(${summary.byFin} FIN, ${summary.byReset} RST, ${summary.byClose} close; ${summary.slowSessions} slow readers)`,
    );
    console.log(
      `  sent ${mib(summary.sent)} MiB, verified ${mib(summary.verified)} MiB ` +
        `(${mib(summary.verified / seconds)} MiB/s), abandoned by RST ${mib(summary.abandoned)} MiB`,
    );
    console.log(
      `  lost ${summary.lost} B, corrupted ${summary.corrupted} B, errors ${summary.errors}, ` +
        `server exit ${summary.serverExit}, server peak RSS ${summary.serverPeakRssMiB} MiB`,
    );
    if (summary.firstProblem !== null) console.log(`  first problem: ${summary.firstProblem}`);
    console.log(ok ? 'OK' : 'FAILED');
  }
  process.exitCode = ok ? 0 : 1;
}

main().catch((err) => {
  console.error(`soak: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
