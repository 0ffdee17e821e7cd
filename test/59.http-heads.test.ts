// asyncore-http's request framing against raw TCP clients: a head (and a body) split across
// reads at every byte boundary, bare-LF and mixed line ends, empty lines before a request
// line, a bare CR that is not a line end, the 64 KiB head limit and the 100-header-line limit
// at their edges, and a pipelined burst that fills the output bound, answered in order.
import { type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { BEST_BACKEND, MODES, startCli, until, waitExit } from './helpers.js';

/** A raw client: writes bytes, collects what arrives, and knows when the server closed. */
class Raw {
  readonly socket: Socket;
  #data = '';
  #closed = false;
  #waiters: (() => void)[] = [];

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.setNoDelay(true);
    this.socket.setEncoding('latin1');
    this.socket.on('data', (chunk: string) => {
      this.#data += chunk;
      this.#wake();
    });
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => {
      this.#closed = true;
      this.#wake();
    });
  }

  get data(): string {
    return this.#data;
  }

  write(text: string): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.write(text, 'latin1', (err) => (err ? reject(err) : resolve())),
    );
  }

  /** Resolves once `count` status lines arrived (or the connection closed: the caller checks). */
  async replies(count: number): Promise<number[]> {
    for (;;) {
      const statuses = [...this.#data.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
      if (statuses.length >= count || this.#closed) return statuses;
      await this.#next();
    }
  }

  async closed(): Promise<void> {
    while (!this.#closed) await this.#next();
  }

  #next(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nothing more within 10 s: ${this.#data.slice(-200)}`)), 10_000);
      this.#waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter();
  }
}

const clients: Raw[] = [];
const sockets: Socket[] = [];

afterEach(() => {
  for (const client of clients.splice(0)) client.socket.destroy();
  for (const sock of sockets.splice(0)) sock.destroy();
});

async function client(port: number): Promise<Raw> {
  const c = new Raw(port);
  clients.push(c);
  if (c.socket.connecting) await new Promise((resolve) => c.socket.once('connect', resolve));
  return c;
}

/** Lets the server read what was written before the next write, so the two arrive apart. */
function pause(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 15));
}

describe.each(MODES)('asyncore-http request heads (--mode %s)', (mode) => {
  let server: { child: ChildProcess; port: number; output: () => string };

  beforeAll(async () => {
    // With the access log: each request line as the server parsed it is checked there.
    server = await startCli('http', ['--port', '0', '--mode', mode, '--backend', BEST_BACKEND]);
  });

  afterAll(async () => {
    server.child.kill('SIGTERM');
    expect(await waitExit(server.child)).toBe(0);
  });

  it('parses a head with mixed line ends split across two reads at every byte boundary', async () => {
    const c = await client(server.port);
    const head = (n: number): string => `GET /?split=${n} HTTP/1.1\r\nHost: x\nX-Mixed:  a b \r\n\n`;
    const length = head(10).length;
    for (let at = 1; at < length; at++) {
      const text = head(10 + at);
      await c.write(text.slice(0, at));
      await pause();
      await c.write(text.slice(at));
      expect(await c.replies(at)).toEqual(Array.from({ length: at }, () => 200));
    }
    // The access log line of the last reply may still be on its way.
    await until(() => server.output().includes(`"GET /?split=${10 + length - 1} HTTP/1.1" 200`));
    for (let at = 1; at < length; at++) expect(server.output()).toContain(`"GET /?split=${10 + at} HTTP/1.1" 200`);
  });

  it('counts off a body split at every byte boundary, and parses the request after it', async () => {
    const c = await client(server.port);
    const pair = 'POST / HTTP/1.1\nContent-Length: 5\n\nhelloGET /?after-body HTTP/1.1\r\n\r\n';
    for (let at = 1; at < pair.length; at++) {
      await c.write(pair.slice(0, at));
      await pause();
      await c.write(pair.slice(at));
      const expected = Array.from({ length: 2 * at }, (_, i) => (i % 2 === 0 ? 405 : 200));
      expect(await c.replies(2 * at)).toEqual(expected);
    }
  });

  it.each([
    ['bare LF', 'GET / HTTP/1.1\n\n'],
    ['CRLF', 'GET / HTTP/1.1\r\n\r\n'],
    ['LF then CRLF', 'GET / HTTP/1.1\nHost: x\n\r\n'],
    ['CRLF then LF', 'GET / HTTP/1.1\r\nHost: x\r\n\n'],
    ['empty lines before the request line', '\r\n\n\r\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n'],
  ])('answers a head with %s, twice in one write', async (_what, head) => {
    const c = await client(server.port);
    await c.write(head + head);
    expect(await c.replies(2)).toEqual([200, 200]);
    await c.write(head);
    expect(await c.replies(3)).toEqual([200, 200, 200]);
  });

  it('takes a bare CR for part of a line, not for a line end', async () => {
    const c = await client(server.port);
    await c.write('GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n');
    expect(await c.replies(1)).toEqual([400]);
    await c.closed();
  });

  it('serves a head of exactly 64 KiB, and answers 413 to one byte more', async () => {
    const start = 'GET / HTTP/1.1\r\nX-Filler: ';
    const end = '\r\n\r\n';
    // Empty lines before the request line count too.
    const filler = (size: number): string => 'f'.repeat(size - start.length - end.length - 2);
    const c = await client(server.port);
    await c.write(`\r\n${start}${filler(64 * 1024)}${end}`);
    expect(await c.replies(1)).toEqual([200]);
    await c.write(`\r\n${start}${filler(64 * 1024 + 1)}${end}`);
    expect(await c.replies(2)).toEqual([200, 413]);
    await c.closed();
  });

  it('answers 413 to a head over 64 KiB that is still coming, without waiting for its end', async () => {
    const c = await client(server.port);
    await c.write(`GET / HTTP/1.1\r\nX-Filler: ${'f'.repeat(64 * 1024)}`);
    expect(await c.replies(1)).toEqual([413]);
    await c.closed();
  });

  it('takes 100 header lines, and answers 400 to 101', async () => {
    const fields = (n: number): string => Array.from({ length: n }, (_, i) => `X-${i}: ${i}\r\n`).join('');
    const c = await client(server.port);
    await c.write(`GET / HTTP/1.1\r\n${fields(100)}\r\n`);
    expect(await c.replies(1)).toEqual([200]);
    await c.write(`GET / HTTP/1.1\n${fields(101)}\n`);
    expect(await c.replies(2)).toEqual([200, 400]);
    await c.closed();
    await until(() => server.output().includes('more than 100 header lines'));
  });
});

describe.each(MODES)('asyncore-http parsing held by the output bound (--mode %s)', (mode) => {
  let root: string;
  let server: { child: ChildProcess; port: number } | null = null;

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'asyncore-heads-'));
    writeFileSync(join(root, 'big.bin'), Buffer.alloc(64 * 1024, 0x61));
  });

  afterAll(async () => {
    if (server !== null) {
      server.child.kill('SIGTERM');
      expect(await waitExit(server.child)).toBe(0);
    }
    rmSync(root, { recursive: true, force: true });
  });

  it('answers 400 pipelined requests for a 64 KiB file in order, parsing again once a stalled reader reads', async () => {
    // The client reads nothing at first: once the kernel's buffers are full, each reply queues
    // a file producer, and past 64 of them the server stops parsing; the rest of the requests
    // wait in the channel until the client reads and the output drains.
    server = await startCli('http', ['--port', '0', '--quiet', '--mode', mode, '--root', root]);
    const port = server.port;
    const targets = Array.from({ length: 400 }, (_, i) => (i % 7 === 3 ? `/missing-${i}` : `/big.bin?${i}`));
    const sock = connect(port, '127.0.0.1');
    sockets.push(sock);
    sock.pause();
    const statuses: number[] = [];
    let head = '';
    let bodyLeft = 0;
    const done = new Promise<void>((resolve, reject) => {
      sock.on('error', reject);
      sock.on('close', () => resolve());
      sock.on('data', (chunk: Buffer) => {
        let at = 0;
        while (at < chunk.length) {
          if (bodyLeft > 0) {
            const taken = Math.min(bodyLeft, chunk.length - at);
            bodyLeft -= taken;
            at += taken;
            continue;
          }
          // A reply head, byte by byte (it may be split across chunks anywhere).
          head += String.fromCharCode(chunk[at++] as number);
          if (!head.endsWith('\r\n\r\n')) continue;
          statuses.push(Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1] ?? 0));
          bodyLeft = Number(/\r\nContent-Length: (\d+)\r\n/.exec(head)?.[1] ?? 0);
          head = '';
          if (statuses.length === targets.length && bodyLeft === 0) resolve();
        }
        if (statuses.length === targets.length && bodyLeft === 0) resolve();
      });
    });
    await new Promise((resolve) => sock.once('connect', resolve));
    sock.write(targets.map((t) => `GET ${t} HTTP/1.1\nHost: x\n\n`).join(''));
    await new Promise((resolve) => setTimeout(resolve, 500));
    sock.resume();
    await done;
    expect(statuses).toEqual(targets.map((t) => (t.startsWith('/big') ? 200 : 404)));
  });
});
