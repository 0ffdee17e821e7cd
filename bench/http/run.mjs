#!/usr/bin/env node
// The HTTP benchmark: wrk, keep-alive, against asyncore-http's hello page and the same page
// from node:http and from nginx with one worker, in one run. Each server is pinned to CPU 0
// and wrk to CPU 1.
//
//   node bench/http/run.mjs [--duration 5] [--runs 3] [--connections 50] [--out FILE]
//
// Besides requests per second it records, for every run, the server's CPU time per request
// (/proc/PID/stat around the wrk run) and how much of its core wrk itself used: when wrk is
// near 100%, the client is the limit and req/s no longer compares the servers; CPU per
// request still does. A C server doing only the system calls (ceiling.c, built with cc when
// there is one) shows what wrk can drive at all on this machine. nginx (nginx-light, when
// /usr/sbin/nginx exists) is the production server to compare with: the "vs nginx" column.
//
// Writes bench/http/RESULTS.md between its generated markers (the text after them is kept)
// after a run with the default --duration and --runs; a shorter run writes
// bench/out/http/RESULTS.md instead, unless --out names a file.
// Loopback only; every server it starts is stopped by PID.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { flags, median } from '../lib.mjs';
import { ASYNCORE_HTTP, NODE_HTTP, ceilingServer, measure, nginxServer, start, stop } from './lib.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const USAGE = 'usage: node bench/http/run.mjs [--duration 5] [--runs 3] [--connections 50] [--out FILE]';
const values = flags({ duration: 5, runs: 3, connections: 50, out: undefined }, USAGE);
const full = values.duration === 5 && values.runs === 3 && values.connections === 50;
const file = resolve(values.out ?? (full ? join(here, 'RESULTS.md') : join(here, '..', 'out', 'http', 'RESULTS.md')));
const options = { seconds: values.duration, connections: values.connections };
const runs = values.runs;

/** Cores taken by other processes during a run above which it counts as disturbed. */
const DISTURBED = 0.25;

const ceiling = ceilingServer();
const nginx = nginxServer();
const subjects = [NODE_HTTP, ...ASYNCORE_HTTP, ...[nginx, ceiling].filter((s) => s !== null)];

const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
const loadBefore = load();
// Every server runs from start to end (an idle one costs nothing), and the runs go round
// the servers: a burst of other work on the machine then hits one run of several servers,
// not every run of one.
const started = [];
try {
  for (const subject of subjects) {
    const server = await start(subject);
    started.push({ subject, ...server, measured: [], retries: runs });
    measure(server.child, server.port, { ...options, seconds: 1 }); // warm-up (JIT, connections), not counted
  }
  for (let i = 0; i < runs; i++) {
    for (const server of started) {
      // Other processes share these two cores: a run they disturbed is measured again (up to
      // `runs` times per server), and the least disturbed attempt is kept.
      let best = measure(server.child, server.port, options);
      while (best.others > DISTURBED && server.retries > 0) {
        server.retries--;
        const again = measure(server.child, server.port, options);
        if (again.others < best.others) best = again;
      }
      server.measured.push(best);
    }
  }
} finally {
  await Promise.all(started.map(({ child }) => stop(child)));
}
const results = started.map(({ subject, measured }) => ({
  name: subject.name,
  rates: measured.map((m) => m.rate),
  rate: median(measured.map((m) => m.rate)),
  serverCpu: median(measured.map((m) => m.serverCpu)),
  serverUser: median(measured.map((m) => m.serverUser)),
  serverSystem: median(measured.map((m) => m.serverSystem)),
  wrkShare: median(measured.map((m) => m.wrkShare)),
  others: measured.map((m) => m.others),
}));
for (const result of results) {
  process.stderr.write(
    `${result.name}: ${result.rates.map((r) => r.toFixed(0)).join(', ')} req/s, ` +
      `${result.serverCpu.toFixed(2)} us CPU/request, wrk at ${(100 * result.wrkShare).toFixed(0)}%, ` +
      `others ${result.others.map((x) => x.toFixed(2)).join(', ')} cores\n`,
  );
}
const loadAfter = load();

const base = results.find((r) => r.name === NODE_HTTP.name);
const nginxResult = nginx === null ? undefined : results.find((r) => r.name === nginx.name);
const vsNginx = (r) => (nginxResult === undefined ? '–' : `${(r.rate / nginxResult.rate).toFixed(2)}x`);
const rows = results
  .map(
    (r) =>
      `| ${r.name} | ${r.rate.toFixed(0)} | ${(r.rate / base.rate).toFixed(2)}x | ${vsNginx(r)} ` +
      `| ${r.rates.map((x, i) => `${x.toFixed(0)}${(r.others[i] ?? 0) > DISTURBED ? '²' : ''}`).join(', ')} ` +
      `| ${r.serverCpu.toFixed(2)} (${r.serverUser.toFixed(2)} + ${r.serverSystem.toFixed(2)}) ` +
      `| ${(base.serverCpu / r.serverCpu).toFixed(2)}x | ${(100 * r.wrkShare).toFixed(0)}% |`,
  )
  .join('\n');
// `wrk -v` prints its version, then exits 1.
const wrkVersion = spawnSync('wrk', ['-v'], { encoding: 'utf8' }).stdout.split('\n')[0];
const BEGIN = '<!-- BEGIN GENERATED: bench/http/run.mjs rewrites everything from here to the END marker -->';
const END = '<!-- END GENERATED -->';
const generated = `${BEGIN}
Command: \`node bench/http/run.mjs --duration ${options.seconds} --runs ${runs} --connections ${options.connections}\`
(wrk -t1 -c${options.connections} -d${options.seconds}s, keep-alive, GET / of a 160-byte hello page; one warm-up
run each, then ${runs} rounds over all servers, median). Each server pinned to CPU 0, wrk to
CPU 1, loopback only.

Machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB,
Node ${process.version}, ${wrkVersion}, ${new Date().toISOString()}.
Load average before the run: ${loadBefore}; after: ${loadAfter}.

| server | req/s (median) | vs node:http | vs nginx | runs | server CPU µs/request (user + sys, medians each) | CPU/request vs node:http | wrk's core |
|---|---|---|---|---|---|---|---|
${rows}

"CPU/request vs node:http" is node:http's CPU per request divided by the server's: how much
less work it does per request. "wrk's core" is the share of CPU 1 wrk used: near 100%, wrk
is the limit and req/s stops telling the servers apart. ² marks a run during which other
processes took more than ${DISTURBED} of a core (after ${runs} re-measurements at most per server).
nginx runs with one worker process (its CPU is counted with the idle master's), keep-alive,
answering from memory (\`return 200\`), access log off.
${nginx === null ? '(No /usr/sbin/nginx here: the nginx row is missing.)\n' : ''}${ceiling === null ? '(No C compiler here: the C ceiling row is missing.)\n' : ''}${END}`;

mkdirSync(dirname(file), { recursive: true });
const previous = existsSync(file) ? readFileSync(file, 'utf8') : '';
const kept = previous.includes(END) ? previous.slice(previous.indexOf(END) + END.length) : '\n';
const title = '# HTTP benchmark: asyncore-http vs node:http and nginx\n\n';
writeFileSync(file, `${title}${generated}${kept}`);
process.stdout.write(`${generated}\n`);
