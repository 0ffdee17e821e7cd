#!/usr/bin/env node
// The echo benchmark suite: asyncore-echo on every backend and mode against node:net,
// Python 3.11's asyncore and a minimal C epoll server, on loopback.
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
// It measures and records: every figure goes to results.json, and bench/report.mjs turns that
// file into RESULTS.md (between its generated markers only) and charts/*.svg, at the end of a
// run or later on its own (`node bench/report.mjs` redraws the report without measuring).
// A full unfiltered run writes bench/results.json, bench/RESULTS.md and bench/charts/; any
// other run writes under bench/out/ unless --out says otherwise.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

import { fdCount, median, parseFlags, vmRssKiB } from './lib.mjs';
import { fmtInt, writeReport } from './report.mjs';
import {
  BENCH,
  LOADGEN_CPU,
  MEMORY,
  OUT,
  ROOT,
  SCENARIOS,
  SELECT_SKIP,
  SERVER_CPU,
  SUBJECTS,
  pointKey,
} from './scenarios.mjs';

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
  --out FILE         report file (default bench/RESULTS.md for a full run, else bench/out/RESULTS.md);
                     results.json and charts/ go beside it
  --nice N           niceness of servers and load generator (default 0; root may go below 0)
  --list             print the measurements that would run, and exit
  -h, --help         this text`;
// --- small helpers ----------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

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
  // The addon the servers load: build/Release/ if there is one, else a matching prebuild.
  let addon;
  try {
    addon = createRequire(import.meta.url)('node-gyp-build').path(ROOT);
  } catch {
    addon = undefined;
  }
  const when = (file) => new Date(statSync(file).mtimeMs).toISOString().slice(0, 16).replace('T', ' ');
  return (
    `dist/ built ${when(cli)} UTC${stale ? ' (older than src/: the run measured dist/ as it was)' : ''}; ` +
    `native addon ${addon ? `${path.relative(ROOT, addon)} built ${when(addon)} UTC` : 'not found'}`
  );
}

// --- main -------------------------------------------------------------------------------

async function main() {
  const values = parseFlags(
    {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      runs: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      out: { type: 'string' },
      list: { type: 'boolean', default: false },
      nice: { type: 'string', default: '0' },
    },
    USAGE,
  );
  if (values === null) return;
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

  // The figures first: if drawing the report fails, `node bench/report.mjs` can redo it.
  writeFileSync(path.join(path.dirname(outFile), 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  const charts = await writeReport(results, outFile);
  progress(
    `wrote results.json, ${path.relative(ROOT, outFile)} and ${charts} chart(s) in ${results.wallSeconds.toFixed(0)} s`,
  );
  if (results.errors.length > 0) process.exitCode = 1;
}

main().catch((err) => {
  process.stderr.write(`bench/run.mjs: ${err.stack ?? err}\n`);
  process.exit(1);
});
