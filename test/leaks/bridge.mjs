// LeakSanitizer: the loop() thread bridge started and stopped 200 times, with and without
// events in flight. Five kinds of round, in turn, on every backend:
//   idle        loop() on a map with one listener: it waits, times out, and ends by `count`
//   traffic     loop() while two clients ping-pong without end: it ends by `count` with data
//               still moving, so the last stop() comes while the sockets are busy
//   exit-now    a handler throws ExitNow mid-traffic: the promise rejects, the thread stops
//   mid-wait    the native ThreadLoop is stopped while its thread waits on an idle fd
//   queued      the native ThreadLoop is stopped with a batch queued and not yet delivered
//               (the JS thread is busy while the thread's NonBlockingCall lands)
// The last two use the binding directly: only there can stop() meet a batch in flight.
// Every round checks its own outcome, and the process ends with the fds it started with.
import { performance } from 'node:perf_hooks';

import * as asyncore from 'asyncore';

import { native } from '../../dist/binding.js';
import { check, echoKit, openFds, runScript } from '../fixtures/echo-kit.mjs';

const { ExitNow, closeAll, loop, socketpair } = asyncore;
const { Bouncer, EchoServer } = echoKit(asyncore);
const BACKENDS = asyncore.availableBackends();

const ROUNDS = 200;
const POLLIN = native.constants.POLLIN;

async function idleRound(backend) {
  const map = new Map();
  new EchoServer(map);
  const iterations = [];
  await loop({ map, backend, count: 2, timeout: 0.001, trace: (it) => iterations.push(it) });
  check(iterations.length === 2, `idle loop ran ${iterations.length} iterations, not 2`);
  check(
    iterations.every((it) => it.ready.length === 0),
    'an idle loop saw a ready fd',
  );
  closeAll(map);
}

async function trafficRound(backend) {
  const map = new Map();
  const server = new EchoServer(map);
  const clients = [new Bouncer(server.port, map), new Bouncer(server.port, map)];
  await loop({ map, backend, count: 40 });
  check(
    clients.every((c) => c.reads > 0),
    `a client got no echo in 40 iterations (${clients.map((c) => c.reads).join(', ')})`,
  );
  closeAll(map);
}

async function exitNowRound(backend) {
  const map = new Map();
  const server = new EchoServer(map);
  const client = new Bouncer(server.port, map);
  const handleRead = client.handleRead.bind(client);
  client.handleRead = () => {
    handleRead();
    if (client.reads === 5) throw new ExitNow('enough');
  };
  const outcome = await loop({ map, backend }).then(
    () => 'resolved',
    (err) => (err instanceof ExitNow ? 'ExitNow' : String(err)),
  );
  check(outcome === 'ExitNow', `loop() ended with ${outcome}, not ExitNow`);
  check(client.reads === 5, `the client read ${client.reads} echoes before ExitNow, not 5`);
  closeAll(map);
}

/** A ThreadLoop watching the read end of a socketpair; every onBatch result goes to `batches`. */
function nativeLoop(backend, onBatch = () => undefined) {
  const [reader, writer] = socketpair();
  const batches = [];
  const thread = new native.ThreadLoop(backend, (result) => {
    batches.push(result);
    onBatch();
  });
  const ready = new Int32Array(8);
  thread.setReadyArray(ready);
  check(thread.setInterest(reader.fileno(), POLLIN) === 0, 'setInterest failed');
  return { batches, ready, thread, reader, writer };
}

function nextTurn() {
  return new Promise((resolve) => setImmediate(resolve));
}

async function midWaitRound(backend) {
  const state = nativeLoop(backend);
  state.thread.resume(60_000);
  await nextTurn();
  state.thread.stop();
  state.thread.stop(); // idempotent
  await nextTurn();
  check(state.batches.length === 0, 'a batch arrived from a wait that was stopped');
  state.reader.close();
  state.writer.close();
}

async function queuedRound(backend) {
  let delivered = () => undefined;
  const firstBatch = new Promise((resolve) => (delivered = resolve));
  const state = nativeLoop(backend, () => delivered());
  state.writer.send('x');
  // First a delivered batch: the thread really polls and reports the readable fd.
  state.thread.resume(1000);
  await firstBatch;
  check(state.batches[0] === 1, `first batch reported ${state.batches[0]} fds, not 1`);
  check(state.ready[0] === state.reader.fileno(), 'wrong ready fd');
  // The fd is still readable: the next wait returns at once and its batch is queued while
  // this thread stays busy, then stop() comes before Node could deliver it.
  state.thread.resume(1000);
  const busyUntil = performance.now() + 20;
  while (performance.now() < busyUntil) {
    // keep the JS thread busy on purpose
  }
  state.thread.stop();
  await nextTurn();
  await nextTurn();
  check(state.batches.length === 1, `${state.batches.length - 1} batch(es) delivered after stop()`);
  state.reader.close();
  state.writer.close();
}

const KINDS = [idleRound, trafficRound, exitNowRound, midWaitRound, queuedRound];

runScript('bridge', async () => {
  const fdsBefore = openFds();
  for (let i = 0; i < ROUNDS; i++) {
    const kind = KINDS[i % KINDS.length];
    const backend = BACKENDS[Math.floor(i / KINDS.length) % BACKENDS.length];
    await kind(backend);
  }
  const fdsAfter = openFds();
  check(fdsAfter === fdsBefore, `${fdsAfter - fdsBefore} fds more than before the rounds`);
  return `${ROUNDS} rounds (${KINDS.map((k) => k.name).join(', ')}) on ${BACKENDS.join(', ')}`;
});
