// --workers N for the servers: the tool starts a pool of N worker threads (serveWorkers), each
// running the same tool file, which sees that it is a pool worker and serves with its own
// SO_REUSEPORT listener and its own loop. The parent only watches: it prints the "listening on"
// line once every worker listens, reports a worker that fails, and on SIGINT/SIGTERM stops them
// all and prints how many connections each one served.
import { type LoopOptions, type WorkerContext, loop, loopSync, serveWorkers, workerContext } from '../index.js';
import type { Cli, Mode } from './common.js';

/** What every server's workers are told. */
export interface PoolData {
  host: string;
  port: number;
  backend: NonNullable<LoopOptions['backend']>;
  mode: Mode;
}

/** What a worker reports once it listens. */
export interface PoolInfo {
  /** The port it listens on (worker 0's tells the others which port to share when --port is 0). */
  port: number;
  /** HOST:PORT, for the "listening on" line. */
  address: string;
}

/** The --workers flag, for a server's options. */
export const WORKERS_FLAG = { workers: { type: 'string', default: '1' } } as const;

export function parseWorkers(cli: Cli, text: string): number {
  const workers = Number(text);
  if (!/^\d+$/.test(text) || workers < 1 || workers > 1024) {
    cli.usageError(`--workers must be 1-1024, not ${text}`);
  }
  return workers;
}

/**
 * The parent's part: starts `workers` workers running `module` (the tool's own file) with `data`,
 * prints `announce(address)` once all listen, and exits once they have stopped (SIGINT/SIGTERM).
 */
export function servePool(
  cli: Cli,
  options: {
    module: URL;
    workers: number;
    data: PoolData;
    announce: (address: string) => string;
    /** Counters beside 'connections' that the workers keep (echo: 'bytes'). */
    counters?: string[];
  },
): void {
  const pool = serveWorkers({
    workers: options.workers,
    module: options.module,
    data: options.data,
    counters: ['connections', ...(options.counters ?? [])],
  });
  let failures = 0;
  pool.on('error', (error: unknown, index: number) => {
    failures++;
    const text = error instanceof Error ? error.message : String(error);
    process.stderr.write(`${cli.name}: worker ${index} failed: ${text}\n`);
  });
  pool.ready.then(
    (infos) => {
      const first = infos[0] as PoolInfo;
      process.stdout.write(`${options.announce(first.address)}\n`);
    },
    (err: unknown) => {
      const { host, port } = options.data;
      void pool.stop().then(() => cli.fail(`cannot listen on ${host}:${port}: ${(err as Error).message}`));
    },
  );
  void pool.closed.then(() => {
    for (const { index, counters } of pool.stats()) {
      const { connections, ...others } = counters;
      const more = Object.entries(others).map(([name, value]) => `, ${value} ${name}`);
      process.stderr.write(`${cli.name}: worker ${index} served ${connections ?? 0} connections${more.join('')}\n`);
    }
    if (failures > 0) process.exitCode = 1;
  });
}

/** A worker's part, first step: its context, and the port to bind (worker 0's when --port is 0). */
export function poolWorker<T extends PoolData>(): { ctx: WorkerContext<T>; port: number } {
  const ctx = workerContext<T>();
  const first = ctx.first as PoolInfo | undefined;
  return { ctx, port: first?.port ?? ctx.data.port };
}

/**
 * A worker's part, last step: runs its loop over its own map until the pool stops it. What the loop
 * throws becomes this worker's failure, reported to the parent (see workerContext()).
 */
export function runPoolWorker(mode: Mode, options: LoopOptions): void {
  if (mode === 'sync') {
    loopSync(options);
    return;
  }
  loop(options).then(undefined, (err: unknown) => {
    // Thrown outside the promise, so the pool's handler for uncaught errors reports it.
    process.nextTick(() => {
      throw err;
    });
  });
}
