#!/usr/bin/env node
// Instructions per echo round trip, counted by valgrind (callgrind): a figure that does not
// depend on how loaded the machine is, so a change in the package's own cost per event can be
// measured while other work runs.
//
//   node bench/instructions.mjs [--subjects sync,thread,c] [--conns 50] [--rounds 400,1200] [--repeat 1]
//
// For each subject and each entry of --rounds it starts the server afresh under
// `valgrind --tool=callgrind`, drives --conns connections that each make that many 64-byte
// round trips (node:net clients, TCP_NODELAY, every echo checked byte for byte), stops the
// server with SIGTERM and reads the instructions it executed (callgrind's total, every thread
// of the process, user space only). Start-up, accepting and shutting down cost the same in
// every run, so the difference between the runs with the fewest and the most rounds, divided
// by the extra round trips, is the marginal cost of one round trip in a warm server.
//
// Subjects: sync and thread are `node dist/cli/echo.js --backend epoll --mode ...` (build
// dist first: npx tsc -p tsconfig.build.json); c is bench/peers/epoll-echo.c.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { flags, waitFor } from './lib.mjs';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(BENCH);
const OUT = path.join(BENCH, 'out');
const MESSAGE = Buffer.alloc(64, 'x');

const SUBJECTS = {
  sync: ['node', 'dist/cli/echo.js', '--port', '0', '--backend', 'epoll', '--mode', 'sync'],
  thread: ['node', 'dist/cli/echo.js', '--port', '0', '--backend', 'epoll', '--mode', 'thread'],
  c: [path.join(OUT, 'epoll-echo'), '--port', '0'],
};

const USAGE =
  'usage: node bench/instructions.mjs [--subjects sync,thread,c] [--conns 50] [--rounds 400,1200] [--repeat 1]';
const values = flags({ subjects: 'sync,thread,c', conns: 50, rounds: '400,1200', repeat: 1 }, USAGE);
const subjects = values.subjects.split(',');
for (const id of subjects) if (!(id in SUBJECTS)) throw new Error(`unknown subject ${id}`);
const conns = values.conns;
const rounds = values.rounds.split(',').map(Number);
if (rounds.length < 2) throw new Error('--rounds needs at least two counts');

mkdirSync(OUT, { recursive: true });
execFileSync('cc', ['-O2', '-o', path.join(OUT, 'epoll-echo'), path.join(BENCH, 'peers', 'epoll-echo.c')]);

/** One client: `count` round trips of MESSAGE, each echo checked; resolves when all are done. */
function pingPong(port, count) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port, noDelay: true });
    let left = count;
    let got = 0;
    sock.on('connect', () => sock.write(MESSAGE));
    sock.on('data', (chunk) => {
      for (const byte of chunk) if (byte !== 0x78) reject(new Error('echo corrupted'));
      got += chunk.length;
      if (got < MESSAGE.length) return;
      if (got > MESSAGE.length) reject(new Error('more echo than was sent'));
      got = 0;
      if (--left > 0) sock.write(MESSAGE);
      else sock.end();
    });
    sock.on('close', () => (left === 0 ? resolve() : reject(new Error(`closed with ${left} round trips left`))));
    sock.on('error', reject);
  });
}

/** Instructions the subject executed over its whole life while serving `count` rounds per connection. */
async function measure(id, count) {
  const outFile = path.join(OUT, `callgrind.${id}.${count}.out`);
  rmSync(outFile, { force: true });
  const server = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${outFile}`, ...SUBJECTS[id]], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stderr.resume();
  const exited = new Promise((resolve) => server.on('exit', resolve));
  try {
    const [, port] = await waitFor(server.stdout, /listening on .*:(\d+)/, id, 120_000);
    await Promise.all(Array.from({ length: conns }, () => pingPong(Number(port), count)));
  } finally {
    server.kill('SIGTERM');
    await exited;
  }
  const totals = /^totals:\s+(\d+)/m.exec(readFileSync(outFile, 'utf8'));
  if (totals === null) throw new Error(`${outFile}: no totals line`);
  return Number(totals[1]);
}

const lines = [];
for (let r = 1; r <= values.repeat; r++) {
  for (const id of subjects) {
    const totals = [];
    for (const count of rounds) {
      const total = await measure(id, count);
      totals.push(total);
      process.stderr.write(`${id}: ${conns} x ${count} round trips: ${total} instructions\n`);
    }
    const extra = conns * (rounds[rounds.length - 1] - rounds[0]);
    const perRoundTrip = (totals[totals.length - 1] - totals[0]) / extra;
    lines.push(`| ${id} | ${rounds.join(', ')} | ${totals.join(', ')} | ${perRoundTrip.toFixed(0)} |`);
  }
}
console.log(`${conns} connections, 64 B ping-pong, epoll; instructions counted by callgrind over the server's life`);
console.log('');
console.log('| subject | rounds per connection | instructions per run | instructions per round trip (marginal) |');
console.log('|---|---|---|---:|');
for (const line of lines) console.log(line);
