// A worker thread that ends with sockets, pipes and dups still open (worker.terminate(), or
// process.exit() inside it) runs no JavaScript again: the addon closes what its environment
// opened when the environment goes away, so no fd and no bound port outlive the worker.
import { once } from 'node:events';
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

import { AF_INET, Socket } from 'asyncore';
import { describe, expect, it } from 'vitest';

import { DIST } from './helpers.js';

/** What each open fd of this process is, e.g. 'socket:[123]' (closed meanwhile: skipped). */
function fdTargets(): Set<string> {
  const targets = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      targets.add(readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // The fd of the directory listing itself, gone by now.
    }
  }
  return targets;
}

// The worker opens a listener, a connected client, a socketpair, a pipe and a FileWrapper dup,
// reports what they are (their /proc targets) and its port, then ends without closing them.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { readlinkSync } = require('node:fs');
import(workerData.index).then((a) => {
  const listener = new a.Socket(a.AF_INET);
  listener.bind(['127.0.0.1', 0]);
  listener.listen(4);
  const client = new a.Socket(a.AF_INET);
  client.connectEx(listener.getsockname());
  const [x, y] = a.socketpair();
  const fds = [listener, client, x, y].map((s) => s.fileno());
  if (a.SplicePipe.supported) new a.SplicePipe(4096);
  fds.push(new a.FileWrapper(x.fileno()).fileno());
  const targets = fds.map((fd) => readlinkSync('/proc/self/fd/' + fd));
  parentPort.postMessage({ port: listener.getsockname()[1], targets });
  if (workerData.ending === 'exit') process.exit(0);
  setInterval(() => {}, 1000);
});
`;

describe('a worker that ends with sockets open', () => {
  it.each(['terminate', 'exit'] as const)('leaves no fd and no listening port behind (%s)', async (ending) => {
    const index = pathToFileURL(join(DIST, 'index.js')).href;
    const worker = new Worker(WORKER, { eval: true, workerData: { index, ending } });
    // Listened for from the start: when this thread is slow to read the worker's message, Node
    // delivers it and then 'exit' in one go, before code awaiting the message could listen.
    const exited = once(worker, 'exit');
    const [report] = (await once(worker, 'message')) as [{ port: number; targets: string[] }];
    expect(report.targets).toHaveLength(5);
    for (const target of report.targets) expect(target).toMatch(/^socket:\[\d+\]$/);
    if (ending === 'terminate') await worker.terminate();
    const [code] = (await exited) as [number];
    expect(code).toBe(ending === 'exit' ? 0 : 1);
    const left = fdTargets();
    expect(report.targets.filter((target) => left.has(target))).toEqual([]);
    // Nothing listens on the worker's port any more.
    const probe = new Socket(AF_INET);
    try {
      probe.setBlocking(true);
      expect(() => probe.connect(['127.0.0.1', report.port])).toThrow(/ECONNREFUSED/);
    } finally {
      probe.close();
    }
  });
});
