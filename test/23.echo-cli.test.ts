// asyncore-echo against a real peer: a python3 client sends 1 MiB and checks every byte that
// comes back, on every backend in both loop modes; then SIGINT stops the server cleanly.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { BACKENDS, BEST_BACKEND, DIST, MODES, killAll, run, startCli, waitExit } from './helpers.js';

const ECHO = join(DIST, 'cli', 'echo.js');

// Sends `size` random bytes, reads the echo, prints both sha256 digests and the count.
const PY_CLIENT = `
import hashlib, os, socket, sys
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = os.urandom(size)
s = socket.create_connection((host, port), timeout=10)
s.sendall(data)
got = bytearray()
while len(got) < size:
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
s.close()
sent, back = hashlib.sha256(data).hexdigest(), hashlib.sha256(bytes(got)).hexdigest()
print(sent, back, len(got))
sys.exit(0 if sent == back else 1)
`;

const children: ChildProcess[] = [];

afterEach(() => killAll(children));

async function startEcho(args: string[]): Promise<Awaited<ReturnType<typeof startCli>>> {
  const server = await startCli('echo', ['--port', '0', ...args]);
  children.push(server.child);
  return server;
}

async function pythonClient(
  host: string,
  port: number,
  size: number,
): Promise<{ code: number | string; stdout: string }> {
  return run('python3', ['-c', PY_CLIENT, host, String(port), String(size)], { timeoutMs: 20_000 });
}

describe.each(BACKENDS.flatMap((backend) => MODES.map((mode) => ({ backend, mode }))))(
  'asyncore-echo --backend $backend --mode $mode',
  ({ backend, mode }) => {
    it('echoes 1 MiB byte for byte to python3, then exits 0 on SIGINT', async () => {
      const { child, host, port, output } = await startEcho(['--backend', backend, '--mode', mode]);
      expect(output()).toContain(`backend ${backend}, mode ${mode}`);

      const client = await pythonClient(host, port, 1 << 20);
      const [sent, back, count] = client.stdout.trim().split(' ');
      expect(count).toBe(String(1 << 20));
      expect(back).toBe(sent);
      expect(client.code).toBe(0);

      child.kill('SIGINT');
      expect(await waitExit(child, 5000)).toBe(0);
    });
  },
);

describe('asyncore-echo', () => {
  it('serves several clients at once and stops on SIGTERM too', async () => {
    const { child, host, port } = await startEcho(['--backend', BEST_BACKEND]);
    const clients = await Promise.all([1, 2, 3].map((i) => pythonClient(host, port, i * 100_000)));
    for (const client of clients) expect(client.code).toBe(0);
    child.kill('SIGTERM');
    expect(await waitExit(child, 5000)).toBe(0);
  });

  it.each(MODES)('--trace prints one line per iteration to stderr (%s)', async (mode) => {
    const { child, host, port, output } = await startEcho(['--backend', 'poll', '--mode', mode, '--trace']);
    const client = await pythonClient(host, port, 1000);
    expect(client.code).toBe(0);
    child.kill('SIGINT');
    expect(await waitExit(child, 5000)).toBe(0);
    const traceLine = /^#\d+ poll read=\[[\d,]*\] write=\[[\d,]*\] except=\[[\d,]*\] waited [\d.]+ ms -> ready /;
    const traceLines = output()
      .split('\n')
      .filter((line) => traceLine.test(line));
    expect(traceLines.length).toBeGreaterThan(1);
    // The iterations are numbered in order.
    const numbers = traceLines.map((line) => Number(/^#(\d+)/.exec(line)?.[1]));
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
  });

  const badFlags: [string, string[], RegExp][] = [
    ['--mode bogus', ['--mode', 'bogus'], /--mode/],
    ['--port 70000', ['--port', '70000'], /--port/],
    ['--port abc', ['--port', 'abc'], /--port/],
    ['--backend nope', ['--backend', 'nope'], /--backend nope/],
    ['an unknown flag', ['--bogus'], /bogus/],
  ];

  it.each(badFlags)('%s exits 2 with a message and the usage', async (_name, args, message) => {
    const result = await run(process.execPath, [ECHO, ...args], { timeoutMs: 10_000 });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toMatch(/usage: asyncore-echo/);
    expect(result.stdout).toBe('');
  });

  it('--help prints the usage and exits 0', async () => {
    const result = await run(process.execPath, [ECHO, '--help'], { timeoutMs: 10_000 });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/usage: asyncore-echo/);
  });
});
