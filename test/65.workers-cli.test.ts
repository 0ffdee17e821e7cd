// asyncore-echo --workers 2 and asyncore-http --workers 2 against real peers (python3, curl):
// many connections are served by both worker loops, every byte or page checked, and SIGTERM
// stops every worker, after which the tool prints each worker's connection count and exits 0.
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { DIST, HALF_CLOSE_CLIENT, MODES, killAll, run, startCli, waitExit } from './helpers.js';

const children: ChildProcess[] = [];
let root = '';

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'asyncore-workers-'));
  writeFileSync(join(root, 'page.txt'), 'served by one of two loops\n'.repeat(500));
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

afterEach(() => killAll(children));

async function startTool(name: string, args: string[]): Promise<Awaited<ReturnType<typeof startCli>>> {
  const server = await startCli(name, ['--port', '0', '--workers', '2', ...args]);
  children.push(server.child);
  return server;
}

/** SIGTERM, exit 0, and each worker's "served N connections" line: the counts, in worker order. */
async function stopAndCount(server: Awaited<ReturnType<typeof startCli>>): Promise<number[]> {
  // 'close', not 'exit': the last of stderr may arrive after the exit.
  const closed = new Promise<number | string>((resolve) =>
    server.child.once('close', (code, signal) => resolve(code ?? signal ?? -1)),
  );
  server.child.kill('SIGTERM');
  expect(await waitExit(server.child)).toBe(0);
  expect(await closed).toBe(0);
  const counts = [...server.output().matchAll(/worker (\d+) served (\d+) connections/g)].map((m) => Number(m[2]));
  expect(counts).toHaveLength(2);
  return counts;
}

describe.each(MODES)('--workers 2 --mode %s', (mode) => {
  it('asyncore-echo serves 40 python3 connections on both loops, byte for byte, and exits 0 on SIGTERM', async () => {
    const server = await startTool('echo', ['--mode', mode]);
    expect(server.output()).toContain(`mode ${mode}, workers 2`);
    // 40 connections at once, each with its own random bytes; every echoed byte is checked.
    const sizes = Array.from({ length: 40 }, (_, i) => 1000 + 997 * i);
    const result = await run('python3', [HALF_CLOSE_CLIENT, String(server.port), ...sizes.map(String)], {
      timeoutMs: 20_000,
    });
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(sizes.map((size) => `${size} True\n`).join(''));
    const counts = await stopAndCount(server);
    expect(counts.every((n) => n > 0)).toBe(true);
    expect(counts.reduce((sum, n) => sum + n, 0)).toBe(40);
    // Each worker also counts the bytes it echoed: together, every byte python3 sent.
    const bytes = [...server.output().matchAll(/served \d+ connections, (\d+) bytes/g)].map((m) => Number(m[1]));
    expect(bytes).toHaveLength(2);
    expect(bytes.reduce((sum, n) => sum + n, 0)).toBe(40 * 1000 + 997 * ((39 * 40) / 2));
  });

  it('asyncore-http serves 40 curl connections on both loops, every page whole, and exits 0 on SIGTERM', async () => {
    const server = await startTool('http', ['--mode', mode, '--root', root, '--quiet']);
    const url = `http://${server.host}:${server.port}/page.txt`;
    // One curl, 40 transfers, each on its own connection.
    const result = await run('curl', ['-sS', '--fail', '-H', 'Connection: close', ...Array<string>(40).fill(url)], {
      timeoutMs: 20_000,
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const page = 'served by one of two loops\n'.repeat(500);
    const digest = (text: string): string => createHash('sha256').update(text).digest('hex');
    expect(digest(result.stdout)).toBe(digest(page.repeat(40)));
    const counts = await stopAndCount(server);
    expect(counts.every((n) => n > 0)).toBe(true);
    expect(counts.reduce((sum, n) => sum + n, 0)).toBe(40);
  });
});

describe('--workers: bad values and busy ports', () => {
  it.each(['0', 'two', '1.5', '1025'])('refuses --workers %s with a usage error (exit 2)', async (value) => {
    const result = await run(process.execPath, [join(DIST, 'cli', 'echo.js'), '--port', '0', '--workers', value]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--workers must be 1-1024');
  });

  it('exits 1 with "cannot listen" when the port is taken by a listener without SO_REUSEPORT', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    try {
      const address = blocker.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      const result = await run(process.execPath, [
        join(DIST, 'cli', 'http.js'),
        '--port',
        String(port),
        '--workers',
        '2',
      ]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`cannot listen on 127.0.0.1:${port}`);
      expect(result.stderr).toContain('EADDRINUSE');
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});
