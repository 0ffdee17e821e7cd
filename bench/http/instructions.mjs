#!/usr/bin/env node
// Instructions per request of asyncore-http, counted by valgrind's callgrind: a figure that
// does not depend on the machine's load, unlike req/s or CPU time on a shared machine.
//
//   node bench/http/instructions.mjs [--requests 20000] [--warmup 5000] [--connections 50]
//                                    [--build NAME=DIR ...] [--rounds 1] [--backend epoll] [--mode sync]
//                                    [--keep]
//
// For each build (default: this repository; DIR is a tree with dist/, build/ and node_modules/,
// e.g. an older commit exported with `git archive` and built), the server runs twice under
// `valgrind --tool=callgrind`: once serving --warmup requests, once --warmup + --requests, each
// time from a fresh start to a clean exit on SIGINT. The difference of the two instruction
// totals divided by --requests is the cost of one request, start-up, JIT warm-up and shutdown
// cancelled out. The figure still moves by a few percent from run to run (when the JIT and the
// garbage collector's threads get to run differs): --rounds N measures every build N times, the
// builds taking turns, and prints each figure and the median. The client (this process, node:net) keeps --connections keep-alive
// connections, each sending wrk's request (GET / with a Host header) again as soon as the
// previous reply is complete: a fixed number of requests, no pipelining. Loopback only; every
// server is stopped by its PID.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('../..', import.meta.url));

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '20000' },
    warmup: { type: 'string', default: '5000' },
    rounds: { type: 'string', default: '1' },
    connections: { type: 'string', default: '50' },
    build: { type: 'string', multiple: true, default: [] },
    backend: { type: 'string', default: 'epoll' },
    mode: { type: 'string', default: 'sync' },
    keep: { type: 'boolean', default: false },
  },
});
const requests = Number(values.requests);
const warmup = Number(values.warmup);
const connections = Number(values.connections);
const builds = values.build.length === 0 ? [['this tree', root]] : values.build.map((b) => b.split('=', 2));

/** Starts the server under callgrind; resolves with the child, its port and its output file. */
function startServer(dir, outFile) {
  const args = [
    '--tool=callgrind',
    `--callgrind-out-file=${outFile}`,
    process.execPath,
    join(dir, 'dist/cli/http.js'),
    '--port',
    '0',
    '--quiet',
    '--backend',
    values.backend,
    '--mode',
    values.mode,
  ];
  const child = spawn('valgrind', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const match = /listening on .*:(\d+)/.exec(out);
      if (match !== null) resolve({ child, port: Number(match[1]) });
    });
    child.on('exit', (code) => reject(new Error(`server exited (${code}) before listening:\n${stderr}`)));
  });
}

/** Sends `total` requests over `connections` keep-alive connections, one at a time on each. */
function drive(port, total) {
  const request = `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`;
  let sent = 0;
  let answered = 0;
  return new Promise((resolve, reject) => {
    const sockets = [];
    const finishIfDone = () => {
      if (answered < total) return;
      for (const sock of sockets) sock.destroy();
      resolve();
    };
    for (let i = 0; i < Math.min(connections, total); i++) {
      const sock = connect(port, '127.0.0.1');
      sockets.push(sock);
      sock.setNoDelay(true);
      let buffered = '';
      let replyLength = 0;
      sock.on('error', reject);
      sock.on('connect', () => {
        sent++;
        sock.write(request);
      });
      sock.on('data', (data) => {
        buffered += data.toString('latin1');
        for (;;) {
          if (replyLength === 0) {
            const end = buffered.indexOf('\r\n\r\n');
            if (end === -1) return;
            const length = /\r\nContent-Length: (\d+)\r\n/i.exec(buffered.slice(0, end + 2));
            if (length === null || !buffered.startsWith('HTTP/1.1 200 ')) {
              reject(new Error(`unexpected reply ${JSON.stringify(buffered.slice(0, 200))}`));
              return;
            }
            replyLength = end + 4 + Number(length[1]);
          }
          if (buffered.length < replyLength) return;
          buffered = buffered.slice(replyLength);
          replyLength = 0;
          answered++;
          if (sent < total) {
            sent++;
            sock.write(request);
          }
          finishIfDone();
        }
      });
    }
  });
}

/** The total of instructions (Ir) callgrind recorded in outFile. */
function totalInstructions(outFile) {
  const text = readFileSync(outFile, 'latin1');
  const match = /^(?:totals|summary): (\d+)/m.exec(text);
  if (match === null) throw new Error(`no totals in ${outFile}`);
  return Number(match[1]);
}

async function countInstructions(dir, total, outFile) {
  const { child, port } = await startServer(dir, outFile);
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    await drive(port, total);
  } finally {
    child.kill('SIGINT');
    await exited;
  }
  return totalInstructions(outFile);
}

const work = mkdtempSync(join(tmpdir(), 'http-instructions-'));
try {
  process.stdout.write(
    `${requests} requests (after ${warmup} of warm-up), ${connections} connections, ` +
      `backend ${values.backend}, mode ${values.mode}\n`,
  );
  const figures = new Map(builds.map(([name]) => [name, []]));
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const [name, dir] of builds) {
      const base = await countInstructions(dir, warmup, join(work, 'base.out'));
      const full = await countInstructions(dir, warmup + requests, join(work, 'full.out'));
      const perRequest = (full - base) / requests;
      figures.get(name).push(perRequest);
      process.stdout.write(`${name.padEnd(32)} ${perRequest.toFixed(0).padStart(8)} instructions/request\n`);
    }
  }
  if (Number(values.rounds) > 1) {
    for (const [name, list] of figures) {
      const sorted = [...list].sort((a, b) => a - b);
      const median = sorted[Math.floor(sorted.length / 2)];
      const all = list.map((v) => v.toFixed(0)).join(', ');
      process.stdout.write(`${name.padEnd(32)} ${median.toFixed(0).padStart(8)} median (${all})\n`);
    }
  }
} finally {
  // --keep leaves the last build's two callgrind files for bench/where.mjs (extra events: --requests).
  if (values.keep) process.stdout.write(`callgrind files: ${join(work, 'base.out')} ${join(work, 'full.out')}\n`);
  else rmSync(work, { recursive: true, force: true });
}
