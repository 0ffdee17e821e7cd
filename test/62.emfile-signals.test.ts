// Faults from the process around the loop: running out of fds while accepting, and
// signals that interrupt the wait. Both run in a child process (a low fd limit; signal
// listeners of its own), in both loop modes; the clients are node:net in this process.
import { randomBytes } from 'node:crypto';
import { connect, type Socket as NetSocket } from 'node:net';
import { constants } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { BACKENDS, DIST, EventChild, FAULTS, MODES, cpuTicks, numberField, signalPending } from './helpers.js';

const PACKAGE = join(DIST, 'index.js');
const CLK_TCK = 100;

const children: EventChild[] = [];
const sockets: NetSocket[] = [];

afterEach(() => {
  for (const child of children.splice(0)) child.kill();
  for (const socket of sockets.splice(0)) socket.destroy();
});

function startChild(command: string, args: string[]): EventChild {
  const child = new EventChild(command, args);
  children.push(child);
  return child;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Connects, sends `message`, resolves with what came back once as long, then closes. */
function echoOnce(port: number, message: string, ms = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    sockets.push(socket);
    let got = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no echo of ${message} within ${ms} ms (got ${JSON.stringify(got)})`));
    }, ms);
    socket.on('connect', () => socket.write(message));
    socket.on('data', (chunk: Buffer) => {
      got += chunk.toString('latin1');
      if (got.length < message.length) return;
      clearTimeout(timer);
      socket.end();
      resolve(got);
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

// --- EMFILE on accept ----------------------------------------------------------------------

const FD_LIMIT = 64;
// More than the child can hold: it runs out of fds with connections still queued.
const EXHAUSTING_CLIENTS = 100;
// The listener backs off 100 ms after EMFILE: about ten errors a second. A loop that polled
// it again at once would report thousands.
const MAX_ERRORS_PER_SECOND = 50;

const CASES = BACKENDS.flatMap((backend) => MODES.map((mode) => ({ backend, mode })));

describe.each(CASES)('EMFILE on accept ($backend, $mode)', ({ backend, mode }) => {
  it('reaches handleError a few times a second without spinning, and accepting resumes once fds are free', async () => {
    const child = startChild('sh', [
      '-c',
      `ulimit -n ${FD_LIMIT} && exec "$0" "$@"`,
      process.execPath,
      join(FAULTS, 'emfile-server.mjs'),
      PACKAGE,
      mode,
      backend,
    ]);
    const port = numberField(await child.next('listening'), 'port');
    for (let i = 0; i < EXHAUSTING_CLIENTS; i++) {
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      sockets.push(socket);
    }

    const exhausted = await child.next('exhausted');
    const pid = child.process.pid as number;
    const ticksBefore = cpuTicks(pid);
    const wallBefore = performance.now();
    expect(exhausted['code']).toBe('EMFILE');
    const held = numberField(exhausted, 'accepted');
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThan(FD_LIMIT);

    // One second with the fds exhausted and connections waiting.
    const window = await child.next('window');
    const cpuMs = ((cpuTicks(pid) - ticksBefore) * 1000) / CLK_TCK;
    const wallMs = performance.now() - wallBefore;
    const errors = numberField(window, 'errors');
    expect(errors, JSON.stringify(window)).toBeGreaterThanOrEqual(1);
    expect(errors, JSON.stringify(window)).toBeLessThanOrEqual(MAX_ERRORS_PER_SECOND);
    // CPU time, counted by the kernel: a spinning loop would use about all of the wall time.
    expect(cpuMs, `CPU ms in ${wallMs.toFixed(0)} ms of wall time`).toBeLessThan(wallMs / 2);
    expect(numberField(window, 'cpuMs')).toBeLessThan(numberField(window, 'wallMs') / 2);

    // The server closes what it held; the waiting clients give up; new clients are served.
    expect(numberField(await child.next('released'), 'closed')).toBe(held);
    for (const socket of sockets.splice(0)) socket.destroy();
    const echoes = await Promise.all([1, 2, 3].map((i) => echoOnce(port, `after EMFILE ${i}`)));
    expect(echoes).toEqual(['after EMFILE 1', 'after EMFILE 2', 'after EMFILE 3']);

    child.endInput();
    await child.next('done');
    expect(await child.exited(), child.output()).toBe(0);
  });
});

// --- Signals during the wait (EINTR) ---------------------------------------------------------

const SIGNALS = 100;
const SIGUSR2 = constants.signals.SIGUSR2;
const TRAFFIC_CLIENTS = 4;
const MESSAGE_BYTES = 4096;

/** node:net clients that ping-pong random messages and check every echoed byte. */
class CheckedTraffic {
  sent = 0;
  received = 0;
  mismatches = 0;
  readonly #done: Promise<void>[] = [];
  #stopping = false;

  constructor(port: number, clients: number) {
    for (let i = 0; i < clients; i++) this.#done.push(this.#client(port));
  }

  /** Lets every client finish its round trip in flight, then closes them all. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.#done);
  }

  #client(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      sockets.push(socket);
      socket.setNoDelay(true);
      let expected = randomBytes(MESSAGE_BYTES);
      let got: Buffer[] = [];
      let gotBytes = 0;
      const send = (): void => {
        this.sent += expected.length;
        socket.write(expected);
      };
      socket.on('connect', send);
      socket.on('data', (chunk: Buffer) => {
        got.push(chunk);
        gotBytes += chunk.length;
        this.received += chunk.length;
        if (gotBytes < expected.length) return;
        if (!Buffer.concat(got).equals(expected)) this.mismatches++;
        got = [];
        gotBytes = 0;
        if (this.#stopping) {
          socket.end();
          return;
        }
        expected = randomBytes(MESSAGE_BYTES);
        send();
      });
      socket.on('error', reject);
      socket.on('close', () => resolve());
    });
  }
}

/** Waits until the kernel has delivered the signal (it is no longer pending). */
async function untilDelivered(pid: number, signal: number): Promise<void> {
  for (let i = 0; i < 2000 && signalPending(pid, signal); i++) await sleep(1);
  expect(signalPending(pid, signal), 'the signal is still pending after 2 s').toBe(false);
}

describe.each(CASES)('signals during the wait ($backend, $mode)', ({ backend, mode }) => {
  it(`${SIGNALS} SIGUSR2 while clients echo: no byte lost, no error, every signal reaches its listener`, async () => {
    const child = startChild(process.execPath, [join(FAULTS, 'signal-echo.mjs'), PACKAGE, mode, backend]);
    const port = numberField(await child.next('listening'), 'port');
    const pid = child.process.pid as number;
    const traffic = new CheckedTraffic(port, TRAFFIC_CLIENTS);

    for (let i = 0; i < SIGNALS; i++) {
      process.kill(pid, 'SIGUSR2');
      // One signal at a time: a second one sent while the first is pending would merge
      // with it, and the count below could not be exact.
      await untilDelivered(pid, SIGUSR2);
      // Now and then a pause, so that signals also find the loop waiting with nothing to do.
      if (i % 10 === 9) await sleep(10);
    }
    await traffic.stop();

    expect(traffic.sent).toBeGreaterThan(0);
    expect(traffic.received).toBe(traffic.sent);
    expect(traffic.mismatches).toBe(0);
    child.endInput();
    const done = await child.next('done');
    // Each signal was delivered on its own, so Node ran the listener once for each.
    expect(done['usr2']).toBe(SIGNALS);
    expect(await child.exited(), child.output()).toBe(0);
    expect(child.stderr).toBe('');
  });
});
