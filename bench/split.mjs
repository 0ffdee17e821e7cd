#!/usr/bin/env node
// Where a server's time per message goes: user space (its own code) or the kernel.
//
//   node bench/split.mjs [--starts 5] [--conns 50] [--idle 0] [--duration 3] [--subjects a,b,...] [--baseline DIR]
//
// For each subject it starts the server afresh --starts times (the subjects take turns, so a
// change in the machine touches them all alike), pinned to CPU 0, runs bench/loadgen.c with
// 64-byte ping-pong on CPU 1 (beside --idle connections that never send), and reads the server's user and system CPU time from
// /proc/PID/stat over exactly the measured window. It prints, per start and as medians:
// round trips per second, and user and system microseconds per round trip.
//
// Why it exists: the 50-connection echo point is bimodal from one server start to the next
// (bench/RESULTS.md). Splitting the time shows in which half the modes differ.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { cpuSeconds, flags, median, waitFor } from './lib.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH);
const OUT = path.join(BENCH, 'out');

const SUBJECTS = {
  'c-epoll': [path.join(OUT, 'epoll-echo'), '--port', '0'],
  'asyncore-epoll-sync': ['node', 'dist/cli/echo.js', '--port', '0', '--backend', 'epoll', '--mode', 'sync'],
  'asyncore-epoll-thread': ['node', 'dist/cli/echo.js', '--port', '0', '--backend', 'epoll', '--mode', 'thread'],
  'node-net': ['node', 'bench/peers/node-echo.mjs', '--port', '0'],
};

const USAGE = `usage: node bench/split.mjs [--starts 5] [--conns 50] [--idle 0] [--duration 3] [--subjects a,b,...]
                            [--baseline DIR]
  subjects: ${Object.keys(SUBJECTS).join(', ')}
  --baseline DIR adds baseline-epoll-sync and baseline-epoll-thread: the echo server of another
  build of the package (a tree with dist/ and build/, e.g. an older commit checked out and
  built), measured in the same run, so a change is judged side by side with what it changed.`;
const values = flags(
  { starts: 5, conns: 50, idle: 0, duration: 3, subjects: Object.keys(SUBJECTS).join(','), baseline: undefined },
  USAGE,
);
if (values.baseline !== undefined) {
  const echo = path.resolve(values.baseline, 'dist/cli/echo.js');
  SUBJECTS['baseline-epoll-sync'] = ['node', echo, '--port', '0', '--backend', 'epoll', '--mode', 'sync'];
  SUBJECTS['baseline-epoll-thread'] = ['node', echo, '--port', '0', '--backend', 'epoll', '--mode', 'thread'];
  if (!process.argv.some((arg) => arg.startsWith('--subjects')))
    values.subjects += ',baseline-epoll-sync,baseline-epoll-thread';
}
const starts = values.starts;
const subjects = values.subjects.split(',');
for (const id of subjects) if (!(id in SUBJECTS)) throw new Error(`unknown subject ${id}`);

mkdirSync(OUT, { recursive: true });
for (const [source, binary] of [
  ['loadgen.c', 'loadgen'],
  ['peers/epoll-echo.c', 'epoll-echo'],
]) {
  execFileSync('cc', ['-O2', '-o', path.join(OUT, binary), path.join(BENCH, source)]);
}

async function measureOnce(id) {
  const server = spawn('taskset', ['-c', '0', ...SUBJECTS[id]], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const [, port] = await waitFor(server.stdout, /listening on .*:(\d+)/, id);
    const loadgenArgs = [
      '--port',
      port,
      '--conns',
      values.conns,
      '--idle',
      values.idle,
      '--duration',
      values.duration,
    ].map(String);
    loadgenArgs.push('--warmup', '0', '--wait');
    const loadgen = spawn('taskset', ['-c', '1', path.join(OUT, 'loadgen'), ...loadgenArgs], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const report = waitFor(loadgen.stdout, /(\{"run".*\})\n/, 'loadgen');
    await waitFor(loadgen.stdout, /"connected"/, 'loadgen');
    // Let the server accept them all (a connect completes at the handshake, before accept()).
    await new Promise((resolve) => setTimeout(resolve, 200 + values.idle / 5));
    // loadgen starts sending on this line: the CPU window and the counting window coincide.
    const { user: user0, system: system0 } = cpuSeconds(server.pid);
    loadgen.stdin.write('go\n');
    const [, json] = await report;
    const { user: user1, system: system1 } = cpuSeconds(server.pid);
    loadgen.stdin.end();
    const result = JSON.parse(json);
    const perMessage = (seconds) => (seconds / result.messages) * 1e6;
    return {
      msgsPerS: result.msgs_per_s,
      userUs: perMessage(user1 - user0),
      systemUs: perMessage(system1 - system0),
    };
  } finally {
    server.kill('SIGTERM');
  }
}

const results = Object.fromEntries(subjects.map((id) => [id, []]));
for (let start = 1; start <= starts; start++) {
  for (const id of subjects) {
    const r = await measureOnce(id);
    results[id].push(r);
    process.stderr.write(
      `start ${start} ${id}: ${r.msgsPerS.toFixed(0)}/s, user ${r.userUs.toFixed(2)} µs, system ${r.systemUs.toFixed(2)} µs\n`,
    );
  }
}

const medianRate = (id) => (results[id] ? median(results[id].map((r) => r.msgsPerS)) : undefined);
const baseline = medianRate('node-net');
const ceiling = medianRate('c-epoll');
console.log(
  `${values.conns} connections (64 B ping-pong) beside ${values.idle} idle, ${starts} server starts per subject, ` +
    `${values.duration} s each`,
);
console.log('');
console.log(
  '| subject | round trips/s per start | median | vs node:net | vs C | user µs per round trip (median) | system µs per round trip, per start |',
);
console.log('|---|---|---:|---:|---:|---:|---|');
for (const id of subjects) {
  const rs = results[id];
  const m = median(rs.map((r) => r.msgsPerS));
  const ratio = (base) => (base === undefined ? '' : `${(m / base).toFixed(2)}x`);
  console.log(
    `| ${id} | ${rs.map((r) => r.msgsPerS.toFixed(0)).join(', ')} | ${m.toFixed(0)} | ${ratio(baseline)} | ${ratio(ceiling)} | ` +
      `${median(rs.map((r) => r.userUs)).toFixed(2)} | ${rs.map((r) => r.systemUs.toFixed(2)).join(', ')} |`,
  );
}
