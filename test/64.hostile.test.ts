// Hostile and careless peers against the servers, as real processes on loopback:
// - asyncore-forward between a remote that half-closes at once and 20 clients that read its
//   greeting to EOF, then send 4 MB each and half-close: every byte arrives (sha256 on both
//   ends), on every backend, in both loops, splicing and copying;
// - a client that pipelines requests to asyncore-http and never reads: the server's memory
//   and fds stay bounded, another client is served meanwhile, and every fd comes back when
//   the client leaves (with and without --root);
// - asyncore-http out of fds under `ulimit -n 64`: it logs, keeps listening, and serves again;
// - asyncore-http and clients that reset in the middle of a large reply, or pipeline requests
//   and half-close at once: nothing leaks, every request before the half-close is answered.
import { Buffer } from 'node:buffer';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { type Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { SplicePipe } from 'asyncore';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { BACKENDS, DIST, MODES, ROOT, run, startCli, until, waitExit } from './helpers.js';

const FIXTURES = join(ROOT, 'test', 'fixtures', 'hostile');
const CLIENTS = 20;
const CLIENT_BYTES = 4_000_000;
/** How far asyncore-http's resident memory may grow while a client pipelines and never reads. */
const RSS_GROWTH_LIMIT_KB = 48 * 1024;

const children: ChildProcess[] = [];
const sockets: Socket[] = [];

afterEach(() => {
  for (const sock of sockets.splice(0)) sock.destroy();
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

/** A child's stdout, line by line: next() resolves with the next line (or rejects after ms). */
function lines(child: ChildProcess): { next: (ms?: number) => Promise<string> } {
  const queue: string[] = [];
  const waiters: ((line: string) => void)[] = [];
  const reader = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  reader.on('line', (line) => {
    const waiter = waiters.shift();
    if (waiter !== undefined) waiter(line);
    else queue.push(line);
  });
  return {
    next: (ms = 60_000) =>
      new Promise((resolve, reject) => {
        const line = queue.shift();
        if (line !== undefined) {
          resolve(line);
          return;
        }
        const timer = setTimeout(() => reject(new Error(`no line from the child in ${ms} ms`)), ms);
        waiters.push((l) => {
          clearTimeout(timer);
          resolve(l);
        });
      }),
  };
}

function python(args: string[]): ChildProcess {
  const child = spawn('python3', args, { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(child);
  return child;
}

interface Transfer {
  len: number;
  sha: string;
  greeting?: boolean;
  error?: string | null;
}

const TRANSFERS = SplicePipe.supported ? (['splice', 'copy'] as const) : (['copy'] as const);

describe.each(BACKENDS)('asyncore-forward passes on half-closes byte-exact (%s)', (backend) => {
  describe.each(MODES)('%s', (mode) => {
    it.each(TRANSFERS)('%s', async (transfer) => {
      const remote = python([join(FIXTURES, 'half_close_pair.py'), 'remote']);
      const remoteLines = lines(remote);
      const remotePort = Number(await remoteLines.next(10_000));
      const args = ['-l', '127.0.0.1', '-p', '0', '-r', '127.0.0.1', '-P', String(remotePort)];
      const copy = transfer === 'copy' ? ['--copy'] : [];
      const forwarder = await startCli('forward', [...args, '--backend', backend, '--mode', mode, ...copy]);
      children.push(forwarder.child);
      expect(forwarder.output()).toContain(`, ${transfer})`);
      const result = await run(
        'python3',
        [
          join(FIXTURES, 'half_close_pair.py'),
          'clients',
          String(forwarder.port),
          String(CLIENTS),
          String(CLIENT_BYTES),
        ],
        { timeoutMs: 60_000 },
      );
      expect(result.code).toBe(0);
      const sent = result.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Transfer);
      expect(sent).toHaveLength(CLIENTS);
      for (const client of sent) {
        expect(client.error).toBeNull();
        expect(client.greeting).toBe(true);
      }
      const received: Transfer[] = [];
      for (let i = 0; i < CLIENTS; i++) received.push(JSON.parse(await remoteLines.next()) as Transfer);
      expect(received.map((r) => r.len)).toEqual(Array<number>(CLIENTS).fill(CLIENT_BYTES));
      expect(received.map((r) => r.sha).sort()).toEqual(sent.map((s) => s.sha).sort());
    });
  });
});

/** The resident memory of a process, in KiB. */
function rssKb(pid: number): number {
  const match = /^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
  return Number(match?.[1] ?? NaN);
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** One GET on a fresh connection with Connection: close; resolves with what came back. */
function fetchOnce(port: number, path: string): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sockets.push(sock);
    let data = '';
    sock.on('data', (d: Buffer) => (data += d.toString('latin1')));
    sock.on('error', () => resolve(data));
    sock.on('close', () => resolve(data));
    sock.write(`GET ${path} HTTP/1.1\r\nConnection: close\r\n\r\n`);
  });
}

describe('asyncore-http and a client that pipelines and never reads', () => {
  let root: string;
  const FILE = 'x'.repeat(4096);

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'asyncore-hostile-'));
    writeFileSync(join(root, 'hello.txt'), FILE);
  });

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
  });

  describe.each(MODES)('%s', (mode) => {
    it.each([
      ['with --root', true],
      ['without --root', false],
    ])('%s: memory and fds stay bounded, others are served, every fd comes back', async (_what, withRoot) => {
      const args = ['--port', '0', '--quiet', '--mode', mode, ...(withRoot ? ['--root', root] : [])];
      const server = await startCli('http', args);
      children.push(server.child);
      const pid = server.child.pid as number;
      const path = withRoot ? '/hello.txt' : '/';
      // A connection served and gone first, so that lazily made things exist at the baseline.
      expect(await fetchOnce(server.port, path)).toMatch(/^HTTP\/1\.1 200 OK/);
      const fdsBefore = fdCount(pid);
      const rssBefore = rssKb(pid);

      const flood = python([join(FIXTURES, 'pipeline_never_reads.py'), String(server.port), path]);
      const floodLines = lines(flood);
      const { sent } = JSON.parse(await floodLines.next(60_000)) as { sent: number };
      // The server stopped reading: what was sent is what the kernel buffers hold, not more.
      expect(sent).toBeLessThan(64 * 1024 * 1024);
      expect(rssKb(pid) - rssBefore).toBeLessThan(RSS_GROWTH_LIMIT_KB);
      // The flooding connection, and at most the one file it is being sent.
      expect(fdCount(pid)).toBeLessThanOrEqual(fdsBefore + 2);

      // Someone else is served meanwhile, in full.
      const other = await fetchOnce(server.port, path);
      expect(other).toMatch(/^HTTP\/1\.1 200 OK/);
      if (withRoot) expect(other.endsWith(FILE)).toBe(true);
      expect(rssKb(pid) - rssBefore).toBeLessThan(RSS_GROWTH_LIMIT_KB);

      flood.stdin?.end('\n');
      expect(await waitExit(flood)).toBe(0);
      await until(() => fdCount(pid) === fdsBefore, 15_000);
      expect(await fetchOnce(server.port, path)).toMatch(/^HTTP\/1\.1 200 OK/);
    });
  });
});

describe('asyncore-http out of fds', () => {
  let root: string;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'asyncore-emfile-'));
    writeFileSync(join(root, 'hello.txt'), 'hello\n');
  });

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it.each(MODES)('under ulimit -n 64 logs EMFILE, keeps listening and serves again (%s)', async (mode) => {
    const cli = join(DIST, 'cli', 'http.js');
    const command = `ulimit -n 64 && exec "${process.execPath}" "${cli}" --port 0 --mode ${mode} --root "${root}" --max-connections 1000 --quiet`;
    const child = spawn('bash', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const first = await lines(child).next(10_000);
    const port = Number(/listening on .*:(\d+)/.exec(first)?.[1]);
    expect(port).toBeGreaterThan(0);

    // More connections than the server has fds for: they wait in the listen backlog.
    const held: Socket[] = [];
    for (let i = 0; i < 100; i++) {
      const sock = connect(port, '127.0.0.1');
      sock.on('error', () => undefined);
      sockets.push(sock);
      held.push(sock);
    }
    await until(() => /accept: .*EMFILE/.test(stderr), 15_000);
    expect(child.exitCode).toBeNull();
    for (const sock of held) sock.destroy();

    // The listener is still there: once the fds come back, requests are served.
    let reply = '';
    for (let attempt = 0; attempt < 100 && !reply.startsWith('HTTP/1.1 200 OK'); attempt++) {
      reply = await fetchOnce(port, '/hello.txt');
      if (!reply.startsWith('HTTP/1.1 200 OK')) await new Promise((r) => setTimeout(r, 100));
    }
    expect(reply).toMatch(/^HTTP\/1\.1 200 OK[^]*\r\n\r\nhello\n$/);
    expect(child.exitCode).toBeNull();
  });
});

describe('asyncore-http and clients that leave early', () => {
  let root: string;
  // Large enough that the reply is still being sent when the client resets.
  const BIG = Buffer.alloc(8 << 20, 'y');

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'asyncore-leave-'));
    writeFileSync(join(root, 'big.bin'), BIG);
    writeFileSync(join(root, 'hello.txt'), 'hello\n');
  });

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
  });

  describe.each(MODES)('%s', (mode) => {
    it('20 clients that reset in the middle of an 8 MiB reply leave no fd behind, and others are served', async () => {
      const server = await startCli('http', ['--port', '0', '--quiet', '--mode', mode, '--root', root]);
      children.push(server.child);
      const pid = server.child.pid as number;
      expect(await fetchOnce(server.port, '/hello.txt')).toMatch(/^HTTP\/1\.1 200 OK/);
      const fdsBefore = fdCount(pid);
      await Promise.all(
        Array.from(
          { length: 20 },
          () =>
            new Promise<void>((resolve) => {
              const sock = connect(server.port, '127.0.0.1');
              sockets.push(sock);
              let got = 0;
              sock.on('error', () => resolve());
              sock.on('close', () => resolve());
              sock.on('data', (d: Buffer) => {
                got += d.length;
                // Some of the reply has arrived and much more is on its way: RST (SO_LINGER 0).
                if (got >= 256 * 1024 && !sock.destroyed) sock.resetAndDestroy();
              });
              sock.write('GET /big.bin HTTP/1.1\r\n\r\n');
            }),
        ),
      );
      // Every connection and the file each was being sent are closed again.
      await until(() => fdCount(pid) === fdsBefore, 15_000);
      const other = await fetchOnce(server.port, '/big.bin');
      expect(other.endsWith(BIG.toString('latin1'))).toBe(true);
      expect(server.child.exitCode).toBeNull();
    });

    it('a client that pipelines three requests and half-closes at once gets all three replies, then the close', async () => {
      const server = await startCli('http', ['--port', '0', '--quiet', '--mode', mode, '--root', root]);
      children.push(server.child);
      const reply = await new Promise<string>((resolve) => {
        const sock = connect(server.port, '127.0.0.1');
        sockets.push(sock);
        let data = '';
        sock.on('data', (d: Buffer) => (data += d.toString('latin1')));
        sock.on('error', () => resolve(data));
        sock.on('close', () => resolve(data));
        // Three requests, then FIN: the server reads to EOF, answers all three, and closes.
        sock.end('GET /hello.txt HTTP/1.1\r\n\r\n'.repeat(2) + 'GET /big.bin HTTP/1.1\r\n\r\n');
      });
      expect(reply.split('HTTP/1.1 200 OK').length - 1).toBe(3);
      expect(reply.endsWith(BIG.toString('latin1'))).toBe(true);
    });
  });
});
