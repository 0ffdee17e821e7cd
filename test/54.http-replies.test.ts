// asyncore-http's hello page and error pages, the benchmark's path: the replies come from a
// cache rebuilt when the Date header changes, requests arrive whole, pipelined, or a byte
// at a time. A raw TCP client reads each reply by its Content-Length, so the tests see
// exactly what went on the wire and whether the connection stayed open.
import { type ChildProcess } from 'node:child_process';
import { type Socket as NetSocket, connect } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { BEST_BACKEND, MODES, startCli, waitExit } from './helpers.js';

interface Reply {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/** A keep-alive client: sends raw bytes, reads replies one by one (HEAD replies have no body). */
class RawClient {
  readonly socket: NetSocket;
  #data = '';
  #closed = false;
  #waiter: (() => void) | null = null;

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.setEncoding('latin1');
    this.socket.on('data', (chunk: string) => {
      this.#data += chunk;
      this.#waiter?.();
    });
    // A server that closes after an error reply may reset: the test looks at `closed`.
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => {
      this.#closed = true;
      this.#waiter?.();
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  async connected(): Promise<void> {
    if (!this.socket.connecting) return;
    await new Promise((resolve) => this.socket.once('connect', resolve));
  }

  write(text: string): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.write(text, 'latin1', (err) => (err ? reject(err) : resolve())),
    );
  }

  /** The next reply; `head` for the answer to a HEAD request. */
  async reply(head = false): Promise<Reply> {
    for (;;) {
      const parsed = this.#parse(head);
      if (parsed !== null) return parsed;
      if (this.#closed) throw new Error(`connection closed; unparsed: ${JSON.stringify(this.#data.slice(0, 200))}`);
      await this.#wait();
    }
  }

  /** Resolves once the server closed the connection. */
  async waitClosed(): Promise<void> {
    while (!this.#closed) await this.#wait();
  }

  #wait(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no reply within 10 s')), 10_000);
      this.#waiter = () => {
        clearTimeout(timer);
        this.#waiter = null;
        resolve();
      };
    });
  }

  #parse(head: boolean): Reply | null {
    const end = this.#data.indexOf('\r\n\r\n');
    if (end === -1) return null;
    const [statusLine = '', ...lines] = this.#data.slice(0, end).split('\r\n');
    const headers = new Map(
      lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 2)]),
    );
    const length = head ? 0 : Number(headers.get('content-length') ?? 0);
    if (this.#data.length < end + 4 + length) return null;
    const body = this.#data.slice(end + 4, end + 4 + length);
    this.#data = this.#data.slice(end + 4 + length);
    return { status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1] ?? 0), headers, body };
  }

  /** Bytes that arrived and were not part of a reply read so far. */
  get unread(): string {
    return this.#data;
  }

  close(): void {
    this.socket.destroy();
  }
}

describe.each(MODES)('asyncore-http hello page (--mode %s)', (mode) => {
  let server: { child: ChildProcess; port: number };
  const clients: RawClient[] = [];

  beforeAll(async () => {
    server = await startCli('http', ['--port', '0', '--quiet', '--mode', mode, '--backend', BEST_BACKEND]);
  });

  afterAll(async () => {
    for (const client of clients.splice(0)) client.close();
    server.child.kill('SIGTERM');
    expect(await waitExit(server.child)).toBe(0);
  });

  async function client(): Promise<RawClient> {
    const c = new RawClient(server.port);
    clients.push(c);
    await c.connected();
    return c;
  }

  it('answers GET, HEAD, 404 and 405 on one kept-alive connection, each with its own head', async () => {
    const c = await client();
    await c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const page = await c.reply();
    expect(page.status).toBe(200);
    expect(page.body).toMatch(/<h1>Hello from asyncore-http<\/h1>/);
    expect(page.headers.get('content-length')).toBe(String(page.body.length));
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('connection')).toBe('keep-alive');

    await c.write('HEAD / HTTP/1.1\r\n\r\n');
    const head = await c.reply(true);
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(page.body.length));

    await c.write('GET /?q=1 HTTP/1.1\r\n\r\nGET /nothing HTTP/1.1\r\n\r\n');
    expect((await c.reply()).body).toBe(page.body);
    const missing = await c.reply();
    expect(missing.status).toBe(404);
    expect(missing.body).toBe('404 Not Found\n');
    expect(missing.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(missing.headers.get('connection')).toBe('keep-alive');

    await c.write('DELETE / HTTP/1.1\r\n\r\n');
    const refused = await c.reply();
    expect(refused.status).toBe(405);
    expect(refused.headers.get('allow')).toBe('GET, HEAD');
    // HEAD after a reply with a body: the cached HEAD variant carries no body bytes.
    await c.write('HEAD /nothing HTTP/1.1\r\n\r\n');
    const missingHead = await c.reply(true);
    expect(missingHead.status).toBe(404);
    expect(missingHead.headers.get('content-length')).toBe('14');
    // Nothing but those replies arrived, and the connection is still open.
    await c.write('GET / HTTP/1.1\r\n\r\n');
    expect((await c.reply()).status).toBe(200);
    expect(c.unread).toBe('');
    expect(c.closed).toBe(false);
  });

  it('answers 100 pipelined requests sent in one write, in order', async () => {
    const c = await client();
    const targets = Array.from({ length: 100 }, (_, i) => (i % 3 === 2 ? `/missing-${i}` : `/?n=${i}`));
    await c.write(targets.map((t) => `GET ${t} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''));
    for (const target of targets) expect((await c.reply()).status).toBe(target.startsWith('/?') ? 200 : 404);
    expect(c.closed).toBe(false);
  });

  it('reads a request sent one byte at a time, after stray CRLFs', async () => {
    const c = await client();
    for (const byte of '\r\n\r\nGET / HTTP/1.1\r\nUser-Agent: slow\r\n\r\n') {
      await c.write(byte);
    }
    expect((await c.reply()).status).toBe(200);
  });

  it('closes after Connection: close (any case) and after HTTP/1.0 without keep-alive', async () => {
    for (const request of [
      'GET / HTTP/1.1\r\nConnection: Keep-Alive, CLOSE\r\n\r\n',
      'GET / HTTP/1.0\r\n\r\n',
      'GET /nothing HTTP/1.1\r\nconnection: close\r\n\r\n',
    ]) {
      const c = await client();
      await c.write(request);
      const reply = await c.reply();
      expect(reply.headers.get('connection')).toBe('close');
      await c.waitClosed();
    }
    const c = await client();
    await c.write('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    expect((await c.reply()).headers.get('connection')).toBe('keep-alive');
    expect(c.closed).toBe(false);
  });

  it.each([
    ['a malformed header line', 'GET / HTTP/1.1\r\nno colon here\r\n\r\n'],
    ['a space before the colon', 'GET / HTTP/1.1\r\nHost : x\r\n\r\n'],
    [
      'two Content-Lengths (they are joined, and the result is not a number)',
      'GET / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\nx',
    ],
    ['HTTP/2.0', 'GET / HTTP/2.0\r\n\r\n'],
    ['a bare CR inside a header line', 'GET / HTTP/1.1\r\nX-A: 1\rX-B: 2\r\n\r\n'],
    ['a Content-Length with a sign', 'POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\nx'],
  ])('answers 400 to %s and closes', async (_what, request) => {
    const c = await client();
    await c.write(request);
    const reply = await c.reply();
    expect(reply.status).toBe(400);
    expect(reply.body).toBe('400 Bad Request\n');
    expect(reply.headers.get('connection')).toBe('close');
    await c.waitClosed();
  });

  it('trims blanks around header values: a padded Content-Length still frames the body', async () => {
    const c = await client();
    await c.write(
      'POST / HTTP/1.1\r\nContent-Length: \t 5 \t \r\nConnection:  keep-alive  \r\n\r\nhelloGET / HTTP/1.1\r\n\r\n',
    );
    const refused = await c.reply();
    expect(refused.status).toBe(405);
    expect(refused.headers.get('connection')).toBe('keep-alive');
    // The 5 body bytes were skipped: the next request is read from the right place.
    expect((await c.reply()).status).toBe(200);
  });

  it('sends the current Date, and a new one once the second has changed', async () => {
    const c = await client();
    const dateOf = async (): Promise<string> => {
      await c.write('GET / HTTP/1.1\r\n\r\n');
      return (await c.reply()).headers.get('date') ?? '';
    };
    const first = await dateOf();
    expect(first).toMatch(
      /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$/,
    );
    expect(Math.abs(Date.parse(first) - Date.now())).toBeLessThan(5000);
    // HTTP dates have whole seconds: 1.1 s later the cached reply must have been rebuilt.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const second = await dateOf();
    expect(Date.parse(second)).toBeGreaterThan(Date.parse(first));
  });
});
