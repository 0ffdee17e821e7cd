// LeakSanitizer: native reactors created, used, and either closed or dropped to the garbage
// collector, many times over, on every backend:
//   Reactor     (loopSync's)   500 closed with close(), 500 dropped unclosed
//   ThreadLoop  (loop()'s)     100 stopped with stop(), 100 dropped without stop()
//   loopSync                   200 private maps run once and dropped (the reactor lives in a
//                              WeakMap keyed by the map)
// Each one first proves it works (a readable socketpair end is reported ready). The dropped
// ones own an epoll fd and/or an eventfd: the process's fd count returns to where it started
// only once their finalizers ran, so the script checks that (after forced collections)
// before LeakSanitizer looks at the heap at exit.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { Dispatcher, Socket, availableBackends, loopSync, socketpair } from 'asyncore';

import { native } from '../../dist/binding.js';
import { check, openFds, runScript } from '../fixtures/echo-kit.mjs';

const BACKENDS = availableBackends();

const REACTORS = 1000;
const THREAD_LOOPS = 200;
const SYNC_MAPS = 200;
const POLLIN = native.constants.POLLIN;

// A gc() of our own, without asking whoever runs the script for --expose-gc.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');

function reactorRound(i, reader) {
  const backend = BACKENDS[i % BACKENDS.length];
  const reactor = new native.Reactor(backend);
  check(reactor.setInterest(reader.fileno(), POLLIN) === 0, `setInterest on ${backend}`);
  const ready = new Int32Array(4);
  reactor.setReadyArray(ready);
  check(reactor.poll(0) === 1 && ready[0] === reader.fileno(), `${backend} missed a readable fd`);
  if (i % 2 === 0) reactor.close();
}

async function threadLoopRound(i, reader) {
  const backend = BACKENDS[i % BACKENDS.length];
  // The callback must not hold the ThreadLoop: the thread-safe function keeps it alive until
  // stop(), so a callback that referred to its loop would make the loop uncollectable.
  const results = [];
  let delivered = () => undefined;
  const batch = new Promise((resolve) => (delivered = resolve));
  const thread = new native.ThreadLoop(backend, (result) => {
    results.push(result);
    delivered();
  });
  thread.setReadyArray(new Int32Array(4));
  check(thread.setInterest(reader.fileno(), POLLIN) === 0, `setInterest on ${backend}`);
  thread.resume(1000);
  await batch;
  check(results[0] === 1, `${backend}'s thread reported ${results[0]} ready fds, not 1`);
  if (i % 2 === 0) thread.stop();
  // Dropped without stop(): its destructor stops and joins the thread. Unref'd, so a loop
  // not yet collected cannot keep the process alive.
  else thread.unref();
}

/** A map with one dispatcher that closes itself on its first read event. */
function syncMapRound(i, reader) {
  const map = new Map();
  const channel = new Dispatcher(null, map);
  let reads = 0;
  channel.setSocket(Socket.fromFd(native.dup(reader.fileno())), map);
  channel.writable = () => false;
  channel.handleRead = () => {
    reads++;
    channel.close();
  };
  loopSync({ map, backend: BACKENDS[i % BACKENDS.length] });
  check(reads === 1, `loopSync dispatched ${reads} reads, not 1`);
}

async function collectUntilFdsAre(expected) {
  for (let attempt = 0; attempt < 100; attempt++) {
    gc();
    // Finalizers of native objects run from Node's loop after the collection.
    await new Promise((resolve) => setTimeout(resolve, 10));
    if (openFds() === expected) return;
  }
  throw new Error(`fds stayed at ${openFds()} after collections, expected ${expected}: finalizers did not run`);
}

runScript('reactor-gc', async () => {
  // One readable fd that every reactor watches.
  const [reader, writer] = socketpair();
  writer.send('x');
  const fdsBefore = openFds();
  for (let i = 0; i < REACTORS; i++) reactorRound(i, reader);
  for (let i = 0; i < THREAD_LOOPS; i++) await threadLoopRound(i, reader);
  for (let i = 0; i < SYNC_MAPS; i++) syncMapRound(i, reader);
  check(openFds() > fdsBefore, 'no reactor was left for the collector: the script tests nothing');
  await collectUntilFdsAre(fdsBefore);
  reader.close();
  writer.close();
  return `${REACTORS} Reactors, ${THREAD_LOOPS} ThreadLoops and ${SYNC_MAPS} loopSync maps, half of them dropped to GC`;
});
