#!/usr/bin/env node
// Work per request, for comparing one change against what it replaces: the server's CPU
// time (utime + stime from /proc/PID/stat) over a wrk run, divided by the requests wrk
// counted, for several servers side by side, several rounds. On a shared machine req/s
// swings with other work; CPU per request moves much less.
//
//   node bench/http/cpu.mjs [--duration 4] [--rounds 3] [--connections 50] [--only TEXT]
//                           [--baseline DIR] [--ceiling] [--nginx]
//
// --baseline DIR adds asyncore-http as built in DIR (a copy of an older dist/, next to a
// build/ and node_modules/), so a change is measured against what it replaces in one run.
// --ceiling adds bench/http/ceiling.c (compiled with cc): the system calls alone.
// --nginx adds nginx with one worker (nginx-light's /usr/sbin/nginx).
// Prints req/s, server CPU microseconds per request (user, system), and wrk's own CPU per
// request and share of its core. Loopback only; every server it starts is stopped by PID.
import { flags } from '../lib.mjs';
import { ASYNCORE_HTTP, NODE_HTTP, asyncoreHttp, ceilingServer, measure, nginxServer, start, stop } from './lib.mjs';

const USAGE = `usage: node bench/http/cpu.mjs [--duration 4] [--rounds 3] [--connections 50] [--only TEXT]
                               [--baseline DIR] [--ceiling] [--nginx]`;
const values = flags(
  {
    duration: 4,
    rounds: 3,
    connections: 50,
    only: undefined,
    baseline: undefined,
    ceiling: false,
    nginx: false,
  },
  USAGE,
);
const options = { seconds: values.duration, connections: values.connections };

const subjects = [
  NODE_HTTP,
  ASYNCORE_HTTP[0],
  ...(values.baseline === undefined ? [] : [asyncoreHttp('baseline sync epoll', values.baseline, 'epoll', 'sync')]),
  ...(values.ceiling ? [ceilingServer()].filter((s) => s !== null) : []),
  ...(values.nginx ? [nginxServer()].filter((s) => s !== null) : []),
].filter((s) => values.only === undefined || s.name.includes(values.only));

for (let round = 0; round < values.rounds; round++) {
  for (const subject of subjects) {
    const { child, port } = await start(subject);
    try {
      measure(child, port, { ...options, seconds: 1 }); // warm-up: JIT, connections
      const m = measure(child, port, options);
      process.stdout.write(
        `${subject.name.padEnd(28)} ${m.rate.toFixed(0).padStart(7)} req/s  ` +
          `cpu/request ${m.serverCpu.toFixed(2)} us (user ${m.serverUser.toFixed(2)}, sys ${m.serverSystem.toFixed(2)})  ` +
          `wrk ${m.wrkCpu.toFixed(2)} us/request, ${(100 * m.wrkShare).toFixed(0)}% of its core, ` +
          `others ${m.others.toFixed(2)} cores\n`,
      );
    } finally {
      await stop(child);
    }
  }
}
