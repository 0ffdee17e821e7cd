#!/usr/bin/env node
// The echo benchmark suite: asyncore-echo on every backend and mode
// against node:net, Python 3.11's asyncore and a minimal C epoll server, on loopback.
//
//   node bench/run.mjs                 full run (3 windows per measurement, median), ~13 minutes
//   node bench/run.mjs --quick         smoke run, ~1 minute
//   node bench/run.mjs --only echo64,node-net   one scenario and/or some subjects
//   node bench/run.mjs --list          print the plan and exit
//
// Every server is a child process pinned to CPU 0 and the load generator (bench/loadgen.c)
// is pinned to CPU 1, so they never compete for a core. Each measurement starts a fresh
// server; one load generator opens the connections, waits until the server accepted them
// all, warms up and measures --runs consecutive windows; the median window is reported.
// A full unfiltered run writes bench/RESULTS.md (only between its generated markers),
// bench/results.json and bench/charts/*.svg; any other run writes under bench/out/ unless
// --out says otherwise.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import * as vega from 'vega';
import * as vegaLite from 'vega-lite';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH);
const OUT = path.join(BENCH, 'out');
const BEGIN = '<!-- BEGIN GENERATED: bench/run.mjs rewrites everything from here to the END marker -->';
const END = '<!-- END GENERATED -->';
const SERVER_CPU = 0;
const LOADGEN_CPU = 1;
// select() cannot watch a descriptor >= FD_SETSIZE; a server with ~1000 connections gets there.
const FD_SETSIZE = 1024;
const SELECT_SKIP = `select() cannot watch fd >= FD_SETSIZE (${FD_SETSIZE}); skipped from 1000 connections up`;
const BASELINE = 'node-net';
// Median CPU (in cores) that other processes used on the two cores during a measurement,
// above which a table cell is marked as disturbed.
const DISTURBED = 0.25;
// A measurement disturbed by more than this (cores) is measured again, once, while the run is
// within its time budget; the less disturbed attempt is kept.
const RETRY_DISTURBED = 0.5;

const USAGE = `usage: node bench/run.mjs [options]

  --quick            smoke run: 1 window per measurement, 0.5 s each, no 10,000-connection
                     points, memory at 1,000 idle connections (~1-2 minutes)
  --only TERMS       comma-separated: scenario ids (echo64, echo16k, idle, memory) and/or
                     substrings of subject ids (asyncore, epoll, thread, node-net, python, c-epoll)
  --runs N           measured windows per measurement, median reported (default 3; quick 1)
  --duration S       seconds per window (default 1.5; quick 0.5)
  --warmup S         warm-up seconds before the first window (default 0.5; quick 0.2)
  --out FILE         results file (default bench/RESULTS.md for a full run, else bench/out/RESULTS.md)
  --nice N           niceness of servers and load generator (default 0; root may go below 0)
  --list             print the measurements that would run, and exit
  -h, --help         this text`;

// --- subjects ---------------------------------------------------------------------------

const ASYNCORE = ['select', 'poll', 'epoll'].flatMap((backend) =>
  ['sync', 'thread'].map((mode) => ({
    id: `asyncore-${backend}-${mode}`,
    label: `asyncore ${backend} ${mode}`,
    family: 'asyncore',
    backend,
    mode,
    selectLimited: backend === 'select',
    command: ['node', 'dist/cli/echo.js', '--port', '0', '--backend', backend, '--mode', mode],
  })),
);

const SUBJECTS = [
  ...ASYNCORE,
  {
    id: 'node-net',
    label: 'node:net',
    family: 'node',
    command: ['node', 'bench/peers/node-echo.mjs', '--port', '0'],
  },
  ...['select', 'poll'].map((backend) => ({
    id: `python-${backend}`,
    label: `Python asyncore ${backend}`,
    family: 'python',
    backend,
    selectLimited: backend === 'select',
    command: ['python3', '-W', 'ignore', 'bench/peers/py-echo.py', '--port', '0', '--backend', backend],
  })),
  {
    id: 'c-epoll',
    label: 'C epoll (ceiling)',
    family: 'c',
    command: [path.join('bench', 'out', 'epoll-echo'), '--port', '0'],
  },
];

// --- scenarios --------------------------------------------------------------------------

const SCENARIOS = [
  {
    id: 'echo64',
    title: 'Echo, 64 B ping-pong, by connection count',
    axis: 'connections',
    short: 'conns',
    points: [1, 50, 1000, 10000].map((conns) => ({ conns, idle: 0, size: 64, x: conns })),
  },
  {
    id: 'echo16k',
    title: 'Echo, 16 KiB ping-pong, 50 connections',
    axis: 'connections',
    short: 'conns',
    points: [{ conns: 50, idle: 0, size: 16384, x: 50 }],
  },
  {
    id: 'idle',
    title: '1 active connection (64 B ping-pong) beside idle connections',
    axis: 'idle connections',
    short: 'idle',
    points: [0, 100, 1000, 10000].map((idle) => ({ conns: 1, idle, size: 64, x: idle })),
  },
];
const MEMORY = {
  id: 'memory',
  title: 'Resident memory per idle connection',
  // Python is left out: its asyncore.poll2 re-registers every fd per iteration and accepts one
  // connection per iteration, so 10,000 accepts take minutes (see the idle table).
  subjects: ['asyncore-epoll-sync', 'asyncore-epoll-thread', BASELINE, 'c-epoll'],
};

const pointKey = (p) => `c${p.conns}-i${p.idle}-s${p.size}`;

// --- small helpers ----------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function sh(command, args) {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch {
    return '?';
  }
}

function progress(line) {
  process.stderr.write(`${line}\n`);
}

/**
 * `bash -c 'ulimit -n <hard>; exec nice -n N taskset -c CPU cmd...'`: as many fds as allowed,
 * one core (N is --nice, default 0: other work on a shared machine keeps its share).
 * The exec chain keeps the PID: it is the server's own, for /proc/PID.
 */
let niceness = 0;
function pinned(cpu, command, stdin = 'ignore') {
  const script = `ulimit -n "$(ulimit -Hn)"; exec nice -n ${niceness} taskset -c "$0" "$@"`;
  const child = spawn('bash', ['-c', script, String(cpu), ...command], { cwd: ROOT, stdio: [stdin, 'pipe', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

// Every server and load generator still running, so that an interrupted run leaves none behind.
const children = new Set();
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    for (const child of children) child.kill('SIGKILL');
    process.exit(130);
  });
}

function vmRssKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]);
}

function fdCount(pid) {
  return readdirSync(`/proc/${pid}/fd`).length;
}

// --- child processes --------------------------------------------------------------------

class Server {
  constructor(subject) {
    this.subject = subject;
    this.child = pinned(SERVER_CPU, subject.command);
    this.pid = this.child.pid;
    this.stderr = '';
    this.exited = false;
    this.child.stderr.on('data', (chunk) => {
      this.stderr = (this.stderr + chunk).slice(-4000);
    });
    this.child.on('exit', () => {
      this.exited = true;
    });
  }

  /** Resolves with the port once the server printed "listening on HOST:PORT". */
  listening(timeoutMs = 15000) {
    return new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`${this.subject.id} did not listen: ${this.stderr}`)), timeoutMs);
      this.child.stdout.on('data', (chunk) => {
        out += chunk;
        const match = /listening on \S+:(\d+)/.exec(out);
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      });
      this.child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${this.subject.id} exited (${code}) before listening: ${this.stderr}`));
      });
    });
  }

  async stop() {
    if (this.exited) return;
    const gone = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.exited || this.child.kill('SIGKILL'), 3000);
    await gone;
    clearTimeout(timer);
  }
}

/** Resolves once the server holds `count` more descriptors than `base` (it accepted them). */
async function accepted(server, base, count, timeoutS) {
  const deadline = Date.now() + timeoutS * 1000;
  for (;;) {
    const have = fdCount(server.pid) - base;
    if (have >= count) return;
    if (server.exited) throw new Error(`${server.subject.id} died: ${server.stderr}`);
    if (Date.now() > deadline) {
      throw new Error(
        `accepted only ${have.toLocaleString('en-US')} of ${count.toLocaleString('en-US')} connections in ${timeoutS} s`,
      );
    }
    await sleep(20);
  }
}

/**
 * One load generator process against a running server: it opens its connections, we wait
 * until the server accepted them all, then it measures `timing.runs` windows. Resolves with
 * the time the accepts took and one JSON report per window.
 */
function runLoadgen(server, port, point, timing, base) {
  const args = [
    path.join(OUT, 'loadgen'),
    '--port',
    String(port),
    '--conns',
    String(point.conns),
    '--idle',
    String(point.idle),
    '--size',
    String(point.size),
    '--runs',
    String(timing.runs),
    '--duration',
    String(timing.duration),
    '--warmup',
    String(timing.warmup),
    '--server-pid',
    String(server.pid),
    '--wait',
  ];
  const child = pinned(LOADGEN_CPU, args, 'pipe');
  const started = Date.now();
  let out = '';
  let err = '';
  let acceptSeconds = NaN;
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  const connected = new Promise((resolve) => {
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes('"connected"')) resolve();
    });
  });
  child.stderr.on('data', (chunk) => (err += chunk));
  const lastReport = () => {
    try {
      return JSON.parse(out.trim().split('\n').pop() ?? '');
    } catch {
      return {};
    }
  };
  return (async () => {
    try {
      const first = await Promise.race([connected.then(() => 'connected'), exited.then(() => 'exited')]);
      if (first === 'exited')
        throw new Error(`loadgen: ${lastReport().error ?? `exited while connecting ${out}${err}`}`);
      await accepted(server, base, point.conns + point.idle, timing.acceptTimeout);
      acceptSeconds = (Date.now() - started) / 1000;
      child.stdin.end('go\n');
      const timer = setTimeout(
        () => child.kill('SIGKILL'),
        (timing.warmup + timing.runs * timing.duration + 60) * 1000,
      );
      const code = await exited;
      clearTimeout(timer);
      const reports = out
        .trim()
        .split('\n')
        .filter((line) => line.startsWith('{"run"'))
        .map((line) => JSON.parse(line));
      if (code !== 0 || reports.length !== timing.runs)
        throw new Error(`loadgen: ${lastReport().error ?? `exit ${code} ${err}`}`);
      return { acceptSeconds, reports };
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    }
  })();
}

/** Opens `idle` connections with loadgen --hold; resolves with a function that closes them. */
function holdIdle(port, idle) {
  const child = pinned(
    LOADGEN_CPU,
    [path.join(OUT, 'loadgen'), '--port', String(port), '--idle', String(idle), '--hold'],
    'pipe',
  );
  return new Promise((resolve, reject) => {
    let out = '';
    const release = () =>
      new Promise((done) => {
        child.once('exit', done);
        child.stdin.end();
      });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('loadgen --hold did not open its connections in 60 s'));
    }, 60000);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes('"held"')) {
        clearTimeout(timer);
        resolve(release);
      } else if (out.includes('"error"')) {
        clearTimeout(timer);
        reject(new Error(`loadgen --hold: ${out.trim()}`));
      }
    });
  });
}

// --- measurements -----------------------------------------------------------------------

/** CPU the rest of the machine used during a window: both cores' busy time less ours. */
const othersCpu = (r) => r.cpu0_busy + r.cpu1_busy - Math.max(r.server_cpu, 0) - r.loadgen_cpu;

async function measureEcho(subject, point, timing) {
  const server = new Server(subject);
  try {
    const port = await server.listening();
    await sleep(300); // let the loop start (thread mode opens its descriptors then)
    const base = fdCount(server.pid);
    const { acceptSeconds, reports: runs } = await runLoadgen(server, port, point, timing, base);
    if (server.exited) throw new Error(`${subject.id} died: ${server.stderr}`);
    return {
      msgsPerS: median(runs.map((r) => r.msgs_per_s)),
      bytesPerS: median(runs.map((r) => r.bytes_per_s)),
      latencyMeanUs: median(runs.map((r) => r.latency_mean_us)),
      latencyP50Us: median(runs.map((r) => r.latency_p50_us)),
      latencyP99Us: median(runs.map((r) => r.latency_p99_us)),
      serverCpu: median(runs.map((r) => r.server_cpu)),
      // server CPU time per round trip: robust to other work taking CPU from the server
      cpuPerMsgUs: median(runs.map((r) => (r.server_cpu / r.msgs_per_s) * 1e6)),
      othersCpu: median(runs.map(othersCpu)),
      acceptSeconds,
      runs,
    };
  } finally {
    await server.stop();
  }
}

async function measureMemoryOnce(subject, timing) {
  const idle = timing.memoryIdle;
  const server = new Server(subject);
  try {
    const port = await server.listening();
    await sleep(500);
    const fdsBefore = fdCount(server.pid);
    const rssBefore = vmRssKiB(server.pid);
    const release = await holdIdle(port, idle);
    try {
      // The client's connect() completes at the handshake; wait until the server accepted them all.
      await accepted(server, fdsBefore, idle, timing.acceptTimeout);
      await sleep(500);
      const rssAfter = vmRssKiB(server.pid);
      return { rssBeforeKiB: rssBefore, rssAfterKiB: rssAfter, bytesPerConn: ((rssAfter - rssBefore) * 1024) / idle };
    } finally {
      await release();
    }
  } finally {
    await server.stop();
  }
}

async function measureMemory(subject, timing) {
  const runs = [];
  for (let i = 0; i < timing.runs; i++) runs.push(await measureMemoryOnce(subject, timing));
  return {
    bytesPerConn: median(runs.map((r) => r.bytesPerConn)),
    rssBeforeKiB: median(runs.map((r) => r.rssBeforeKiB)),
    rssAfterKiB: median(runs.map((r) => r.rssAfterKiB)),
    runs,
  };
}

/**
 * measureEcho, again once if it failed to start (the addon may be mid-rebuild by someone else)
 * or if other processes took much CPU meanwhile; an accept timeout is final.
 */
async function measureWithRetry(m, timing, started) {
  let best;
  let lastError;
  for (let attempt = 1; attempt <= 2; attempt++) {
    if (attempt === 2) {
      const withinBudget = (Date.now() - started) / 60000 < timing.budgetMinutes;
      if (!withinBudget || (best && best.othersCpu <= RETRY_DISTURBED)) break;
      if (lastError && /accepted only/.test(lastError.message)) break;
      if (lastError) await sleep(2000);
    }
    try {
      const r = await measureEcho(m.subject, m.point, timing);
      r.attempts = attempt;
      if (!best || r.othersCpu < best.othersCpu) best = { ...r, attempts: attempt };
      else best.attempts = attempt;
      lastError = undefined;
      if (r.othersCpu <= RETRY_DISTURBED) break;
    } catch (err) {
      lastError = err;
    }
  }
  if (best) return best;
  throw lastError;
}

// --- the plan ---------------------------------------------------------------------------

function parseOnly(only) {
  const terms = only
    ? only
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean)
    : [];
  const scenarioIds = [...SCENARIOS.map((s) => s.id), MEMORY.id];
  const scenarios = terms.filter((t) => scenarioIds.includes(t));
  const subjects = terms.filter((t) => !scenarioIds.includes(t));
  for (const term of subjects) {
    if (!SUBJECTS.some((s) => s.id.includes(term))) {
      throw new Error(`--only ${term}: neither a scenario (${scenarioIds.join(', ')}) nor part of a subject id`);
    }
  }
  return {
    scenario: (id) => scenarios.length === 0 || scenarios.includes(id),
    subject: (id) => subjects.length === 0 || subjects.some((t) => id.includes(t)),
  };
}

/** Every measurement to make, deduplicated (idle=0 is the 1-connection echo point). */
function plan(filter, maxConns) {
  const echo = new Map();
  const skipped = [];
  for (const scenario of SCENARIOS) {
    if (!filter.scenario(scenario.id)) continue;
    for (const point of scenario.points) {
      for (const subject of SUBJECTS) {
        if (!filter.subject(subject.id)) continue;
        if (point.conns + point.idle > maxConns) continue;
        const key = `${scenario.id}/${subject.id}/${pointKey(point)}`;
        if (subject.selectLimited && point.conns + point.idle >= 1000) {
          skipped.push({ scenario: scenario.id, subject: subject.id, point, reason: SELECT_SKIP });
          continue;
        }
        if (!echo.has(key)) echo.set(key, { key, scenario: scenario.id, subject, point });
      }
    }
  }
  const memory = filter.scenario(MEMORY.id)
    ? SUBJECTS.filter((s) => MEMORY.subjects.includes(s.id) && filter.subject(s.id))
    : [];
  return { echo: [...echo.values()], memory, skipped };
}

// --- machine, build ---------------------------------------------------------------------

function machine() {
  const cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '?';
  const memKiB = Number(/^MemTotal:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
  const dirty = sh('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no', '--', 'src', 'native']);
  return {
    date: new Date().toISOString(),
    nproc: sh('nproc', []),
    cpu: cpuModel,
    memory: `${(memKiB / 1024 / 1024).toFixed(1)} GiB`,
    kernel: sh('uname', ['-sr']),
    node: process.version,
    python: sh('python3', ['-V']),
    cc: sh('cc', ['--version']).split('\n')[0],
    commit:
      sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']) +
      (dirty && dirty !== '?' ? ' (with uncommitted changes in src/ or native/)' : ''),
    fdLimit: sh('bash', ['-c', 'ulimit -Hn']),
    uptimeBefore: sh('uptime', []),
  };
}

function build() {
  mkdirSync(OUT, { recursive: true });
  for (const [source, binary] of [
    ['loadgen.c', 'loadgen'],
    ['peers/epoll-echo.c', 'epoll-echo'],
  ]) {
    execFileSync('cc', ['-O2', '-Wall', '-o', path.join(OUT, binary), path.join(BENCH, source)], { stdio: 'inherit' });
  }
  const cli = path.join(ROOT, 'dist', 'cli', 'echo.js');
  if (!existsSync(cli)) throw new Error('dist/cli/echo.js is missing: run `npx tsc -p tsconfig.build.json` first');
  const newestSource = Math.max(
    ...readdirSync(path.join(ROOT, 'src'), { recursive: true })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => statSync(path.join(ROOT, 'src', f)).mtimeMs),
  );
  const stale = newestSource > statSync(cli).mtimeMs;
  if (stale)
    progress('warning: src/ is newer than dist/: run `npx tsc -p tsconfig.build.json` to measure the current code');
  const addon = readdirSync(path.join(ROOT, 'build', 'Release')).find((f) => f.endsWith('.node'));
  const when = (file) => new Date(statSync(file).mtimeMs).toISOString().slice(0, 16).replace('T', ' ');
  return (
    `dist/ built ${when(cli)} UTC${stale ? ' (older than src/: the run measured dist/ as it was)' : ''}; ` +
    `native addon ${addon ? `build/Release/${addon} built ${when(path.join(ROOT, 'build', 'Release', addon))} UTC` : 'not found'}`
  );
}

// --- report -----------------------------------------------------------------------------

const fmtInt = (n) => Math.round(n).toLocaleString('en-US');
const fmtRatio = (r) => (Number.isFinite(r) ? `${r.toFixed(2)}×` : '–');

function fmtBytes(bytesPerS) {
  return `${(bytesPerS / 1e6).toFixed(1)} MB/s`;
}

/**
 * Finds a measurement of a subject at a point, preferring the one made for `scenarioId`
 * (the idle scenario measures its 0-idle point itself, next to the others in time).
 */
function echoLookup(results, scenarioId) {
  const byKey = new Map();
  for (const r of results.echo) {
    const own = `${r.scenario}/${r.subject}/${r.pointKey}`;
    byKey.set(own, r);
    const any = `*/${r.subject}/${r.pointKey}`;
    if (!byKey.has(any)) byKey.set(any, r);
  }
  return (subjectId, point) =>
    byKey.get(`${scenarioId}/${subjectId}/${pointKey(point)}`) ?? byKey.get(`*/${subjectId}/${pointKey(point)}`);
}

function scenarioTable(scenario, results) {
  const get = echoLookup(results, scenario.id);
  const subjects = SUBJECTS.filter((s) => scenario.points.some((p) => get(s.id, p) || skippedAt(results, s.id, p)));
  if (subjects.length === 0) return '';
  const header = `| subject | ${scenario.points.map((p) => `${p.x.toLocaleString('en-US')} ${p.x === 1 ? scenario.short.replace(/s$/, '') : scenario.short}`).join(' | ')} |`;
  const rule = `|---|${scenario.points.map(() => '---:').join('|')}|`;
  const rows = subjects.map((s) => {
    const cells = scenario.points.map((p) => {
      const r = get(s.id, p);
      if (!r) return skippedAt(results, s.id, p) ? 'skipped¹' : '';
      if (r.error) return `error: ${r.error.slice(0, 60)}`;
      const base = get(BASELINE, p);
      const ratio = base && !base.error ? r.msgsPerS / base.msgsPerS : NaN;
      const amount =
        scenario.points[0].size >= 16384 ? `${fmtInt(r.msgsPerS)} (${fmtBytes(r.bytesPerS)})` : fmtInt(r.msgsPerS);
      const disturbed = r.othersCpu > DISTURBED || (base && base.othersCpu > DISTURBED);
      return `${amount} · ${fmtRatio(ratio)}${disturbed ? ' ²' : ''}`;
    });
    return `| ${s.label} | ${cells.join(' | ')} |`;
  });
  return [header, rule, ...rows].join('\n');
}

function skippedAt(results, subjectId, point) {
  return results.skipped.some((k) => k.subject === subjectId && pointKey(k.point) === pointKey(point));
}

/**
 * Microseconds of server CPU (all its threads, user + system) per round trip, and node:net's
 * figure divided by it (higher is better). Less sensitive to other work on the machine than
 * round trips per second, because CPU taken by others is not counted.
 */
function cpuTable(scenario, results) {
  const get = echoLookup(results, scenario.id);
  const subjects = SUBJECTS.filter((s) => scenario.points.some((p) => get(s.id, p) && !get(s.id, p).error));
  if (subjects.length === 0) return '';
  const header = `| subject | ${scenario.points.map((p) => `${p.x.toLocaleString('en-US')} ${p.x === 1 ? scenario.short.replace(/s$/, '') : scenario.short}`).join(' | ')} |`;
  const rule = `|---|${scenario.points.map(() => '---:').join('|')}|`;
  const rows = subjects.map((s) => {
    const cells = scenario.points.map((p) => {
      const r = get(s.id, p);
      if (!r) return skippedAt(results, s.id, p) ? 'skipped¹' : '';
      if (r.error) return 'error';
      const base = get(BASELINE, p);
      const ratio = base && !base.error ? base.cpuPerMsgUs / r.cpuPerMsgUs : NaN;
      return `${r.cpuPerMsgUs.toFixed(2)} µs · ${fmtRatio(ratio)}`;
    });
    return `| ${s.label} | ${cells.join(' | ')} |`;
  });
  return [
    "µs of server CPU (user + system, all threads) per round trip · node:net's figure ÷ this one (higher is better). " +
      'CPU that other processes took is not in it, so it holds up better than round trips per second on a busy machine; ' +
      'at 1 connection it includes the cost of waking up for every message.',
    '',
    header,
    rule,
    ...rows,
  ].join('\n');
}

/** Per measurement: how busy the server's core was, how much others took, how long accepts took. */
function detailTable(results) {
  const rows = results.echo
    .filter((r) => !r.error)
    .map((r) => {
      const label = SUBJECTS.find((s) => s.id === r.subject).label;
      const p = r.point;
      return `| ${label} | ${p.conns.toLocaleString('en-US')} | ${p.idle.toLocaleString('en-US')} | ${p.size} | ${r.serverCpu.toFixed(2)} | ${r.othersCpu.toFixed(2)} | ${r.acceptSeconds.toFixed(1)} | ${r.latencyMeanUs.toFixed(0)} | ${fmtInt(r.latencyP99Us)} |`;
    });
  if (rows.length === 0) return '';
  return [
    "<details><summary>server CPU (cores), other processes' CPU, seconds until the server had accepted every connection, round-trip latency</summary>",
    '',
    "| subject | active | idle | bytes | server CPU | others' CPU | accept s | mean RTT µs | p99 RTT µs |",
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    '</details>',
  ].join('\n');
}

function memoryTable(results) {
  if (results.memory.length === 0) return '';
  const base = results.memory.find((m) => m.subject === BASELINE && !m.error);
  const rows = results.memory.map((m) => {
    const s = SUBJECTS.find((x) => x.id === m.subject);
    if (m.error) return `| ${s.label} | error: ${m.error.slice(0, 80)} | | | |`;
    const ratio = base ? m.bytesPerConn / base.bytesPerConn : NaN;
    return `| ${s.label} | ${fmtInt(m.rssBeforeKiB)} | ${fmtInt(m.rssAfterKiB)} | ${fmtInt(m.bytesPerConn)} | ${fmtRatio(ratio)} |`;
  });
  return [
    `| subject | VmRSS before (KiB) | VmRSS with ${results.timing.memoryIdle.toLocaleString('en-US')} idle (KiB) | bytes per idle connection | vs node:net (lower is better) |`,
    '|---|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
}

function bridgeTable(results) {
  const get = echoLookup(results, 'echo64');
  const one = { conns: 1, idle: 0, size: 64 };
  const rows = [];
  for (const backend of ['select', 'poll', 'epoll']) {
    const sync = get(`asyncore-${backend}-sync`, one);
    const thread = get(`asyncore-${backend}-thread`, one);
    if (!sync || !thread || sync.error || thread.error) continue;
    const syncMean = 1e6 / sync.msgsPerS;
    const threadMean = 1e6 / thread.msgsPerS;
    rows.push(
      `| ${backend} | ${sync.latencyP50Us} | ${thread.latencyP50Us} | **${thread.latencyP50Us - sync.latencyP50Us}** | ` +
        `${syncMean.toFixed(1)} → ${threadMean.toFixed(1)} (${(threadMean - syncMean).toFixed(1)}) | ` +
        `${sync.cpuPerMsgUs.toFixed(1)} → ${thread.cpuPerMsgUs.toFixed(1)} (**${(thread.cpuPerMsgUs - sync.cpuPerMsgUs).toFixed(1)}**) |`,
    );
  }
  if (rows.length === 0) return '';
  return [
    '| backend | median RTT µs, sync | median RTT µs, thread | bridge latency µs (thread − sync) | mean RTT µs sync → thread (difference) | server CPU µs per round trip sync → thread (bridge CPU) |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
}

function goals(results) {
  const get = echoLookup(results, 'echo64');
  const getIdle = echoLookup(results, 'idle');
  const at = (conns, idle = 0) => ({ conns, idle, size: 64 });
  const ok = (id, p, lookup = get) => {
    const r = lookup(id, p);
    return r && !r.error ? r : undefined;
  };
  const msgs = (id, p, lookup = get) => ok(id, p, lookup)?.msgsPerS ?? NaN;
  // CPU efficiency as a rate: round trips per server CPU-second (higher is better)
  const eff = (id, p, lookup = get) => 1 / (ok(id, p, lookup)?.cpuPerMsgUs ?? NaN);
  const mem = (id) => results.memory.find((m) => m.subject === id && !m.error)?.bytesPerConn ?? NaN;
  const python = (f, p) => Math.max(f('python-select', p), f('python-poll', p));
  const vs = (id, p, other = BASELINE) => [msgs(id, p) / msgs(other, p), eff(id, p) / eff(other, p)];
  const rows = [
    ['echo 50 conns, loopSync + epoll vs node:net', ...vs('asyncore-epoll-sync', at(50)), 2.0],
    [
      'echo 50 conns, loopSync + epoll vs the faster Python asyncore',
      msgs('asyncore-epoll-sync', at(50)) / python(msgs, at(50)),
      eff('asyncore-epoll-sync', at(50)) / python(eff, at(50)),
      1.3,
    ],
    ['echo 1 conn, loopSync + epoll vs node:net', ...vs('asyncore-epoll-sync', at(1)), 1.2],
    ['echo 10,000 conns, loopSync + epoll vs node:net', ...vs('asyncore-epoll-sync', at(10000)), 2.0],
    [
      '1 active + 10,000 idle vs 0 idle, loopSync + epoll',
      msgs('asyncore-epoll-sync', at(1, 10000), getIdle) / msgs('asyncore-epoll-sync', at(1), getIdle),
      eff('asyncore-epoll-sync', at(1, 10000), getIdle) / eff('asyncore-epoll-sync', at(1), getIdle),
      0.9,
    ],
    ['memory per idle conn, loopSync + epoll ÷ node:net', mem('asyncore-epoll-sync') / mem(BASELINE), NaN, 1.0, 'max'],
    [
      'memory per idle conn, loop() thread + epoll ÷ node:net',
      mem('asyncore-epoll-thread') / mem(BASELINE),
      NaN,
      1.0,
      'max',
    ],
    ['echo 50 conns, loop() thread + epoll vs node:net', ...vs('asyncore-epoll-thread', at(50)), 1.2],
    ['echo 1 conn, loop() thread + epoll vs node:net', ...vs('asyncore-epoll-thread', at(1)), 0.8],
  ];
  const verdict = (ratio, target, kind) =>
    !Number.isFinite(ratio) ? '–' : (kind === 'max' ? ratio <= target : ratio >= target) ? 'yes' : '**no**';
  return [
    'Measured: the ratio of round trips per second (the goal as stated). By CPU: the same ratio computed from ' +
      'round trips per second of server CPU time, which other work on the machine disturbs less.',
    '',
    '| goal | target | measured | met? | by CPU | met? |',
    '|---|---:|---:|:---:|---:|:---:|',
    ...rows.map(([what, ratio, cpuRatio, target, kind]) => {
      const bound = `${kind === 'max' ? '≤' : '≥'} ${target.toFixed(1)}×`;
      return `| ${what} | ${bound} | ${fmtRatio(ratio)} | ${verdict(ratio, target, kind)} | ${fmtRatio(cpuRatio)} | ${verdict(cpuRatio, target, kind)} |`;
    }),
  ].join('\n');
}

// --- charts -----------------------------------------------------------------------------

async function renderChart(spec, file) {
  const compiled = vegaLite.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  writeFileSync(file, await view.toSVG());
  await view.finalize();
}

function lineSpec(title, axisTitle, values, order) {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 520,
    height: 320,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'x', type: 'ordinal', sort: order, title: axisTitle, axis: { labelAngle: 0 } },
      y: { field: 'msgs', type: 'quantitative', title: 'round trips per second (median)' },
      color: {
        field: 'subject',
        type: 'nominal',
        sort: SUBJECTS.map((s) => s.label),
        title: 'server',
        scale: { scheme: 'tableau20' },
        legend: { labelLimit: 400 },
      },
    },
  };
}

async function writeCharts(results, chartsDir) {
  mkdirSync(chartsDir, { recursive: true });
  const written = [];
  for (const scenario of SCENARIOS.filter((s) => s.points.length > 1)) {
    const get = echoLookup(results, scenario.id);
    const values = [];
    for (const subject of SUBJECTS) {
      for (const point of scenario.points) {
        const r = get(subject.id, point);
        if (r && !r.error)
          values.push({ subject: subject.label, x: point.x.toLocaleString('en-US'), msgs: Math.round(r.msgsPerS) });
      }
    }
    if (values.length === 0) continue;
    const file = path.join(chartsDir, `${scenario.id}.svg`);
    const order = scenario.points.map((p) => p.x.toLocaleString('en-US'));
    await renderChart(lineSpec(scenario.title, scenario.axis, values, order), file);
    written.push({ title: scenario.title, file });
  }
  const memValues = results.memory
    .filter((m) => !m.error)
    .map((m) => ({ subject: SUBJECTS.find((s) => s.id === m.subject).label, bytes: Math.round(m.bytesPerConn) }));
  if (memValues.length > 0) {
    const file = path.join(chartsDir, 'memory.svg');
    await renderChart(
      {
        $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
        title: MEMORY.title,
        width: 420,
        height: 200,
        data: { values: memValues },
        mark: 'bar',
        encoding: {
          y: { field: 'subject', type: 'nominal', sort: null, title: null, axis: { labelLimit: 400 } },
          x: { field: 'bytes', type: 'quantitative', title: 'bytes of VmRSS per idle connection (median)' },
        },
      },
      file,
    );
    written.push({ title: MEMORY.title, file });
  }
  return written;
}

// --- RESULTS.md -------------------------------------------------------------------------

const HAND_WRITTEN_PLACEHOLDER = `# Echo benchmark results

## Reading these numbers

(Hand-written section: bench/run.mjs keeps everything outside its generated markers.)
`;

function generatedSection(results, charts, outFile) {
  const m = results.machine;
  const rel = (file) => path.relative(path.dirname(outFile), file);
  const parts = [];
  parts.push(
    `## Run of ${m.date.slice(0, 16).replace('T', ' ')} UTC${results.quick ? ' (quick smoke run: not for quoting)' : ''}`,
  );
  parts.push(
    [
      `Command: \`${results.command}\` (package commit ${m.commit}; ${m.builds}).`,
      `Each measurement: a fresh server, the load generator opens its connections, waits until the server accepted all of them, ` +
        `warms up ${results.timing.warmup} s, then measures ${results.timing.runs} consecutive window(s) of ${results.timing.duration} s; the tables show the median window.`,
      'Cells: round trips per second · ratio to node:net measured in the same run (higher is better).',
      '',
      '| machine | |',
      '|---|---|',
      `| cores (nproc) | ${m.nproc} |`,
      `| CPU | ${m.cpu} |`,
      `| memory | ${m.memory} |`,
      `| kernel | ${m.kernel} |`,
      `| node | ${m.node} |`,
      `| python | ${m.python} |`,
      `| C compiler | ${m.cc} (\`-O2\`) |`,
      `| fd limit (ulimit -n) | ${m.fdLimit} |`,
      `| uptime before | ${m.uptimeBefore} |`,
      `| uptime after | ${results.uptimeAfter} |`,
      `| pinning | server on CPU ${SERVER_CPU}, load generator on CPU ${LOADGEN_CPU} (\`taskset\`): different cores |`,
      `| wall time | ${(results.wallSeconds / 60).toFixed(1)} min |`,
    ].join('\n'),
  );
  const load = Number(/load average: ([\d.]+)/.exec(m.uptimeBefore)?.[1] ?? NaN);
  if (load > 0.5) {
    parts.push(
      `**The machine was not quiet**: the 1-minute load average was ${load} before the run (other work, ` +
        'such as test suites, shares these 2 cores). Treat small differences with suspicion.',
    );
  }
  if (!results.quick) parts.push('### Goals\n\n' + goals(results));
  for (const scenario of SCENARIOS) {
    const table = scenarioTable(scenario, results);
    if (table) parts.push(`### ${scenario.title}\n\n${table}`);
  }
  if (results.skipped.length > 0) {
    parts.push(`¹ ${SELECT_SKIP}: ${[...new Set(results.skipped.map((k) => k.subject))].join(', ')}.`);
  }
  parts.push(
    `² Disturbed: during this measurement (or its node:net reference) other processes used more than ${DISTURBED} of a core ` +
      'on the two cores (median over the windows; from /proc/stat less the server and the load generator). ' +
      "Every measurement's figures are in results.json.",
  );
  for (const scenario of SCENARIOS.filter((sc) => sc.id !== 'idle')) {
    const table = cpuTable(scenario, results);
    if (table) parts.push(`### Server CPU per round trip: ${scenario.title.replace(/^Echo, /, '')}\n\n${table}`);
  }
  const detail = detailTable(results);
  if (detail) parts.push(`### Server CPU and accept time per measurement\n\n${detail}`);
  const memory = memoryTable(results);
  if (memory) {
    parts.push(
      `### ${MEMORY.title}\n\n` +
        'VmRSS from /proc/PID/status of the server, after it started and settled, and again once it accepted ' +
        `all ${results.timing.memoryIdle.toLocaleString('en-US')} connections (counted in /proc/PID/fd) and 0.5 s passed.\n\n${memory}`,
    );
  }
  const bridge = bridgeTable(results);
  if (bridge) {
    parts.push(
      '### Cost of one bridge round trip\n\n' +
        'With one connection each round trip is one loop iteration: its round-trip time is one iteration of the ' +
        'server plus the load generator, the kernel and the wake-ups, and all of that but the iteration is the ' +
        'same in sync and thread mode. Thread mode adds one hand-off native thread → JS (batch delivery through ' +
        'the thread-safe function) and one JS → native thread (resume), so thread − sync is the cost of one bridge ' +
        'round trip. The bold latency figure uses the median round-trip time (1 µs buckets; robust to other ' +
        'work on the machine), the mean is shown beside it. The last column is the same difference in server ' +
        `CPU time per round trip: the bridge's CPU cost. Both threads of the server share CPU ${SERVER_CPU}, so ` +
        `the figures include the context switches between them.\n\n${bridge}`,
    );
  }
  if (charts.length > 0) parts.push('### Charts\n\n' + charts.map((c) => `![${c.title}](${rel(c.file)})`).join('\n\n'));
  if (results.errors.length > 0) {
    parts.push('### Errors\n\n' + results.errors.map((e) => `- ${e}`).join('\n'));
  }
  return parts.join('\n\n');
}

function writeResults(outFile, section) {
  const existing = existsSync(outFile) ? readFileSync(outFile, 'utf8') : HAND_WRITTEN_PLACEHOLDER;
  const block = `${BEGIN}\n\n${section}\n\n${END}`;
  const begin = existing.indexOf(BEGIN);
  const end = existing.indexOf(END);
  const text =
    begin >= 0 && end > begin
      ? existing.slice(0, begin) + block + existing.slice(end + END.length)
      : `${existing.trimEnd()}\n\n${block}\n`;
  writeFileSync(outFile, text);
}

// --- main -------------------------------------------------------------------------------

async function main() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        only: { type: 'string' },
        runs: { type: 'string' },
        duration: { type: 'string' },
        warmup: { type: 'string' },
        out: { type: 'string' },
        list: { type: 'boolean', default: false },
        nice: { type: 'string', default: '0' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`${err.message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const timing = {
    runs: Number(values.runs ?? (values.quick ? 1 : 3)),
    duration: Number(values.duration ?? (values.quick ? 0.5 : 1.5)),
    warmup: Number(values.warmup ?? (values.quick ? 0.2 : 0.5)),
    // a quick run leaves out the 10,000-connection points: their set-up alone takes minutes
    maxConns: values.quick ? 1001 : Infinity,
    memoryIdle: values.quick ? 1000 : 10000,
    acceptTimeout: values.quick ? 10 : 45,
    // no more re-measurements of disturbed points once the run is this old
    budgetMinutes: values.quick ? 2 : 8,
  };
  if (!(Number.isInteger(timing.runs) && timing.runs > 0 && timing.duration > 0 && timing.warmup >= 0)) {
    process.stderr.write(`bad --runs/--duration/--warmup\n\n${USAGE}\n`);
    process.exit(2);
  }
  niceness = Number(values.nice);
  const filter = parseOnly(values.only);
  const work = plan(filter, timing.maxConns);
  const total = work.echo.length + work.memory.length;
  if (values.list) {
    for (const m of work.echo) process.stdout.write(`${m.scenario}\t${m.subject.id}\t${pointKey(m.point)}\n`);
    for (const s of work.memory) process.stdout.write(`memory\t${s.id}\tidle ${timing.memoryIdle}\n`);
    for (const k of work.skipped) process.stdout.write(`skip\t${k.subject}\t${pointKey(k.point)}\t${k.reason}\n`);
    return;
  }
  const full =
    !values.quick &&
    !values.only &&
    values.runs === undefined &&
    values.duration === undefined &&
    values.warmup === undefined;
  const outFile = path.resolve(values.out ?? (full ? path.join(BENCH, 'RESULTS.md') : path.join(OUT, 'RESULTS.md')));
  const chartsDir = path.join(path.dirname(outFile), 'charts');

  const builds = build();
  const results = {
    command:
      (process.env.npm_lifecycle_event?.startsWith('bench')
        ? `npm run ${process.env.npm_lifecycle_event}, i.e. `
        : '') + ['node', 'bench/run.mjs', ...process.argv.slice(2)].join(' '),
    quick: values.quick,
    timing,
    machine: { ...machine(), builds },
    echo: [],
    memory: [],
    skipped: work.skipped,
    errors: [],
  };
  const started = Date.now();
  let done = 0;
  for (const m of work.echo) {
    const t0 = Date.now();
    const label = `${m.scenario} ${pointKey(m.point)} ${m.subject.id}`;
    try {
      const r = await measureWithRetry(m, timing, started);
      results.echo.push({
        scenario: m.scenario,
        subject: m.subject.id,
        pointKey: pointKey(m.point),
        point: m.point,
        ...r,
      });
      progress(
        `[${++done}/${total}] ${label}: ${fmtInt(r.msgsPerS)} msg/s (windows ${r.runs.map((x) => fmtInt(x.msgs_per_s)).join(', ')}; ` +
          `server cpu ${r.serverCpu.toFixed(2)}, others ${r.othersCpu.toFixed(2)}; accepted in ${r.acceptSeconds.toFixed(1)} s) ${((Date.now() - t0) / 1000).toFixed(1)} s`,
      );
    } catch (err) {
      results.echo.push({
        scenario: m.scenario,
        subject: m.subject.id,
        pointKey: pointKey(m.point),
        point: m.point,
        error: err.message,
      });
      results.errors.push(`${label}: ${err.message}`);
      progress(`[${++done}/${total}] ${label}: ERROR ${err.message}`);
    }
  }
  for (const subject of work.memory) {
    const label = `memory ${subject.id}`;
    try {
      const r = await measureMemory(subject, timing);
      results.memory.push({ subject: subject.id, ...r });
      progress(`[${++done}/${total}] ${label}: ${fmtInt(r.bytesPerConn)} B per idle connection`);
    } catch (err) {
      results.memory.push({ subject: subject.id, error: err.message });
      results.errors.push(`${label}: ${err.message}`);
      progress(`[${++done}/${total}] ${label}: ERROR ${err.message}`);
    }
  }
  results.wallSeconds = (Date.now() - started) / 1000;
  results.uptimeAfter = sh('uptime', []);

  const charts = await writeCharts(results, chartsDir);
  writeResults(outFile, generatedSection(results, charts, outFile));
  writeFileSync(path.join(path.dirname(outFile), 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  progress(
    `wrote ${path.relative(ROOT, outFile)}, results.json and ${charts.length} chart(s) in ${results.wallSeconds.toFixed(0)} s`,
  );
  if (results.errors.length > 0) process.exitCode = 1;
}

main().catch((err) => {
  process.stderr.write(`bench/run.mjs: ${err.stack ?? err}\n`);
  process.exit(1);
});
