// asyncore-forward between real peers: curl and python3 -m http.server, and small python3
// programs that half-close, echo after EOF, and refuse to read. The bytes arrive intact,
// both directions outlive a half-close, and a slow reader holds the sender back instead of
// filling the forwarder's memory.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { SplicePipe } from 'asyncore';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import {
  BACKENDS,
  DIST,
  HALF_CLOSE_CLIENT,
  HALF_CLOSE_PEERS,
  MODES,
  type Mode,
  accepts,
  freePort,
  run,
  startCli,
  waitExit,
} from './helpers.js';

const FILE_BYTES = 5 * 1024 * 1024;
/** How the forwarder moves bytes: through a kernel pipe (the default on Linux) or through JS. */
const TRANSFERS = ['splice', 'copy'] as const;
type Transfer = (typeof TRANSFERS)[number];
const CONCURRENT_CURLS = 50;
const SLOW_READER_BYTES = 50 * 1024 * 1024;
/** How far the forwarder's resident memory may grow while a reader stalls 50 MiB. */
const RSS_GROWTH_LIMIT_KB = 64 * 1024;

// Sends N bytes to its one client as fast as it takes them, then says what it sent.
const FAST_SENDER = `
import hashlib, random, socket, sys
total = int(sys.argv[1])
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
block = random.Random(7).randbytes(1 << 20)
digest = hashlib.sha256()
for i in range(total >> 20):
    chunk = bytes([i & 255]) + block[1:]
    c.sendall(chunk)
    digest.update(chunk)
print("sent", digest.hexdigest(), flush=True)
c.close()
`;

// Connects with a small receive buffer and reads nothing until a line arrives on stdin.
const STALLED_READER = `
import hashlib, socket, sys
c = socket.socket()
c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
c.connect(("127.0.0.1", int(sys.argv[1])))
print("connected", flush=True)
sys.stdin.readline()
digest = hashlib.sha256(); total = 0
while True:
    chunk = c.recv(1 << 20)
    if not chunk:
        break
    digest.update(chunk); total += len(chunk)
print(total, digest.hexdigest(), flush=True)
`;

/** Collects a child's stdout; `line(re)` resolves with the first match of a pattern. */
class Output {
  text = '';
  readonly #waiters: (() => void)[] = [];

  constructor(child: ChildProcess) {
    child.stdout?.on('data', (d: Buffer) => {
      this.text += d.toString();
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  async match(pattern: RegExp, ms = 20_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = pattern.exec(this.text);
      if (found !== null) return found;
      if (Date.now() > deadline) throw new Error(`no ${String(pattern)} in ${JSON.stringify(this.text)}`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }
}

function vmRssKb(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]);
}

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');

interface Forwarder {
  pid: number;
  port: number;
  /** What it printed when it started listening. */
  announce: string;
}

describe('asyncore-forward', () => {
  const children: ChildProcess[] = [];

  /** Every child goes through here, so afterEach can kill it by PID. */
  function spawnChild(command: string, args: string[]): ChildProcess {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    children.push(child);
    return child;
  }

  async function startForwarder(
    mode: Mode,
    remotePort: number,
    backend = 'auto',
    transfer: Transfer = 'splice',
  ): Promise<Forwarder> {
    const local = ['-l', '127.0.0.1', '-p', '0'];
    const remote = ['-r', '127.0.0.1', '-P', String(remotePort)];
    const copy = transfer === 'copy' ? ['--copy'] : [];
    const fwd = await startCli('forward', [...local, ...remote, '--mode', mode, '--backend', backend, ...copy]);
    children.push(fwd.child);
    return { pid: fwd.child.pid as number, port: fwd.port, announce: fwd.output() };
  }

  /** A python3 program (python3's arguments: `-c SOURCE ...` or `SCRIPT ...`) that prints its listening port first. */
  async function startPythonServer(argv: string[]): Promise<{ port: number; output: Output }> {
    const child = spawnChild('python3', argv);
    const output = new Output(child);
    const [, port] = await output.match(/^(\d+)\n/);
    return { port: Number(port), output };
  }

  afterEach(async () => {
    for (const child of children.splice(0)) {
      child.kill('SIGKILL');
      await waitExit(child);
    }
  });

  describe('in front of python3 -m http.server', () => {
    let dir: string;
    let http: ChildProcess | undefined;
    let httpPort: number;
    let expected: string;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'asyncore-forward-'));
      const body = randomBytes(FILE_BYTES);
      writeFileSync(join(dir, 'five.bin'), body);
      expected = sha256(body);
      let started: number | undefined;
      for (let attempt = 0; attempt < 3 && started === undefined; attempt++) {
        const port = await freePort();
        const child = spawn('python3', ['-m', 'http.server', '--bind', '127.0.0.1', String(port), '--directory', dir], {
          stdio: 'ignore',
        });
        http = child;
        const deadline = Date.now() + 10_000;
        while (child.exitCode === null && Date.now() < deadline && started === undefined) {
          if (await accepts(port)) started = port;
          else await new Promise((r) => setTimeout(r, 50));
        }
        if (started === undefined) {
          // Someone took the port between our probe and python's bind: try another one.
          child.kill('SIGKILL');
          await waitExit(child);
        }
      }
      if (started === undefined) throw new Error('python3 -m http.server did not start');
      httpPort = started;
    });

    afterAll(async () => {
      if (http !== undefined) {
        http.kill('SIGKILL');
        await waitExit(http);
      }
      rmSync(dir, { recursive: true, force: true });
    });

    /** curl through the forwarder, hashed by sha256sum so 5 MiB never passes through this process. */
    const curlSha = async (port: number): Promise<string> => {
      const result = await run('sh', ['-c', `curl -sS http://127.0.0.1:${port}/five.bin | sha256sum`]);
      return `${result.stderr}${result.stdout.split(' ')[0] ?? ''}`;
    };

    for (const mode of MODES) {
      for (const backend of BACKENDS) {
        it(`passes a 5 MiB download through intact (${mode}, ${backend})`, async () => {
          const fwd = await startForwarder(mode, httpPort, backend);
          expect(await curlSha(fwd.port)).toBe(expected);
        });
      }

      for (const transfer of TRANSFERS) {
        it(`serves ${CONCURRENT_CURLS} concurrent downloads, every one intact (${mode}, ${transfer})`, async () => {
          const fwd = await startForwarder(mode, httpPort, 'auto', transfer);
          // It says which way it moves bytes; splice where the kernel has it.
          const used = transfer === 'splice' && !SplicePipe.supported ? 'copy' : transfer;
          expect(fwd.announce).toContain(`mode ${mode}, ${used})`);
          const hashes = await Promise.all(Array.from({ length: CONCURRENT_CURLS }, () => curlSha(fwd.port)));
          expect(hashes).toEqual(Array.from({ length: CONCURRENT_CURLS }, () => expected));
        });
      }
    }
  });

  for (const [mode, transfer] of MODES.flatMap((m) => TRANSFERS.map((t) => [m, t] as const))) {
    it(`passes a half-close on and keeps the other direction open (${mode}, ${transfer})`, async () => {
      // Reads until EOF, then sends everything back and closes: the answer only flows after the
      // client's half-close has been passed on.
      const echo = await startPythonServer([HALF_CLOSE_PEERS, 'echo-after-eof']);
      const fwd = await startForwarder(mode, echo.port, 'auto', transfer);
      const client = await run('python3', [HALF_CLOSE_CLIENT, String(fwd.port), String(1024 * 1024)]);
      expect(client.stderr).toBe('');
      expect(client.stdout).toBe(`${1024 * 1024} True\n`);
    });

    it(`holds a fast sender back while the reader stalls, memory bounded, nothing lost (${mode}, ${transfer})`, async () => {
      const sender = await startPythonServer(['-c', FAST_SENDER, String(SLOW_READER_BYTES)]);
      const fwd = await startForwarder(mode, sender.port, 'auto', transfer);
      const rssAtStart = vmRssKb(fwd.pid);
      const reader = spawnChild('python3', ['-c', STALLED_READER, String(fwd.port)]);
      const readerOutput = new Output(reader);
      await readerOutput.match(/^connected\n/);

      let rssPeak = rssAtStart;
      for (let sample = 0; sample < 15; sample++) {
        await new Promise((r) => setTimeout(r, 100));
        rssPeak = Math.max(rssPeak, vmRssKb(fwd.pid));
      }
      // 50 MiB do not fit in the sockets' buffers: the sender can only be done if the
      // forwarder had kept reading into its own memory.
      expect(sender.output.text).not.toContain('sent');
      expect(rssPeak - rssAtStart).toBeLessThan(RSS_GROWTH_LIMIT_KB);

      reader.stdin?.write('go\n');
      const [, total, digest] = await readerOutput.match(/^(\d+) ([0-9a-f]{64})\n/m);
      const [, sent] = await sender.output.match(/^sent ([0-9a-f]{64})\n/m);
      expect(Number(total)).toBe(SLOW_READER_BYTES);
      expect(digest).toBe(sent);
    });

    it(`closes the client cleanly when the remote end refuses (${mode}, ${transfer})`, async () => {
      const fwd = await startForwarder(mode, await freePort(), 'auto', transfer);
      const curl = await run('curl', ['-sS', `http://127.0.0.1:${fwd.port}/`]);
      // The client is closed without a reply: curl says 52 ("empty reply") for the FIN, or 56
      // when its request had already arrived, since closing a socket with unread input sends
      // a reset (TCP's rule, not the forwarder's choice). Not a hang (28) and not a reply.
      expect([52, 56]).toContain(curl.code);
      expect(curl.stdout).toBe('');
    });
  }

  it('stops cleanly on SIGINT and SIGTERM in both modes, exit status 0', async () => {
    for (const mode of MODES) {
      for (const signal of ['SIGINT', 'SIGTERM'] as const) {
        const args = ['-l', '127.0.0.1', '-p', '0', '-r', '127.0.0.1', '-P', '9', '--mode', mode];
        const fwd = await startCli('forward', args);
        children.push(fwd.child);
        fwd.child.kill(signal);
        expect(await waitExit(fwd.child)).toBe(0);
      }
    }
  });

  it('exits 2 on a bad command line', async () => {
    // Only the remote host is required: the ports default to 80, the local host to 127.0.0.1.
    for (const args of [['-l', '127.0.0.1', '-p', '0'], ['--bogus'], ['-r', '127.0.0.1', '-p', 'x']]) {
      const result = await run(process.execPath, [join(DIST, 'cli', 'forward.js'), ...args]);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/^asyncore-forward: \S/);
    }
  });
});
