// asyncore-get against a real HTTP server (python3 -m http.server): the body arrives intact
// on stdout and in a file, in both loop modes and on every backend, and every failure has
// its exit status and a one-line message.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { BACKENDS, DIST, MODES, accepts, freePort, waitExit } from './helpers.js';

const GET = join(DIST, 'cli', 'get.js');
const BODY_BYTES = 2 * 1024 * 1024;

/** python3 -m http.server on a free port, once it accepts connections. */
async function startHttpServer(directory: string): Promise<{ child: ChildProcess; port: number }> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const args = ['-m', 'http.server', '--bind', '127.0.0.1', String(port), '--directory', directory];
    const child = spawn('python3', args, { stdio: 'ignore' });
    const deadline = Date.now() + 10_000;
    while (child.exitCode === null && Date.now() < deadline) {
      if (await accepts(port)) return { child, port };
      await new Promise((r) => setTimeout(r, 50));
    }
    // Someone took the port between our probe and python's bind: try another one.
    child.kill('SIGKILL');
    await waitExit(child);
  }
  throw new Error('python3 -m http.server did not start');
}

interface GetResult {
  code: number | string;
  sha256: string;
  stdoutBytes: number;
  stderr: string;
}

/** Runs asyncore-get to completion, hashing stdout as it streams by. */
function get(args: string[], timeoutMs = 20_000): Promise<GetResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [GET, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const hash = createHash('sha256');
    let stdoutBytes = 0;
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      hash.update(d);
      stdoutBytes += d.length;
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal ?? -1, sha256: hash.digest('hex'), stdoutBytes, stderr });
    });
  });
}

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

describe('asyncore-get', () => {
  let dir: string;
  let server: { child: ChildProcess; port: number };
  let expected: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'asyncore-get-'));
    const body = randomBytes(BODY_BYTES);
    writeFileSync(join(dir, 'big.bin'), body);
    expected = sha256(body);
    server = await startHttpServer(dir);
  });

  afterEach(async () => {
    for (const child of children.splice(0)) {
      child.kill('SIGKILL');
      await waitExit(child);
    }
  });

  afterAll(async () => {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- undefined when beforeAll failed
    if (server !== undefined) {
      server.child.kill('SIGKILL');
      await waitExit(server.child);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const url = (path: string): string => `http://127.0.0.1:${server.port}${path}`;

  for (const mode of MODES) {
    for (const backend of BACKENDS) {
      it(`streams a 2 MiB body to stdout intact (${mode}, ${backend})`, async () => {
        const result = await get([url('/big.bin'), '--mode', mode, '--backend', backend]);
        expect(result.stderr).toBe('');
        expect(result.code).toBe(0);
        expect(result.stdoutBytes).toBe(BODY_BYTES);
        expect(result.sha256).toBe(expected);
      });
    }

    it(`writes a 2 MiB body to -o FILE intact, nothing to stdout (${mode})`, async () => {
      const file = join(dir, `out-${mode}.bin`);
      const result = await get([url('/big.bin'), '-o', file, '--mode', mode]);
      expect(result.code).toBe(0);
      expect(result.stdoutBytes).toBe(0);
      expect(sha256(readFileSync(file))).toBe(expected);
    });

    it(`exits 1 on a 404 with the status in its message, and creates no file (${mode})`, async () => {
      const file = join(dir, `missing-${mode}.bin`);
      const result = await get([url('/no-such-file'), '-o', file, '--mode', mode]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^asyncore-get: HTTP 404\b.*\n$/);
      expect(existsSync(file)).toBe(false);
    });
  }

  it('prints the status line and headers to stderr with -v, the body still to stdout', async () => {
    const result = await get(['-v', url('/big.bin')]);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/^HTTP\/1\.0 200 OK\n/);
    expect(result.stderr).toMatch(new RegExp(`^Content-Length: ${BODY_BYTES}$`, 'm'));
    expect(result.sha256).toBe(expected);
  });

  it('exits 1 with a one-line message when nothing listens on the port', async () => {
    const closed = await freePort();
    for (const mode of MODES) {
      const result = await get([`http://127.0.0.1:${closed}/`, '--mode', mode]);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(`asyncore-get: cannot connect to 127.0.0.1:${closed}: ECONNREFUSED\n`);
      expect(result.stdoutBytes).toBe(0);
    }
  });

  it('exits 1 when the host name does not resolve', async () => {
    const result = await get(['http://no-such-host.invalid/']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^asyncore-get: cannot connect to no-such-host\.invalid:80: \S+\n$/);
  });

  it('exits 2 for https:// and ftp:// URLs, naming the scheme', async () => {
    for (const scheme of ['https', 'ftp']) {
      const result = await get([`${scheme}://127.0.0.1:${server.port}/big.bin`]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`only http:// URLs are supported, not ${scheme}://`);
      expect(result.stdoutBytes).toBe(0);
    }
  });

  it('exits 2 on a bad flag, a missing URL or a bad --timeout', async () => {
    const badCommandLines = [
      ['--bogus', url('/')],
      [],
      [url('/'), '--mode', 'fast'],
      [url('/'), '--timeout=-1'],
      [url('/'), '--timeout', '0'],
    ];
    for (const args of badCommandLines) {
      const result = await get(args);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/^asyncore-get: \S/);
      expect(result.stderr).toContain('\n\nusage: asyncore-get URL');
    }
  });

  describe('with a server that accepts and never answers', () => {
    let silent: ChildProcess;
    let silentPort: number;
    // The server prints one line per connection it accepted: a test waits for its client's
    // line instead of sleeping and hoping the client got that far.
    let acceptedLines = 0;
    const acceptWaiters: (() => void)[] = [];

    beforeAll(async () => {
      silent = spawn(
        'python3',
        [
          '-c',
          'import socket, sys, time\n' +
            's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(16)\n' +
            'print(s.getsockname()[1], flush=True)\n' +
            'held = []\n' +
            'while True:\n' +
            '    held.append(s.accept()[0])\n' +
            '    print("accepted", flush=True)\n',
        ],
        { stdio: ['ignore', 'pipe', 'ignore'] },
      );
      silentPort = await new Promise<number>((resolve, reject) => {
        let text = '';
        silent.stdout?.on('data', (d: Buffer) => {
          text += d.toString();
          const lines = text.split('\n');
          text = lines.pop() ?? '';
          for (const line of lines) {
            if (line === 'accepted') {
              acceptedLines++;
              for (const wake of acceptWaiters.splice(0)) wake();
            } else {
              resolve(Number(line));
            }
          }
        });
        silent.once('exit', () => reject(new Error('the silent server exited')));
      });
    });

    /** Resolves once the server has accepted more than `count` connections in all. */
    async function acceptedMoreThan(count: number): Promise<void> {
      while (acceptedLines <= count) await new Promise<void>((resolve) => acceptWaiters.push(resolve));
    }

    afterAll(async () => {
      silent.kill('SIGKILL');
      await waitExit(silent);
    });

    for (const mode of MODES) {
      it(`gives up after --timeout seconds without progress, exit 1 (${mode})`, async () => {
        const result = await get([`http://127.0.0.1:${silentPort}/`, '--timeout', '0.3', '--mode', mode]);
        expect(result.code).toBe(1);
        expect(result.stderr).toBe('asyncore-get: timed out: no progress for 0.3 s\n');
      });

      it(`stops cleanly on SIGINT and SIGTERM (${mode})`, async () => {
        for (const signal of ['SIGINT', 'SIGTERM'] as const) {
          const acceptedBefore = acceptedLines;
          const child = spawn(process.execPath, [GET, `http://127.0.0.1:${silentPort}/`, '--mode', mode], {
            stdio: ['ignore', 'ignore', 'pipe'],
          });
          children.push(child);
          let stderr = '';
          child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          // Once connected (its signal handlers are set up in the same turn as the connect), the
          // client sits in its loop waiting for an answer.
          await acceptedMoreThan(acceptedBefore);
          const closed = new Promise((resolve) => child.on('close', (code) => resolve(code)));
          child.kill(signal);
          expect(await closed).toBe(1);
          expect(stderr).toBe(`asyncore-get: interrupted by ${signal}\n`);
        }
      });
    }
  });
});
