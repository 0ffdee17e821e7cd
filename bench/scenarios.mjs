// What the echo benchmark measures, shared by the harness that measures it (run.mjs) and the
// reporter that tabulates and charts results.json (report.mjs): the servers under test, the
// scenarios and their points, and the constants both need to agree on.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.dirname(BENCH);
/** Compiled C programs and the results of any run but a full one (git-ignored). */
export const OUT = path.join(BENCH, 'out');
export const SERVER_CPU = 0;
export const LOADGEN_CPU = 1;
// select() cannot watch a descriptor >= FD_SETSIZE; a server with ~1000 connections gets there.
const FD_SETSIZE = 1024;
export const SELECT_SKIP = `select() cannot watch fd >= FD_SETSIZE (${FD_SETSIZE}); skipped from 1000 connections up`;
/** The subject every "vs node:net" ratio divides by. */
export const BASELINE = 'node-net';
/** The subject every "vs C" ratio divides by: the minimal C epoll server, the ceiling of the setup. */
export const CEILING = 'c-epoll';
// Median CPU (in cores) that other processes used on the two cores during a measurement,
// above which a table cell is marked as disturbed.
export const DISTURBED = 0.25;

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

export const SUBJECTS = [
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
    id: CEILING,
    label: 'C epoll (ceiling)',
    family: 'c',
    command: [path.join('bench', 'out', 'epoll-echo'), '--port', '0'],
  },
];

// --- scenarios --------------------------------------------------------------------------

export const SCENARIOS = [
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
export const MEMORY = {
  id: 'memory',
  title: 'Resident memory per idle connection',
  // Python is left out: its asyncore.poll2 re-registers every fd per iteration and accepts one
  // connection per iteration, so 10,000 accepts take minutes (see the idle table).
  subjects: ['asyncore-epoll-sync', 'asyncore-epoll-thread', BASELINE, CEILING],
};

/** The key of a measurement point in results.json. */
export const pointKey = (p) => `c${p.conns}-i${p.idle}-s${p.size}`;
