// What run.mjs and cpu.mjs share: the servers under test, starting and stopping them pinned
// to CPU 0, and one wrk run pinned to CPU 1 with the CPU time it cost. Loopback only.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { cpuSecondsWithChildren, machineBusySeconds } from '../lib.mjs';
import { HELLO } from './hello.mjs';

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

// nginx-light's binary (Debian); the nginx peer is left out where it is missing.
const NGINX = '/usr/sbin/nginx';

/**
 * nginx with one worker process, keep-alive, answering every request with the hello page from
 * memory (`return 200`, as asyncore-http does; no file is read), on a loopback port, with its
 * own prefix and configuration in a temporary directory: no root-owned path is written, and
 * the master process stays in the foreground (`daemon off`), so it is stopped by its PID.
 * Null when nginx is not installed.
 */
export function nginxServer() {
  if (!existsSync(NGINX)) return null;
  return { name: 'nginx (1 worker)', start: startNginx };
}

/** The quoted nginx string for `text` (the hello page has no quote, backslash or `$`). */
function nginxString(text) {
  if (/["\\$]/.test(text)) throw new Error('nginxString: quote, backslash or $ in the text');
  return `"${text.replaceAll('\n', '\\n')}"`;
}

/** A free loopback port (the kernel's choice for port 0, released again). */
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** Resolves once `port` accepts an HTTP request; rejects when `child` exits first. */
async function answering(child, port, what) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what} exited before it answered`);
    try {
      await fetchPage(port);
      return;
    } catch (err) {
      if (Date.now() > deadline) {
        throw new Error(`${what} did not answer on port ${port}: ${err.message}`, { cause: err });
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** Starts nginx (see nginxServer); resolves with its master process, its port and its prefix. */
async function startNginx() {
  const prefix = mkdtempSync(join(tmpdir(), 'bench-nginx-'));
  const port = await freePort();
  const config = `# Written by bench/http/lib.mjs for one benchmark run.
daemon off;
master_process on;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path ${prefix}/client_body;
    proxy_temp_path ${prefix}/proxy;
    fastcgi_temp_path ${prefix}/fastcgi;
    uwsgi_temp_path ${prefix}/uwsgi;
    scgi_temp_path ${prefix}/scgi;
    # wrk's connections stay open for the whole run, as with the other servers.
    keepalive_requests 1000000000;
    keepalive_timeout 75s;
    server {
        listen 127.0.0.1:${port};
        location / {
            default_type "text/html; charset=utf-8";
            return 200 ${nginxString(HELLO)};
        }
    }
}
`;
  writeFileSync(join(prefix, 'nginx.conf'), config);
  // -e: the error log before the configuration is read (the default is under /var/log).
  const args = ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'error.log')];
  const child = spawn('taskset', ['-c', '0', NGINX, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  child.on('exit', () => rmSync(prefix, { recursive: true, force: true }));
  try {
    await answering(child, port, 'nginx');
  } catch (err) {
    await stop(child);
    throw err;
  }
  return { child, port, prefix };
}

/** GET / on a loopback port: resolves with the body, rejects on an error or a status but 200. */
export function fetchPage(port) {
  return new Promise((resolve, reject) => {
    const request = get({ host: '127.0.0.1', port, path: '/', agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => (body += chunk));
      response.on('end', () =>
        response.statusCode === 200 ? resolve(body) : reject(new Error(`status ${response.statusCode}`)),
      );
    });
    request.on('error', reject);
    request.setTimeout(5000, () => request.destroy(new Error('no answer in 5 s')));
  });
}

/**
 * Starts a server pinned to CPU 0; resolves once it listens (it printed its port, or for a
 * subject with its own `start`, once that says so) and has answered GET / with the hello page.
 */
export async function start(subject) {
  const server = subject.start === undefined ? await startListening(subject) : await subject.start();
  const body = await fetchPage(server.port).catch((err) => err.message);
  if (body !== HELLO) {
    await stop(server.child);
    throw new Error(`${subject.name} does not serve the hello page: ${JSON.stringify(body.slice(0, 200))}`);
  }
  return server;
}

function startListening(subject) {
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
 * request (from /proc/PID/stat around the run, its worker processes included) and wrk's, and
 * how many cores other processes took meanwhile (`others`: the machine's busy time less server and wrk, good to
 * about +-0.1 core; more than ~0.25 means the run was disturbed).
 */
export function measure(child, port, options) {
  const busyBefore = machineBusySeconds();
  const before = cpuSecondsWithChildren(child.pid);
  const { requests, rate, wrkCpu } = wrk(port, options);
  const after = cpuSecondsWithChildren(child.pid);
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
