// asyncore-http's limits against raw TCP clients: a head trickling in is closed by
// --header-timeout however slowly it comes, an idle keep-alive by --idle-timeout (both
// loops), connections past --max-connections get a 503, control characters are escaped in
// the access log, bare-LF requests are answered; and asyncore-get stops at Content-Length.
import { type ChildProcess, spawn } from 'node:child_process';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { DIST, MODES, run, startCli, until } from './helpers.js';

const children: ChildProcess[] = [];
const sockets: Socket[] = [];
const servers: Server[] = [];

afterEach(() => {
  for (const sock of sockets.splice(0)) sock.destroy();
  for (const server of servers.splice(0)) server.close();
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

async function http(args: string[]): Promise<{ port: number; output: () => string }> {
  const server = await startCli('http', ['--port', '0', ...args]);
  children.push(server.child);
  return server;
}

/** A raw client that records what arrives and when the server closes. */
interface Raw {
  sock: Socket;
  received: () => string;
  closed: Promise<number>;
}

function raw(port: number): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    sockets.push(sock);
    let data = '';
    sock.on('data', (d: Buffer) => (data += d.toString('latin1')));
    const closed = new Promise<number>((done) => {
      sock.on('close', () => done(performance.now()));
    });
    sock.on('error', () => undefined);
    sock.once('connect', () => resolve({ sock, received: () => data, closed }));
    sock.once('error', reject);
  });
}

/** The control characters in text other than the line ends, as char codes. */
function controlCharsIn(text: string): number[] {
  const found: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if ((code < 0x20 && code !== 0x0a) || (code >= 0x7f && code <= 0x9f)) found.push(code);
  }
  return found;
}

describe.each(MODES)('timeouts (%s)', (mode) => {
  it('--header-timeout closes a head that trickles in a byte per 100 ms', async () => {
    const server = await http(['--mode', mode, '--header-timeout', '1', '--idle-timeout', '30']);
    const client = await raw(server.port);
    const started = performance.now();
    const head = `GET / HTTP/1.1\r\nX-Slow: ${'a'.repeat(200)}`;
    let sent = 0;
    const state: { closedAt: number | null } = { closedAt: null };
    void client.closed.then((t) => (state.closedAt = t));
    // Each byte is progress, but the head as a whole must be complete within 1 s.
    while (state.closedAt === null && sent < head.length) {
      client.sock.write(head[sent++] as string);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(state.closedAt).not.toBeNull();
    expect((state.closedAt ?? 0) - started).toBeGreaterThanOrEqual(900);
    expect(sent).toBeLessThan(head.length);
    expect(client.received()).toBe('');
    await until(() => server.output().includes('header timeout'));
  });

  it('--idle-timeout closes a keep-alive connection that sends nothing more', async () => {
    const server = await http(['--mode', mode, '--header-timeout', '30', '--idle-timeout', '1']);
    const client = await raw(server.port);
    // Before the request: the server answers later, and its idle clock starts then. (Taken
    // after the answer arrived, this would be late by until()'s polling, which a loaded
    // machine stretches.)
    const sentAt = performance.now();
    client.sock.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => client.received().includes('</p>'));
    expect(client.received()).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*Connection: keep-alive\r\n/);
    const closedAt = await client.closed;
    expect(closedAt - sentAt).toBeGreaterThanOrEqual(950);
    await until(() => server.output().includes('idle timeout'));
  });

  it('a connection that keeps sending requests is not idle', async () => {
    const server = await http(['--mode', mode, '--idle-timeout', '1']);
    const client = await raw(server.port);
    let closed = false;
    void client.closed.then(() => (closed = true));
    for (let i = 1; i <= 6; i++) {
      client.sock.write('GET / HTTP/1.1\r\n\r\n');
      await until(() => client.received().split('HTTP/1.1 200').length - 1 === i);
      await new Promise((r) => setTimeout(r, 400));
    }
    expect(closed).toBe(false);
  });
});

describe('--max-connections', () => {
  it('answers 503 and closes past the cap, and serves again once a connection leaves', async () => {
    const server = await http(['--max-connections', '2']);
    const held: Raw[] = [];
    for (let i = 0; i < 2; i++) {
      const c = await raw(server.port);
      c.sock.write('GET / HTTP/1.1\r\n\r\n');
      await until(() => c.received().includes('</p>'));
      held.push(c);
    }
    const refused = await raw(server.port);
    refused.sock.write('GET / HTTP/1.1\r\n\r\n');
    await refused.closed;
    expect(refused.received()).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n[^]*Connection: close\r\n/);
    expect(server.output()).toMatch(/refused: 2 connections open/);
    held[0]?.sock.destroy();
    await held[0]?.closed;
    // The server notices the close on its next turn: retry until a slot is free.
    let served = false;
    for (let attempt = 0; attempt < 50 && !served; attempt++) {
      const c = await raw(server.port);
      c.sock.write('GET / HTTP/1.1\r\nConnection: close\r\n\r\n');
      await c.closed;
      served = c.received().startsWith('HTTP/1.1 200 OK');
    }
    expect(served).toBe(true);
  });

  it('rejects a cap that is not a positive integer', async () => {
    for (const bad of ['0', '-1', '1.5', 'x']) {
      const result = await run(process.execPath, [join(DIST, 'cli', 'http.js'), `--max-connections=${bad}`]);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/--max-connections must be a positive integer/);
    }
    for (const flag of ['--header-timeout', '--idle-timeout']) {
      const result = await run(process.execPath, [join(DIST, 'cli', 'http.js'), flag, '0']);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`${flag} must be a positive number of seconds`);
    }
  });
});

describe('requests', () => {
  it('escapes control characters of the request in the access log, as Python does', async () => {
    const server = await http([]);
    const client = await raw(server.port);
    client.sock.write(Buffer.from('GET /\x1b[31mred\x00\x7f\x9b HTTP/1.1\r\nConnection: close\r\n\r\n', 'latin1'));
    await client.closed;
    expect(client.received()).toMatch(/^HTTP\/1\.1 404 /);
    await until(() => server.output().includes('404'));
    const log = server.output();
    expect(log).toContain('"GET /\\x1b[31mred\\x00\\x7f\\x9b HTTP/1.1" 404');
    expect(controlCharsIn(log)).toEqual([]);
  });

  it('escapes them in the lines that say why a request was refused', async () => {
    const server = await http([]);
    const client = await raw(server.port);
    client.sock.write(Buffer.from('GET / HTTP/1.1\r\nBad\x1bHeader\r\n\r\n', 'latin1'));
    await client.closed;
    expect(client.received()).toMatch(/^HTTP\/1\.1 400 /);
    await until(() => server.output().includes('malformed header line'));
    expect(controlCharsIn(server.output())).toEqual([]);
  });

  it.each([
    ['bare LF line ends', 'GET / HTTP/1.1\nHost: x\n\n'],
    ['mixed line ends', 'GET / HTTP/1.1\r\nHost: x\n\r\n'],
    ['a bare-LF request line with CRLF fields', 'GET / HTTP/1.1\nHost: x\r\n\r\n'],
  ])('answers a request with %s, as Python and nginx do', async (_what, request) => {
    const server = await http(['--quiet']);
    const client = await raw(server.port);
    client.sock.write(request + request.replace('Host: x', 'Connection: close'));
    await client.closed;
    const replies = client.received().split('HTTP/1.1 200 OK').length - 1;
    expect(replies).toBe(2);
  });

  it('answers a bare-LF POST whose body follows, and the request after it', async () => {
    const server = await http(['--quiet']);
    const client = await raw(server.port);
    client.sock.write('POST / HTTP/1.1\nContent-Length: 3\n\nabcGET /nope HTTP/1.1\nConnection: close\n\n');
    await client.closed;
    expect(client.received()).toMatch(/^HTTP\/1\.1 405 [^]*HTTP\/1\.1 404 /);
  });
});

describe('asyncore-get', () => {
  /** A server that announces `length` bytes and sends `body`, then closes. */
  function lyingServer(length: number, body: string): Promise<number> {
    return new Promise((resolve) => {
      const server = createServer((sock) => {
        sock.on('error', () => undefined);
        sock.once('data', () => {
          sock.end(`HTTP/1.0 200 OK\r\nContent-Length: ${length}\r\n\r\n${body}`);
        });
      });
      servers.push(server);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : 0);
      });
    });
  }

  it.each(MODES)('stops at Content-Length when the body is longer, and fails (%s)', async (mode) => {
    const port = await lyingServer(5, 'hello, and then some more bytes that are not the body');
    const child = spawn(process.execPath, [join(DIST, 'cli', 'get.js'), '--mode', mode, `http://127.0.0.1:${port}/`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(1);
    expect(stdout).toBe('hello');
    expect(stderr).toMatch(/the body is longer than its Content-Length \(5 bytes\)/);
  });

  it('still succeeds on a body of exactly Content-Length', async () => {
    const port = await lyingServer(5, 'hello');
    const result = await run(process.execPath, [join(DIST, 'cli', 'get.js'), `http://127.0.0.1:${port}/`]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('hello');
  });
});
