#!/usr/bin/env node
// The HTTP benchmark (issue 7): wrk, keep-alive, against asyncore-http's hello page and the
// same page from node:http, in one run. Each server is pinned to CPU 0 and wrk to CPU 1.
//
//   node bench/http/run.mjs [--duration 5] [--runs 3] [--connections 50]
//
// Writes bench/http/RESULTS.md. Loopback only; every server it starts is stopped by PID.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = fileURLToPath(new URL('../..', import.meta.url));
const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    runs: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
  },
});
const duration = Number(values.duration);
const runs = Number(values.runs);
const connections = Number(values.connections);

const subjects = [
  { name: 'node:http', args: [`${here}node-http.mjs`] },
  // --quiet: no access log line per request (node:http writes none either).
  { name: 'asyncore-http sync epoll', args: [`${root}dist/cli/http.js`, '--quiet', '--backend', 'epoll', '--mode', 'sync'] },
  { name: 'asyncore-http thread epoll', args: [`${root}dist/cli/http.js`, '--quiet', '--backend', 'epoll', '--mode', 'thread'] },
  { name: 'asyncore-http sync poll', args: [`${root}dist/cli/http.js`, '--quiet', '--backend', 'poll', '--mode', 'sync'] },
];

function start(subject) {
  const child = spawn('taskset', ['-c', '0', process.execPath, ...subject.args, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = /listening on [^ ]*:(\d+)/.exec(out);
      if (match) resolve({ child, port: Number(match[1]) });
    });
    child.on('exit', (code) => reject(new Error(`${subject.name} exited with ${code}: ${out}`)));
  });
}

function stop(child) {
  return new Promise((resolve) => {
    child.on('exit', resolve);
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 3000).unref();
  });
}

/** One wrk run; returns requests per second, and fails on socket errors or non-2xx answers. */
function wrk(port) {
  const out = execFileSync(
    'taskset',
    ['-c', '1', 'wrk', '-t1', `-c${connections}`, `-d${duration}s`, `http://127.0.0.1:${port}/`],
    { encoding: 'utf8' },
  );
  if (/Socket errors|Non-2xx/.test(out)) throw new Error(`wrk reported errors:\n${out}`);
  const match = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!match) throw new Error(`no Requests/sec in wrk output:\n${out}`);
  return Number(match[1]);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const load = loadavg().map((x) => x.toFixed(2)).join(' ');
const results = [];
for (const subject of subjects) {
  const { child, port } = await start(subject);
  try {
    wrk(port); // warm-up, not counted
    const rates = [];
    for (let i = 0; i < runs; i++) rates.push(wrk(port));
    results.push({ name: subject.name, rates, median: median(rates) });
    process.stderr.write(`${subject.name}: ${rates.map((r) => r.toFixed(0)).join(', ')} req/s\n`);
  } finally {
    await stop(child);
  }
}

const base = results.find((r) => r.name === 'node:http').median;
const rows = results
  .map((r) => `| ${r.name} | ${r.median.toFixed(0)} | ${(r.median / base).toFixed(2)}x | ${r.rates.map((x) => x.toFixed(0)).join(', ')} |`)
  .join('\n');
// `wrk -v` prints its version, then exits 1.
const wrkVersion = spawnSync('wrk', ['-v'], { encoding: 'utf8' }).stdout.split('\n')[0];
const report = `# HTTP benchmark: asyncore-http vs node:http

Command: \`node bench/http/run.mjs --duration ${duration} --runs ${runs} --connections ${connections}\`
(wrk -t1 -c${connections} -d${duration}s, keep-alive, GET / of a 160-byte hello page; one warm-up
run, then ${runs} runs, median). Each server pinned to CPU 0, wrk to CPU 1, loopback only.

Machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB,
Node ${process.version}, ${wrkVersion}, ${new Date().toISOString()}, load average before the run: ${load}.

| server | req/s (median) | vs node:http | runs |
|---|---|---|---|
${rows}

The issue's goal is 2.0x node:http's requests per second.
`;
writeFileSync(`${here}RESULTS.md`, report);
process.stdout.write(report);
