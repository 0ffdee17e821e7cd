#!/usr/bin/env node
// One loop per core: asyncore-echo with 1 worker (the plain loop) and with N worker threads
// (--workers N, one SO_REUSEPORT listener each), under the same echo load. It reports the round
// trips per second, the server's CPU, and each worker's share: the connections the kernel gave
// it and the bytes it echoed (from the counts asyncore-echo prints when SIGTERM stops it).
//
//   node bench/workers.mjs [--workers 1,2] [--conns 50] [--size 64] [--duration 5] [--warmup 1]
//                          [--server-cpus 0] [--loadgen-cpus 1] [--mode sync] [--backend epoll]
//
// The server is pinned with taskset to --server-cpus and the load generator (bench/loadgen.c,
// compiled into bench/out/ if needed) to --loadgen-cpus. On a 2-core machine the server gets one
// core whatever the worker count, so this shows the cost of the pool, not scaling; on a larger
// machine give the server as many cores as workers (e.g. --server-cpus 0-3 --workers 1,2,4 and
// --loadgen-cpus 4-7), and enough connections that each worker gets several. The "CPU busy"
// column (from /proc/stat, 1.00 = the whole core) shows whether other work shared the cores.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { flags } from './lib.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH);
const OUT = path.join(BENCH, 'out');
const ECHO = path.join(ROOT, 'dist', 'cli', 'echo.js');

const USAGE = `usage: node bench/workers.mjs [--workers 1,2] [--conns 50] [--size 64] [--duration 5] [--warmup 1]
                             [--server-cpus 0] [--loadgen-cpus 1] [--mode sync] [--backend epoll]`;
const values = flags(
  {
    workers: '1,2',
    conns: 50,
    size: 64,
    duration: 5,
    warmup: 1,
    'server-cpus': '0',
    'loadgen-cpus': '1',
    mode: 'sync',
    backend: 'epoll',
  },
  USAGE,
);
const workerCounts = values.workers.split(',').map(Number);

function loadgenBinary() {
  const binary = path.join(OUT, 'loadgen');
  if (!existsSync(binary)) {
    mkdirSync(OUT, { recursive: true });
    execFileSync('cc', ['-O2', '-Wall', '-o', binary, path.join(BENCH, 'loadgen.c')], { stdio: 'inherit' });
  }
  return binary;
}

/** `taskset -c cpus command...` with stdout and stderr collected. */
function pinned(cpus, command) {
  const child = spawn('taskset', ['-c', cpus, ...command], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  const output = { out: '', err: '' };
  child.stdout.on('data', (chunk) => (output.out += chunk));
  child.stderr.on('data', (chunk) => (output.err += chunk));
  const closed = new Promise((resolve) => child.on('close', (code, signal) => resolve(code ?? signal)));
  return { child, output, closed };
}

function waitFor(proc, pattern, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no ${pattern} in 20 s: ${proc.output.err}`)), 20_000);
    const check = () => {
      const match = pattern.exec(proc.output.out);
      if (match === null) return;
      clearTimeout(timer);
      proc.child.stdout.off('data', check);
      resolve(match);
    };
    proc.child.stdout.on('data', check);
    void proc.closed.then(() => reject(new Error(`${what} exited: ${proc.output.out}${proc.output.err}`)));
    check();
  });
}

async function measure(workers, loadgen) {
  const server = pinned(values['server-cpus'], [
    process.execPath,
    ECHO,
    '--port',
    '0',
    '--workers',
    String(workers),
    '--mode',
    values.mode,
    '--backend',
    values.backend,
  ]);
  try {
    const [, port] = await waitFor(server, /listening on .*:(\d+)/, 'asyncore-echo');
    const load = pinned(values['loadgen-cpus'], [
      loadgen,
      '--port',
      port,
      '--conns',
      String(values.conns),
      '--size',
      String(values.size),
      '--duration',
      String(values.duration),
      '--warmup',
      String(values.warmup),
      '--runs',
      '1',
      '--server-pid',
      String(server.child.pid),
      '--wait',
    ]);
    await waitFor(load, /"connected"/, 'loadgen');
    // The warm-up window covers the accepts that are still queued.
    load.child.stdin.end('go\n');
    const code = await load.closed;
    const report = JSON.parse(load.output.out.trim().split('\n').pop() ?? '{}');
    if (code !== 0 || report.errors !== 0) throw new Error(`loadgen: ${report.error ?? `exit ${code}`}`);
    server.child.kill('SIGTERM');
    const serverCode = await server.closed;
    if (serverCode !== 0) throw new Error(`asyncore-echo exited with ${serverCode}: ${server.output.err}`);
    const perWorker = [...server.output.err.matchAll(/worker (\d+) served (\d+) connections, (\d+) bytes/g)].map(
      (m) => ({ connections: Number(m[2]), bytes: Number(m[3]) }),
    );
    return { workers, report, perWorker };
  } finally {
    if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
  }
}

function share(perWorker) {
  // One worker is the plain loop: it serves everything and keeps no counts.
  if (perWorker.length === 0) return { connections: `${values.conns}`, bytes: '100%' };
  const total = perWorker.reduce((sum, w) => sum + w.bytes, 0);
  return {
    connections: perWorker.map((w) => w.connections).join(' / '),
    bytes: perWorker.map((w) => `${((100 * w.bytes) / total).toFixed(1)}%`).join(' / '),
  };
}

const loadgen = loadgenBinary();
const results = [];
for (const workers of workerCounts) results.push(await measure(workers, loadgen));

const base = results[0]?.report.msgs_per_s ?? NaN;
console.log(
  `asyncore-echo --mode ${values.mode} --backend ${values.backend}, ${values.conns} x ${values.size} B, ` +
    `${values.duration} s after ${values.warmup} s warm-up; server on CPU ${values['server-cpus']}, ` +
    `load generator on CPU ${values['loadgen-cpus']}\n`,
);
console.log(
  '| workers | round trips/s | vs 1 worker | server CPU (cores) | CPU 0 / CPU 1 busy | p50 latency | connections per worker | bytes per worker |',
);
console.log('|---|---|---|---|---|---|---|---|');
for (const { workers, report, perWorker } of results) {
  const { connections, bytes } = share(perWorker);
  console.log(
    `| ${workers} | ${Math.round(report.msgs_per_s).toLocaleString('en-US')} | ${(report.msgs_per_s / base).toFixed(2)}x | ` +
      `${report.server_cpu.toFixed(2)} | ${report.cpu0_busy.toFixed(2)} / ${report.cpu1_busy.toFixed(2)} | ` +
      `${report.latency_p50_us} us | ${connections} | ${bytes} |`,
  );
}
