// serveWorkers(): N loops in N worker threads, each with its own SO_REUSEPORT listener on one
// port. The workers run test/fixtures/w-echo-worker.mjs (an echo server that counts its
// connections and bytes in the pool's counters); the clients are node:net sockets on
// loopback. What is proven: the kernel spreads connections over both loops and every byte
// comes back, a worker that throws is reported while the other keeps serving, a stop ends
// every worker and closes every fd, and bad options are refused.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { join } from 'node:path';

import { type WorkerPool, inWorkerPool, serveWorkers, workerContext } from 'asyncore';
import { afterEach, describe, expect, it } from 'vitest';

import { BEST_BACKEND, DIST, MODES, type Mode, run } from './helpers.js';

const INDEX = join(DIST, 'index.js');
const WORKER = new URL('./fixtures/w-echo-worker.mjs', import.meta.url);
const FDS_CHILD = new URL('./fixtures/w-pool-fds.mjs', import.meta.url);

const pools: WorkerPool[] = [];

afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.stop()));
});

function startPool(mode: Mode, extra: Record<string, unknown> = {}, workers = 2): WorkerPool {
  const pool = serveWorkers({
    workers,
    module: WORKER,
    data: { index: INDEX, mode, backend: 'auto', port: 0, crashOn: 'crash', ...extra },
    counters: ['connections', 'bytes'],
    signals: [],
  });
  pools.push(pool);
  return pool;
}

/** Sends `data` on a new connection, half-closes, and resolves with everything read back. */
function echo(port: number, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let received = 0;
    socket.on('connect', () => socket.write(data));
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      // The worker's echo handler closes when the peer does: end once all came back.
      if (received >= data.length) socket.end();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

/** `count` clients at once, each with its own random payload; resolves with the bytes sent. */
async function manyClients(port: number, count: number): Promise<number> {
  const payloads = Array.from({ length: count }, (_, i) => randomBytes(1 + ((i * 7919) % 50_000)));
  const replies = await Promise.all(payloads.map((payload) => echo(port, payload)));
  replies.forEach((reply, i) => expect(reply.equals(payloads[i] as Buffer), `client ${i}'s echo`).toBe(true));
  return payloads.reduce((sum, payload) => sum + payload.length, 0);
}

function counter(pool: WorkerPool, index: number, name: string): number {
  return pool.stats()[index]?.counters[name] ?? Number.NaN;
}

describe.each(MODES)('serveWorkers, two echo workers in mode %s', (mode) => {
  it('spreads many clients over both loops and echoes every byte', async () => {
    const pool = startPool(mode);
    const infos = await pool.ready;
    expect(infos).toHaveLength(2);
    // Worker 1 bound the port worker 0 picked.
    expect(infos[1]).toBe(infos[0]);
    const sent = await manyClients(infos[0] as number, 60);
    const stats = pool.stats();
    expect(stats.map((s) => s.state)).toEqual(['serving', 'serving']);
    expect(new Set(stats.map((s) => s.threadId)).size).toBe(2);
    const connections = stats.map((s) => s.counters.connections ?? 0);
    // The kernel hashes each connection to one listener: both loops get some of 60 (the chance that
    // one gets none is 2^-59).
    expect(connections.every((n) => n > 0)).toBe(true);
    expect(connections.reduce((sum, n) => sum + n, 0)).toBe(60);
    expect(counter(pool, 0, 'bytes') + counter(pool, 1, 'bytes')).toBe(sent);

    await pool.stop();
    expect(pool.stats().map((s) => s.state)).toEqual(['exited', 'exited']);
    // Nothing listens on the port any more.
    await expect(echo(infos[0] as number, Buffer.from('x'))).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('reports a worker that throws, and the other keeps serving every client', async () => {
    const pool = startPool(mode);
    const [port] = (await pool.ready) as [number];
    const reported = new Promise<{ error: unknown; index: number }>((resolve) =>
      pool.once('error', (error: unknown, index: number) => resolve({ error, index })),
    );
    const exited = new Promise<number>((resolve) => pool.once('exit', (_index: number, code: number) => resolve(code)));
    // Its handler throws ExitNow, which leaves that worker's loop: the worker fails.
    await echo(port, Buffer.from('crash'));
    const { error, index } = await reported;
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe(`worker ${index} was told to crash`);
    expect(await exited).toBe(1);
    const survivor = 1 - index;
    expect(pool.stats()[index]?.state).toBe('failed');

    // The failed worker closed its listener: every new connection reaches the survivor.
    const before = counter(pool, survivor, 'connections');
    const sent = await manyClients(port, 30);
    expect(counter(pool, survivor, 'connections')).toBe(before + 30);
    expect(counter(pool, survivor, 'bytes')).toBeGreaterThanOrEqual(sent);
    expect(pool.stats()[survivor]?.state).toBe('serving');
  });

  it.each(['', 'crash'])('closes every fd it opened when it stops (%s)', async (crash) => {
    const backend = mode === 'sync' ? 'select' : BEST_BACKEND;
    const result = await run(process.execPath, [FDS_CHILD.pathname, INDEX, mode, backend, crash], {
      timeoutMs: 20_000,
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { before: number; during: number; after: number; echoed: boolean };
    expect(report.echoed).toBe(true);
    expect(report.during).toBeGreaterThan(report.before);
    expect(report.after).toBe(report.before);
  });
});

describe('serveWorkers: starting and stopping', () => {
  it('reports a worker module that throws while loading, and ready rejects', async () => {
    const pool = startPool('sync', { throwAtLoad: true });
    const reported = new Promise<unknown>((resolve) => pool.once('error', resolve));
    await expect(pool.ready).rejects.toThrow('this worker module cannot load');
    expect(((await reported) as Error).message).toBe('this worker module cannot load');
    // Worker 0 failed first, so worker 1 never started, and the pool has ended by itself.
    await pool.closed;
    expect(pool.stats().map((s) => s.state)).toEqual(['failed', 'exited']);
    expect(pool.stats()[1]?.threadId).toBe(-1);
  });

  it.each([
    ['a relative path', 'no-such-worker.js', 'ERR_WORKER_PATH'],
    ['a missing file', new URL('./fixtures/no-such-worker.mjs', import.meta.url), 'MODULE_NOT_FOUND'],
  ])('reports a module Worker cannot run (%s) through the error event', async (_what, module, code) => {
    const pool = serveWorkers({ workers: 2, module, signals: [] });
    pools.push(pool);
    const reported = new Promise<unknown>((resolve) => pool.once('error', resolve));
    await expect(pool.ready).rejects.toMatchObject({ code });
    expect(await reported).toMatchObject({ code });
    await pool.closed;
    expect(pool.stats().map((s) => s.state)).toEqual(['failed', 'exited']);
  });

  it('stops cleanly when stop() comes before the workers are ready', async () => {
    const pool = startPool('thread');
    const stopping = pool.stop();
    expect(pool.stop()).toBe(stopping);
    await stopping;
    await expect(pool.ready).rejects.toThrow();
    expect(pool.stats().every((s) => s.state === 'exited')).toBe(true);
  });

  it('runs a single worker', async () => {
    const pool = startPool('sync', {}, 1);
    const [port] = (await pool.ready) as [number];
    const sent = await manyClients(port, 5);
    expect(pool.stats()[0]?.counters).toEqual({ connections: 5, bytes: sent });
    expect(pool.size).toBe(1);
  });

  it('refuses bad options before it starts anything', () => {
    const good = { workers: 2, module: WORKER, signals: [] };
    expect(() => serveWorkers({ ...good, workers: 0 })).toThrow(RangeError);
    expect(() => serveWorkers({ ...good, workers: 1.5 })).toThrow(TypeError);
    expect(() => serveWorkers({ ...good, workers: '2' as unknown as number })).toThrow(TypeError);
    expect(() => serveWorkers({ ...good, module: 5 as unknown as string })).toThrow(TypeError);
    expect(() => serveWorkers({ ...good, counters: ['a', 'a'] })).toThrow(TypeError);
    expect(() => serveWorkers({ ...good, stopTimeoutMs: -1 })).toThrow(RangeError);
    expect(() => serveWorkers({ ...good, stopTimeoutMs: Infinity })).toThrow(RangeError);
    expect(() => serveWorkers(null as unknown as { workers: number; module: string })).toThrow(TypeError);
  });

  it('has no worker context outside a pool worker', () => {
    expect(inWorkerPool()).toBe(false);
    expect(() => workerContext()).toThrow('works only in a worker started by serveWorkers()');
  });
});
