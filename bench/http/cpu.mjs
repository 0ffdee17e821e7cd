#!/usr/bin/env node
// Work per request, measured in a way the noise of a shared machine does not swamp: the
// server's CPU time (utime + stime from /proc/PID/stat) over a wrk run, divided by the
// requests wrk counted. Both servers of the HTTP benchmark, side by side, several rounds.
//
//   node bench/http/cpu.mjs [--duration 4] [--rounds 3] [--connections 50] [--only NAME]
//                           [--baseline DIR]
//
// --baseline DIR adds asyncore-http as built in DIR (a copy of an older dist/, next to a
// build/ and node_modules/), so a change is measured against what it replaces in one run.
// Prints microseconds of server CPU per request (user, system, total), req/s, and wrk's own
// CPU per request and share of its core (from GNU time): when wrk's share nears 100%, the
// client is the limit, not the server. Loopback only; every server it starts is stopped by PID.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = fileURLToPath(new URL('../..', import.meta.url));
const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    only: { type: 'string' },
    baseline: { type: 'string' },
  },
});
const duration = Number(values.duration);
const rounds = Number(values.rounds);
const connections = Number(values.connections);

const subjects = [
  { name: 'node:http', args: [`${here}node-http.mjs`] },
  { name: 'asyncore-http sync epoll', args: [`${root}dist/cli/http.js`, '--quiet', '--backend', 'epoll', '--mode', 'sync'] },
  ...(values.baseline === undefined
    ? []
    : [{ name: 'baseline sync epoll', args: [`${values.baseline}/dist/cli/http.js`, '--quiet', '--backend', 'epoll', '--mode', 'sync'] }]),
].filter((s) => values.only === undefined || s.name.includes(values.only));

// Clock ticks per second for /proc/PID/stat; 100 on every Linux this runs on.
const TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

function cpuTicks(pid) {
  // Fields after the ")" of the command name: state is field 3, utime 14, stime 15.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]), system: Number(fields[12]) };
}

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

/** One wrk run: its requests, req/s, and wrk's own CPU seconds (GNU time, on stderr). */
function wrk(port, seconds) {
  const result = spawnSync(
    '/usr/bin/time',
    ['-f', 'wrk-cpu %U %S', 'taskset', '-c', '1', 'wrk', '-t1', `-c${connections}`, `-d${seconds}s`, `http://127.0.0.1:${port}/`],
    { encoding: 'utf8' },
  );
  const out = result.stdout;
  if (result.status !== 0 || /Socket errors|Non-2xx/.test(out)) throw new Error(`wrk failed:\n${out}${result.stderr}`);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const rate = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const [, user, system] = /wrk-cpu ([\d.]+) ([\d.]+)/.exec(result.stderr) ?? [];
  return { requests, rate, wrkCpu: Number(user) + Number(system) };
}

for (let round = 0; round < rounds; round++) {
  for (const subject of subjects) {
    const { child, port } = await start(subject);
    try {
      wrk(port, 1); // warm-up: JIT, connections
      const before = cpuTicks(child.pid);
      const { requests, rate, wrkCpu } = wrk(port, duration);
      const after = cpuTicks(child.pid);
      const us = (ticks) => ((ticks / TICKS) * 1e6) / requests;
      const user = us(after.user - before.user);
      const system = us(after.system - before.system);
      process.stdout.write(
        `${subject.name.padEnd(28)} ${rate.toFixed(0).padStart(7)} req/s  ` +
          `cpu/request ${(user + system).toFixed(2)} us (user ${user.toFixed(2)}, sys ${system.toFixed(2)})  ` +
          `wrk ${((wrkCpu * 1e6) / requests).toFixed(2)} us/request, ${((100 * wrkCpu) / duration).toFixed(0)}% of its core\n`,
      );
    } finally {
      await stop(child);
    }
  }
}
