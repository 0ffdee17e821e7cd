// asyncore-http, the AsyncChat HTTP/1.1 server, driven by curl (and a raw TCP client for what
// curl will not send), in both loop modes: whole files, keep-alive, HEAD, errors, and no way
// out of the root (.., %2e%2e, symlinks).
import { type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { type Server, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { BEST_BACKEND, DIST, type Mode, MODES, run, startCli, waitExit } from './helpers.js';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

// One tree for every server: the root, and a secret next to it that must never be served.
const base = mkdtempSync(join(tmpdir(), 'asyncore-http-'));
const root = join(base, 'root');
const outside = join(base, 'outside');
const SECRET = `secret-${randomBytes(8).toString('hex')}`;
const big = randomBytes(5 * 1024 * 1024);

beforeAll(() => {
  mkdirSync(join(root, 'sub'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(root, 'big.bin'), big);
  writeFileSync(join(root, 'a.txt'), 'file a\n');
  writeFileSync(join(root, 'b.html'), '<p>file b</p>\n');
  writeFileSync(join(root, 'hello world.txt'), 'spaces are fine\n');
  writeFileSync(join(root, 'sub', 'index.html'), '<p>sub index</p>\n');
  writeFileSync(join(outside, 'secret.txt'), SECRET);
  symlinkSync(join(outside, 'secret.txt'), join(root, 'escape.txt'));
  symlinkSync(outside, join(root, 'outdir'));
  symlinkSync(join(root, 'a.txt'), join(root, 'inside-link.txt'));
});

afterAll(() => rmSync(base, { recursive: true, force: true }));

/** Sends raw bytes, returns everything the server sent until it closed the connection. */
function rawExchange(port: number, request: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(port, '127.0.0.1', () => socket.end(request));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close from the server; got ${Buffer.concat(chunks).toString('latin1').slice(0, 200)}`));
    }, 10_000);
    socket.on('data', (d: Buffer) => chunks.push(d));
    // An error reply may be followed by a reset when the server closes with input unread.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}

const statusOf = (response: string): number => Number(/^HTTP\/1\.1 (\d{3}) /.exec(response)?.[1] ?? 0);

describe.each(MODES.map((mode) => ({ mode, backend: mode === 'sync' ? 'select' : BEST_BACKEND })))(
  'asyncore-http --mode $mode --backend $backend',
  ({ mode, backend }) => {
    let server: { child: ChildProcess; port: number };
    let url: string;

    beforeAll(async () => {
      server = await startCli('http', ['--port', '0', '--root', root, '--mode', mode, '--backend', backend]);
      url = `http://127.0.0.1:${server.port}`;
    });

    afterAll(async () => {
      server.child.kill('SIGTERM');
      // SIGTERM is a clean stop: exit status 0.
      expect(await waitExit(server.child)).toBe(0);
    });

    async function curl(...args: string[]): Promise<{ code: number | string; stdout: string; stderr: string }> {
      return run('curl', ['-sS', '--max-time', '20', ...args]);
    }

    it('serves a 5 MiB file whole (sha256), with its length and type', async () => {
      const out = join(base, `big-${mode}.out`);
      const result = await curl('-o', out, '-w', '%{http_code} %{size_download} %{content_type}', `${url}/big.bin`);
      expect(result.stdout).toBe(`200 ${big.length} application/octet-stream`);
      expect(sha256(readFileSync(out))).toBe(sha256(big));
    });

    it('closes the file when a download completes, and when the client goes away mid-way', async () => {
      const pid = server.child.pid as number;
      const openBigFiles = (): number =>
        readdirSync(`/proc/${pid}/fd`).filter((fd) => {
          try {
            return readlinkSync(`/proc/${pid}/fd/${fd}`) === join(root, 'big.bin');
          } catch {
            return false; // closed while we looked
          }
        }).length;
      const closedSoon = async (): Promise<number> => {
        // The server closes the file after its last send; curl may finish reading just before.
        for (let waited = 0; openBigFiles() > 0 && waited < 5000; waited += 20) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        return openBigFiles();
      };
      await curl('-o', '/dev/null', `${url}/big.bin`);
      expect(await closedSoon()).toBe(0);
      // Read the first bytes of the file, then hang up while the server is still streaming.
      await new Promise<void>((resolve, reject) => {
        const socket = connect(server.port, '127.0.0.1', () => socket.write('GET /big.bin HTTP/1.1\r\n\r\n'));
        socket.once('data', () => {
          socket.resetAndDestroy();
          resolve();
        });
        socket.on('error', reject);
      });
      expect(await closedSoon()).toBe(0);
    });

    it('keeps the connection alive across requests (HTTP/1.1 default)', async () => {
      // The first -o goes with the first URL: the streamed file, then two small ones after it.
      const result = await curl('-v', '-o', '/dev/null', `${url}/big.bin`, `${url}/a.txt`, `${url}/b.html`);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe('file a\n<p>file b</p>\n');
      expect(result.stderr.match(/Connected to/g)).toHaveLength(1);
      expect(result.stderr.match(/Re-using existing connection/g)).toHaveLength(2);
      expect(result.stderr).toMatch(/< Content-Type: text\/html; charset=utf-8/);
    });

    it('honours Connection: close, and closes HTTP/1.0 unless it asks for keep-alive', async () => {
      const close = await curl('-v', '-H', 'Connection: close', `${url}/a.txt`, `${url}/a.txt`);
      expect(close.stdout).toBe('file a\nfile a\n');
      expect(close.stderr.match(/Connected to/g)).toHaveLength(2);
      expect(close.stderr).not.toMatch(/Re-using/);
      const http10 = await curl('-v', '-0', `${url}/a.txt`, `${url}/a.txt`);
      expect(http10.stderr.match(/Connected to/g)).toHaveLength(2);
      const http10KeepAlive = await curl('-v', '-0', '-H', 'Connection: keep-alive', `${url}/a.txt`, `${url}/a.txt`);
      expect(http10KeepAlive.stdout).toBe('file a\nfile a\n');
      expect(http10KeepAlive.stderr.match(/Connected to/g)).toHaveLength(1);
    });

    it('answers HEAD with the headers of GET and no body', async () => {
      const result = await curl('-I', '-w', '%{size_download}', `${url}/big.bin`);
      expect(result.stdout).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(result.stdout).toMatch(new RegExp(`\r\nContent-Length: ${big.length}\r\n`));
      expect(result.stdout.endsWith('\r\n\r\n0')).toBe(true);
    });

    it('serves index.html for a directory, decodes %20, and follows a symlink that stays inside', async () => {
      const result = await curl(`${url}/sub/`, `${url}/hello%20world.txt`, `${url}/inside-link.txt?x=1`);
      expect(result.stdout).toBe('<p>sub index</p>\nspaces are fine\nfile a\n');
    });

    it('answers 404 for what is not there', async () => {
      const result = await curl('-w', '%{http_code}', `${url}/nope.txt`);
      expect(result.stdout).toBe('404 Not Found\n404');
    });

    it('answers 405 with Allow for other methods, after reading their body', async () => {
      const post = await curl('-i', '-X', 'POST', '-d', 'x=1', `${url}/a.txt`);
      expect(post.stdout).toMatch(/^HTTP\/1\.1 405 Method Not Allowed\r\n/);
      expect(post.stdout).toMatch(/\r\nAllow: GET, HEAD\r\n/);
      const del = await curl('-w', '%{http_code}', '-X', 'DELETE', `${url}/a.txt`);
      expect(del.stdout.endsWith('405')).toBe(true);
    });

    it.each([
      '/../../etc/passwd',
      '/../../../../../../../../../../etc/passwd',
      '/../outside/secret.txt',
      '/%2e%2e/%2e%2e/etc/passwd',
      '/%2E%2E/outside/secret.txt',
      '/sub/..%2f..%2foutside%2fsecret.txt',
      '/escape.txt',
      '/outdir/secret.txt',
    ])('refuses %s without leaking a byte', async (path) => {
      const result = await curl('--path-as-is', '-w', '%{http_code}', `${url}${path}`);
      expect(result.stdout).toBe('404 Not Found\n404');
      expect(result.stdout).not.toContain(SECRET);
      expect(result.stdout).not.toContain('root:');
    });

    it('answers 400 to a malformed request line and closes', async () => {
      const response = await rawExchange(server.port, 'GARBAGE\r\n\r\n');
      expect(statusOf(response)).toBe(400);
      expect(response).toMatch(/\r\nConnection: close\r\n/);
    });

    it('answers 413 to a request head over 64 KiB, and to a body over the limit', async () => {
      const longHead = `GET /a.txt HTTP/1.1\r\nX-Filler: ${'f'.repeat(70_000)}\r\n\r\n`;
      expect(statusOf(await rawExchange(server.port, longHead))).toBe(413);
      const bigBody = 'POST /a.txt HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n';
      expect(statusOf(await rawExchange(server.port, bigBody))).toBe(413);
    });

    it('answers pipelined requests in order, a body read by its Content-Length in between', async () => {
      const response = await rawExchange(
        server.port,
        'POST /a.txt HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello' +
          'GET /a.txt HTTP/1.1\r\n\r\n' +
          'GET /b.html HTTP/1.1\r\nConnection: close\r\n\r\n',
      );
      const statuses = [...response.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
      expect(statuses).toEqual([405, 200, 200]);
      expect(response.endsWith('file a\n') || response.endsWith('<p>file b</p>\n')).toBe(true);
      expect(response.indexOf('file a\n')).toBeLessThan(response.indexOf('<p>file b</p>'));
    });
  },
);

describe('asyncore-http as a command', () => {
  const children: ChildProcess[] = [];
  let blocker: Server | null = null;
  afterEach(() => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
    blocker?.close();
    blocker = null;
  });

  async function start(args: string[]): Promise<{ child: ChildProcess; port: number }> {
    const started = await startCli('http', args);
    children.push(started.child);
    return started;
  }

  it('serves a hello page at / without --root, and 404 elsewhere', async () => {
    const { port } = await start(['--port', '0']);
    const hello = await run('curl', ['-sS', '-w', '%{http_code}', `http://127.0.0.1:${port}/`]);
    expect(hello.stdout).toMatch(/<h1>Hello from asyncore-http<\/h1>[\s\S]*200$/);
    const other = await run('curl', ['-sS', '-w', '%{http_code}', `http://127.0.0.1:${port}/x`]);
    expect(other.stdout.endsWith('404')).toBe(true);
  });

  it.each(MODES)('stops cleanly on SIGINT in %s mode, even with a connection open', async (mode: Mode) => {
    const { child, port } = await start(['--port', '0', '--mode', mode, '--root', root]);
    const idle = connect(port, '127.0.0.1');
    // The server may reset the connection as it exits: this test is about the exit code.
    idle.on('error', () => undefined);
    await new Promise((resolve) => idle.on('connect', resolve));
    child.kill('SIGINT');
    expect(await waitExit(child)).toBe(0);
    idle.destroy();
  });

  it('prints its usage for --help', async () => {
    const result = await run(process.execPath, [join(DIST, 'cli', 'http.js'), '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^usage: asyncore-http/);
    expect(result.stdout).toMatch(/--root DIR/);
  });

  it.each([
    [['--bogus'], /Unknown option '--bogus'/],
    [['--port', 'eighty'], /--port must be 0-65535/],
    [['--port', '70000'], /--port must be 0-65535/],
    [['--mode', 'fast'], /--mode must be sync or thread/],
    [['--backend', 'iocp'], /--backend iocp is not available/],
    [['--root', '/nonexistent/asyncore'], /--root \/nonexistent\/asyncore does not exist/],
    [['--root', '/etc/passwd'], /is not a directory/],
  ])('exits with 2 on bad flags: %s', async (args, message) => {
    const result = await run(process.execPath, [join(DIST, 'cli', 'http.js'), ...args]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toMatch(/usage: asyncore-http/);
  });

  it('exits with 1 when it cannot listen', async () => {
    const taken = createServer();
    blocker = taken;
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const address = taken.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    const result = await run(process.execPath, [join(DIST, 'cli', 'http.js'), '--port', String(port)]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: bind EADDRINUSE`));
  });
});

// test/helpers.ts's run(), which these tests lean on, writes the (empty) input to the child's
// stdin: a child that exits before that write is flushed (curl, or this CLI on a bad flag)
// makes the write fail with EPIPE, which must not become an uncaught exception that vitest
// would pin on whichever test was running.
describe('test helpers', () => {
  it('run() survives children that exit before reading their stdin', async () => {
    const uncaught: unknown[] = [];
    const record = (err: unknown): void => {
      uncaught.push(err);
    };
    process.prependListener('uncaughtException', record);
    try {
      const results = await Promise.all(Array.from({ length: 50 }, () => run('true', [])));
      expect(results.every((r) => r.code === 0)).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      process.removeListener('uncaughtException', record);
    }
    expect(uncaught.map(String)).toEqual([]);
  });
});
