// What run.mjs and cpu.mjs share: the servers under test, starting and stopping them pinned
// to CPU 0, and one wrk run pinned to CPU 1 with the CPU time it cost. Loopback only.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { cpuSeconds, machineBusySeconds } from '../lib.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = fileURLToPath(new URL('../..', import.meta.url));
const node = process.execPath;

/** asyncore-http as built in `dir` (the repository, or a copy of an older build). */
export function asyncoreHttp(name, dir, backend, mode) {
  // --quiet: no access log line per request (node:http writes none either).
  const args = [join(dir, 'dist/cli/http.js'), '--quiet', '--backend', backend, '--mode', mode];
  return { name, command: node, args, portArgs: ['--port', '0'] };
}

export const NODE_HTTP = {
  name: 'node:http',
  command: node,
  args: [join(here, 'node-http.mjs')],
  portArgs: ['--port', '0'],
};

export const ASYNCORE_HTTP = [
  asyncoreHttp('asyncore-http sync epoll', root, 'epoll', 'sync'),
  asyncoreHttp('asyncore-http thread epoll', root, 'epoll', 'thread'),
  asyncoreHttp('asyncore-http sync poll', root, 'poll', 'sync'),
];

/**
 * bench/http/ceiling.c compiled with cc: the system calls alone, no per-request work. What it
 * reaches is what wrk -t1 can drive on this machine. Null when there is no C compiler.
 */
export function ceilingServer() {
  const dir = mkdtempSync(join(tmpdir(), 'http-ceiling-'));
  // The binary is not needed once it runs: its directory goes when this process exits.
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const binary = join(dir, 'http-ceiling');
  const result = spawnSync('cc', ['-O2', '-o', binary, join(here, 'ceiling.c')], { encoding: 'utf8' });
  if (result.status !== 0) return null;
  return { name: 'C ceiling (ceiling.c)', command: binary, args: [], portArgs: ['0'] };
}

/** Starts a server pinned to CPU 0; resolves once it printed its port. */
export function start(subject) {
  const child = spawn('taskset', ['-c', '0', subject.command, ...subject.args, ...subject.portArgs], {
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

/** SIGTERM, then SIGKILL after 3 s; resolves when it has exited. */
export function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve();
      return;
    }
    child.on('exit', resolve);
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 3000).unref();
  });
}

/**
 * One wrk run pinned to CPU 1: requests, req/s and wrk's own CPU seconds (from bash's
 * `times`, which prints the children's user and system time last). Fails on socket errors
 * and non-2xx answers.
 */
export function wrk(port, { seconds, connections }) {
  const script = 'taskset -c 1 wrk "$@"; status=$?; times >&2; exit $status';
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, `http://127.0.0.1:${port}/`];
  const result = spawnSync('bash', ['-c', script, 'wrk', ...args], { encoding: 'utf8' });
  const out = result.stdout;
  if (result.status !== 0 || /Socket errors|Non-2xx/.test(out)) throw new Error(`wrk failed:\n${out}${result.stderr}`);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const rate = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  if (!(requests > 0 && rate > 0)) throw new Error(`no requests counted in wrk's output:\n${out}`);
  const times = [...result.stderr.matchAll(/(\d+)m([\d.]+)s (\d+)m([\d.]+)s/g)].at(-1) ?? [];
  const wrkCpu = 60 * Number(times[1]) + Number(times[2]) + 60 * Number(times[3]) + Number(times[4]);
  return { requests, rate, wrkCpu };
}

/**
 * One measured wrk run against a started server: req/s, the server's CPU microseconds per
 * request (from /proc/PID/stat around the run) and wrk's, and how many cores other
 * processes took meanwhile (`others`: the machine's busy time less server and wrk, good to
 * about +-0.1 core; more than ~0.25 means the run was disturbed).
 */
export function measure(child, port, options) {
  const busyBefore = machineBusySeconds();
  const before = cpuSeconds(child.pid);
  const { requests, rate, wrkCpu } = wrk(port, options);
  const after = cpuSeconds(child.pid);
  const busyAfter = machineBusySeconds();
  const serverSeconds = after.user - before.user + after.system - before.system;
  const perRequest = (seconds) => (seconds * 1e6) / requests;
  return {
    rate,
    requests,
    serverUser: perRequest(after.user - before.user),
    serverSystem: perRequest(after.system - before.system),
    serverCpu: perRequest(serverSeconds),
    wrkCpu: perRequest(wrkCpu),
    wrkShare: wrkCpu / options.seconds,
    others: (busyAfter - busyBefore - serverSeconds - wrkCpu) / options.seconds,
  };
}
