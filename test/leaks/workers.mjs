// LeakSanitizer: 21 worker threads, each running an echo server and two clients that
// ping-pong without end, terminated mid-loop. Three endings, in turn:
//   serving    loop(): the worker posts once traffic flows and goes on looping; terminate()
//              meets the polling thread mid-wait or with a batch queued
//   busy       loop(): the worker posts, then keeps its JS thread busy, so the polling
//              thread's next batch is queued and undelivered when terminate() comes
//   sync-idle  loopSync(): once traffic flowed the clients close and the worker blocks in
//              loopSync({ timeout: Infinity }) on the idle server; terminate() must end
//              that wait (reactor_wrap.cc watches the worker's libuv loop for it)
// Node then tears the worker's environment down: the bridge's cleanup hook must stop and
// join the thread, and everything either loop allocated must be freed. This file is both the
// host (main thread) and the worker.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

import * as asyncore from 'asyncore';

import { check, echoKit, runScript } from '../fixtures/echo-kit.mjs';

const { loop, loopSync } = asyncore;
const { Bouncer, EchoServer } = echoKit(asyncore);
const BACKENDS = asyncore.availableBackends();

const WORKERS = 21;
const ENDINGS = ['serving', 'busy', 'sync-idle'];
/** Echoes each client must have read before the worker says traffic flows. */
const READS_BEFORE_REPORT = 20;

function workerMain({ backend, ending }) {
  const map = new Map();
  const server = new EchoServer(map);
  const clients = [new Bouncer(server.port, map), new Bouncer(server.port, map)];
  if (ending === 'sync-idle') {
    while (!clients.every((c) => c.reads >= READS_BEFORE_REPORT)) loopSync({ map, backend, count: 1 });
    parentPort.postMessage({ reads: clients.map((c) => c.reads) });
    for (const client of clients) client.close();
    loopSync({ map, backend, timeout: Infinity });
    return;
  }
  let reported = false;
  // Polled from a timer rather than hooked into the handlers: the handlers stay the kit's.
  const watcher = setInterval(() => {
    if (reported || !clients.every((c) => c.reads >= READS_BEFORE_REPORT)) return;
    reported = true;
    clearInterval(watcher);
    parentPort.postMessage({ reads: clients.map((c) => c.reads) });
    if (ending === 'busy') {
      setImmediate(() => {
        for (;;) {
          // busy until terminated: the polling thread's batches queue up meanwhile
        }
      });
    }
  }, 5);
  loop({ map, backend }).catch((err) => parentPort.postMessage({ error: String(err) }));
}

async function runWorker(backend, ending) {
  const worker = new Worker(new URL(import.meta.url), { workerData: { backend, ending } });
  let report = null;
  const exitCode = await new Promise((resolve, reject) => {
    worker.on('message', (message) => {
      report = message;
      void worker.terminate();
    });
    worker.on('error', reject);
    worker.on('exit', resolve);
  });
  const where = `worker (${ending} on ${backend})`;
  check(report !== null && report.error === undefined, `${where} reported ${JSON.stringify(report)}`);
  check(
    report.reads.every((n) => n >= READS_BEFORE_REPORT),
    `${where}: too few echoes`,
  );
  // terminate() ends a worker with exit code 1.
  check(exitCode === 1, `${where} exited with ${exitCode}, not 1 (terminated)`);
}

if (isMainThread) {
  runScript('workers', async () => {
    for (let i = 0; i < WORKERS; i++) {
      await runWorker(BACKENDS[i % BACKENDS.length], ENDINGS[i % ENDINGS.length]);
    }
    return `${WORKERS} workers terminated mid-loop (${ENDINGS.join(', ')}) on ${BACKENDS.join(', ')}`;
  });
} else {
  workerMain(workerData);
}
