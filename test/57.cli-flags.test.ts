// The command-line flags every tool shares and the classic tutorials' flags, on the real tools
// from dist/ against real peers (python3, curl): --trace lines with the fds the kernel really
// has and -v's dispatcher names, colour only on a terminal (a pty from util-linux's `script`),
// asyncore-forward's long names and defaults, asyncore-get -i byte for byte against
// python3's http.server, asyncore-echo -v, and peer text escaped before it reaches a terminal.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { type IterationTrace, POLLHUP, POLLIN, POLLOUT } from 'asyncore';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { escapeControls, formatAddress, formatTrace, wantsColour } from '../src/cli/common.js';
import { BEST_BACKEND, DIST, HALF_CLOSE_PEERS, MODES, freePort, killAll, run, startCli, waitExit } from './helpers.js';

const CLI = (name: string): string => join(DIST, 'cli', `${name}.js`);

/** What a test started, killed after it; and the servers a describe() shares, killed after all of it. */
const children: ChildProcess[] = [];
const sharedServers: ChildProcess[] = [];

afterEach(() => killAll(children));
afterAll(() => killAll(sharedServers));

async function start(name: string, args: string[]): Promise<Awaited<ReturnType<typeof startCli>>> {
  const server = await startCli(name, args);
  children.push(server.child);
  return server;
}

/** Resolves once `output()` matches `pattern` (the tools write as events happen, not at exit). */
async function waitFor(output: () => string, pattern: RegExp, ms = 10_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + ms;
  for (;;) {
    const match = pattern.exec(output());
    if (match !== null) return match;
    if (Date.now() > deadline) throw new Error(`no ${String(pattern)} in:\n${output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Stops a server with SIGINT and returns everything it printed. */
async function stop(server: { child: ChildProcess; output: () => string }): Promise<string> {
  server.child.kill('SIGINT');
  expect(await waitExit(server.child, 5000)).toBe(0);
  return server.output();
}

/**
 * A python3 program (python3's arguments: `-c SOURCE ...` or `SCRIPT ...`) that prints its
 * listening port on its first line, and keeps running until the test ends (or, `shared`, until
 * the file's tests end).
 */
async function startPython(argv: string[], shared = false): Promise<{ port: number; output: () => string }> {
  const child = spawn('python3', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  (shared ? sharedServers : children).push(child);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const [, port] = await waitFor(() => out, /^(\d+)\n/);
  return { port: Number(port), output: () => out };
}

// A TCP client: connects, sends argv[3] (a Python bytes literal), reads until EOF, prints
// its own port and then what came back (as hex).
const PY_CLIENT = `
import ast, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
print(s.getsockname()[1], flush=True)
s.sendall(ast.literal_eval(sys.argv[3]))
s.shutdown(socket.SHUT_WR)
got = b''
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
print(got.hex())
`;

async function pythonClient(port: number, data: string): Promise<{ port: number; reply: Buffer }> {
  const result = await run('python3', ['-c', PY_CLIENT, '127.0.0.1', String(port), data], { timeoutMs: 15_000 });
  expect(result.code, result.stderr).toBe(0);
  const [own = '', hex = ''] = result.stdout.split('\n');
  return { port: Number(own), reply: Buffer.from(hex, 'hex') };
}

// python3's http.server serving a directory, with the clock fixed at the epoch so that two
// requests for the same file get the same bytes (Date and Last-Modified alike).
const PY_HTTP_SERVER = `
import http.server, os, sys
class Handler(http.server.SimpleHTTPRequestHandler):
    def date_time_string(self, timestamp=None):
        return super().date_time_string(0)
    def log_message(self, *args):
        pass
os.chdir(sys.argv[1])
server = http.server.HTTPServer(('127.0.0.1', 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
`;

/** The raw bytes of a response to `GET path HTTP/1.0`, read with node:net. */
function rawGet(port: number, path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = netConnect(port, '127.0.0.1', () => sock.write(`GET ${path} HTTP/1.0\r\n\r\n`));
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('end', () => resolve(Buffer.concat(chunks)));
    sock.on('error', reject);
  });
}

/** Runs a tool to completion with stdout as bytes. */
function runBytes(
  args: string[],
  env = process.env,
): Promise<{ code: number | string; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    children.push(child);
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('latin1')));
    child.on('error', reject);
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal ?? -1, stdout: Buffer.concat(out), stderr });
    });
  });
}

/** One --trace line, and with -v the dispatcher named for each fd. */
interface TracedIteration {
  iteration: number;
  backend: string;
  read: number[];
  write: number[];
  except: number[];
  ready: Map<number, string>;
  names: Map<number, string>;
}

const TRACE_LINE =
  /^#(\d+) (\w+) read=\[([\d,]*)\] write=\[([\d,]*)\] except=\[([\d,]*)\] waited \d+\.\d{3} ms -> ready (.+) \(dispatch \d+\.\d{3} ms\)$/;

function fdList(text: string | undefined): number[] {
  return text === undefined || text === '' ? [] : text.split(',').map(Number);
}

/** The --trace lines of a tool's output, each with the -v lines that follow it. */
function parseTrace(output: string): TracedIteration[] {
  const iterations: TracedIteration[] = [];
  for (const line of output.split('\n')) {
    const match = TRACE_LINE.exec(line);
    if (match !== null) {
      const ready = new Map<number, string>();
      if (match[6] !== '-') {
        for (const item of (match[6] as string).split(' ')) {
          const [fd, events] = item.split(':');
          ready.set(Number(fd), events as string);
        }
      }
      iterations.push({
        iteration: Number(match[1]),
        backend: match[2] as string,
        read: fdList(match[3]),
        write: fdList(match[4]),
        except: fdList(match[5]),
        ready,
        names: new Map(),
      });
      continue;
    }
    const named = /^ {4}(\d+) (.*)$/.exec(line);
    const last = iterations[iterations.length - 1];
    if (named !== null && last !== undefined) last.names.set(Number(named[1]), named[2] as string);
  }
  return iterations;
}

/** Checks what every traced iteration must satisfy (-v: with the dispatchers named), and returns them. */
function checkedTrace(output: string, backend: string, verbose = true): TracedIteration[] {
  const iterations = parseTrace(output);
  expect(iterations.length).toBeGreaterThan(1);
  for (const it of iterations) {
    expect(it.backend).toBe(backend);
    const asked = new Set([...it.read, ...it.write, ...it.except]);
    // The kernel answers only about fds it was asked about.
    for (const fd of it.ready.keys()) expect(asked.has(fd)).toBe(true);
    // -v names every fd of the line, and a dispatcher's own fd is the one it is named for.
    const named = verbose ? [...new Set([...asked, ...it.ready.keys()])] : [];
    expect([...it.names.keys()].sort((a, b) => a - b)).toEqual(named.sort((a, b) => a - b));
    for (const [fd, name] of it.names) {
      if (name !== 'closed') expect(name).toMatch(new RegExp(`^<\\w+ .*at fd ${fd}>$`));
    }
  }
  // Numbered in order from 0.
  expect(iterations.map((it) => it.iteration)).toEqual(iterations.map((_, i) => i));
  return iterations;
}

/** The fd number by which process `pid` holds the TCP socket listening on 127.0.0.1:port. */
function listeningFd(pid: number, port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const row = readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .find((cols) => cols[1] === `0100007F:${hexPort}` && cols[3] === '0A');
  expect(row).toBeDefined();
  const inode = (row as string[])[9];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`) return Number(fd);
    } catch {
      // An fd closed while we looked.
    }
  }
  throw new Error(`process ${pid} holds no socket listening on port ${port}`);
}

/** The fd -v names for a dispatcher whose name matches `pattern`, in any iteration. */
function fdNamed(iterations: TracedIteration[], pattern: RegExp): number[] {
  const fds = new Set<number>();
  for (const it of iterations) for (const [fd, name] of it.names) if (pattern.test(name)) fds.add(fd);
  return [...fds];
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[/;

describe('the trace formatter', () => {
  const record: IterationTrace = {
    iteration: 7,
    backend: 'epoll',
    read: [5, 9],
    write: [9],
    except: [],
    ready: [
      { fd: 5, events: POLLIN },
      { fd: 9, events: POLLOUT | POLLHUP },
    ],
    waitMs: 1.5,
    dispatchMs: 0.25,
  };

  it('prints one plain line without colour', () => {
    expect(formatTrace(record, { colour: false, verbose: false })).toBe(
      '#7 epoll read=[5,9] write=[9] except=[] waited 1.500 ms -> ready 5:IN 9:OUT|HUP (dispatch 0.250 ms)\n',
    );
  });

  it('colours only what a terminal gets, and the text stays the same', () => {
    const coloured = formatTrace(record, { colour: true, verbose: false });
    expect(coloured).toMatch(ANSI);
    // eslint-disable-next-line no-control-regex
    expect(coloured.replace(/\x1b\[\d+m/g, '')).toBe(formatTrace(record, { colour: false, verbose: false }));
  });

  it('colours a terminal unless NO_COLOR is set, and never a pipe', () => {
    expect(wantsColour({ isTTY: true }, {})).toBe(true);
    expect(wantsColour({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(wantsColour({ isTTY: true }, { NO_COLOR: '' })).toBe(true);
    expect(wantsColour({ isTTY: false }, {})).toBe(false);
    expect(wantsColour({}, {})).toBe(false);
  });

  it('names each fd with -v from the map, and fds no longer in it as closed', () => {
    const map = new Map([[5, { toString: () => '<Listener listening 127.0.0.1:80 at fd 5>' }]]);
    const text = formatTrace(record, { colour: false, verbose: true, map: map as never });
    expect(text.split('\n').slice(1)).toEqual(['    5 <Listener listening 127.0.0.1:80 at fd 5>', '    9 closed', '']);
  });

  it('escapes control characters in peer text and addresses', () => {
    expect(escapeControls('a\x1b]0;x\x07b\x9bc\td\x7f')).toBe('a\\x1b]0;x\\x07b\\x9bc\\x09d\\x7f');
    expect(escapeControls('plain text: ünïcode')).toBe('plain text: ünïcode');
    expect(formatAddress(['::1', 80])).toBe('[::1]:80');
    expect(formatAddress(['127.0.0.1', 8080])).toBe('127.0.0.1:8080');
    expect(formatAddress('/tmp/x\x1b.sock')).toBe('/tmp/x\\x1b.sock');
  });
});

describe('asyncore-echo', () => {
  it.each(MODES)('-v prints "Incoming connection from HOST:PORT" per client (%s)', async (mode) => {
    const server = await start('echo', ['--port', '0', '--mode', mode, '-v']);
    const a = await pythonClient(server.port, "b'one'");
    const b = await pythonClient(server.port, "b'two'");
    expect(a.reply.toString()).toBe('one');
    expect(b.reply.toString()).toBe('two');
    const output = await stop(server);
    const lines = output.split('\n').filter((line) => line.startsWith('Incoming connection'));
    expect(lines).toEqual([
      `Incoming connection from 127.0.0.1:${a.port}`,
      `Incoming connection from 127.0.0.1:${b.port}`,
    ]);
  });

  it.each(MODES)('--trace -v: the listening fd the kernel has is the one traced as EchoServer (%s)', async (mode) => {
    const server = await start('echo', ['--port', '0', '--mode', mode, '--backend', 'poll', '--trace', '-v']);
    const pid = server.child.pid as number;
    const listener = listeningFd(pid, server.port);
    const client = await pythonClient(server.port, `b'${'x'.repeat(1000)}'`);
    expect(client.reply.length).toBe(1000);
    const output = await stop(server);
    expect(output).not.toMatch(ANSI);
    const iterations = checkedTrace(output, 'poll');
    expect(fdNamed(iterations, /^<EchoServer listening /)).toEqual([listener]);
    // It is asked for reading each time, and the kernel reported the connection on it.
    for (const it of iterations) if (it.names.get(listener) !== 'closed') expect(it.read).toContain(listener);
    expect(iterations.some((it) => it.ready.get(listener) === 'IN')).toBe(true);
    // The connection: an EchoHandler for the client's port, which was read.
    const [handler] = fdNamed(iterations, new RegExp(`^<EchoHandler connected 127\\.0\\.0\\.1:${client.port} at fd`));
    expect(handler).toBeDefined();
    expect(iterations.some((it) => it.ready.get(handler as number)?.startsWith('IN') === true)).toBe(true);
    expect(fdNamed(iterations, /^<SignalDispatcher /)).toHaveLength(1);
  });

  it('--trace without -v names no dispatcher', async () => {
    const server = await start('echo', ['--port', '0', '--backend', 'select', '--trace']);
    await pythonClient(server.port, "b'hello'");
    const output = await stop(server);
    checkedTrace(output, 'select', false);
    expect(output).not.toMatch(/^ {4}\d+ /m);
  });
});

describe('on a terminal', () => {
  const script = (command: string, env: NodeJS.ProcessEnv): ReturnType<typeof run> =>
    run('script', ['-qec', command, '/dev/null'], { env, timeoutMs: 20_000 });

  let dir = '';
  let port = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'asyncore-57-'));
    writeFileSync(join(dir, 'hello.txt'), 'hello\n');
    ({ port } = await startPython(['-c', PY_HTTP_SERVER, dir], true));
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('--trace is coloured on a terminal, plain with NO_COLOR', async () => {
    const command = `${process.execPath} ${CLI('get')} --trace http://127.0.0.1:${port}/hello.txt`;
    const env = { ...process.env, NO_COLOR: undefined };
    const coloured = await script(command, env);
    expect(coloured.code).toBe(0);
    expect(coloured.stdout).toMatch(/\x1b\[1m#0\x1b\[0m \x1b\[36m(epoll|poll|select)\x1b\[0m read=/); // eslint-disable-line no-control-regex
    const plain = await script(command, { ...process.env, NO_COLOR: '1' });
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(/^#0 (epoll|poll|select) read=/m);
    expect(plain.stdout).not.toMatch(ANSI);
  });
});

describe('asyncore-get', () => {
  let dir = '';
  let port = 0;
  const body = Buffer.concat([Buffer.from('line one\r\nline two\n'), Buffer.from([0, 1, 2, 0x1b, 0xff])]);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'asyncore-57-'));
    writeFileSync(join(dir, 'data.bin'), body);
    ({ port } = await startPython(['-c', PY_HTTP_SERVER, dir], true));
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(MODES)('-i writes the response byte for byte as python3 http.server sent it (%s)', async (mode) => {
    const expected = await rawGet(port, '/data.bin');
    expect(expected.subarray(0, 17).toString()).toBe('HTTP/1.0 200 OK\r\n');
    expect(expected.subarray(expected.length - body.length).equals(body)).toBe(true);
    for (const flag of ['-i', '--include']) {
      const result = await runBytes([CLI('get'), flag, '--mode', mode, `http://127.0.0.1:${port}/data.bin`]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toBe('');
      expect(result.stdout.equals(expected)).toBe(true);
    }
  });

  it('-i with -o writes the whole response to the file', async () => {
    const expected = await rawGet(port, '/data.bin');
    const file = join(dir, 'out.bin');
    const result = await runBytes([CLI('get'), '-i', '-o', file, `http://127.0.0.1:${port}/data.bin`]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.length).toBe(0);
    expect(readFileSync(file).equals(expected)).toBe(true);
  });

  it('-i writes a 404 answer whole and still exits 1', async () => {
    const expected = await rawGet(port, '/missing');
    expect(expected.subarray(0, 24).toString()).toBe('HTTP/1.0 404 File not fo');
    const result = await runBytes([CLI('get'), '-i', `http://127.0.0.1:${port}/missing`]);
    expect(result.code).toBe(1);
    expect(result.stdout.equals(expected)).toBe(true);
    expect(result.stderr).toBe('asyncore-get: HTTP 404 File not found\n');
  });

  it('--trace -v traces the client: its connect (write), then its reads', async () => {
    const result = await runBytes([
      CLI('get'),
      '--trace',
      '-v',
      '--backend',
      'poll',
      `http://127.0.0.1:${port}/data.bin`,
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.equals(body)).toBe(true);
    expect(result.stderr).not.toMatch(ANSI);
    const iterations = checkedTrace(result.stderr, 'poll');
    const [client] = fdNamed(iterations, new RegExp(`^<HttpGet (connected )?127\\.0\\.0\\.1:${port} at fd \\d+>$`));
    expect(client).toBeDefined();
    const fd = client as number;
    expect(iterations[0]?.write).toContain(fd);
    expect(iterations.some((it) => it.ready.get(fd)?.includes('OUT') === true)).toBe(true);
    expect(iterations.some((it) => it.ready.get(fd)?.includes('IN') === true)).toBe(true);
  });

  it('-v escapes the control characters a server puts in its headers; -i passes them on untouched', async () => {
    const reply = Buffer.from(
      'HTTP/1.0 200 OK\r\nX-Title: \x1b]0;owned\x07\x1b[2J\r\nContent-Length: 2\r\n\r\nok',
      'latin1',
    );
    const canned = await startPython([HALF_CLOSE_PEERS, 'canned', reply.toString('hex')]);
    const url = `http://127.0.0.1:${canned.port}/`;
    const verbose = await runBytes([CLI('get'), '-v', url]);
    expect(verbose.code).toBe(0);
    expect(verbose.stdout.toString()).toBe('ok');
    expect(verbose.stderr).toContain('X-Title: \\x1b]0;owned\\x07\\x1b[2J\n');
    expect(verbose.stderr).not.toContain('\x1b');
    const include = await runBytes([CLI('get'), '-i', url]);
    expect(include.stdout.equals(reply)).toBe(true);
  });

  it('escapes a reason phrase with control characters in its failure message', async () => {
    const reply = Buffer.from('HTTP/1.0 418 Tea\x1b[31mpot\r\nContent-Length: 0\r\n\r\n', 'latin1');
    const canned = await startPython([HALF_CLOSE_PEERS, 'canned', reply.toString('hex')]);
    const result = await runBytes([CLI('get'), `http://127.0.0.1:${canned.port}/`]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('asyncore-get: HTTP 418 Tea\\x1b[31mpot\n');
  });
});

describe('asyncore-forward', () => {
  let dir = '';
  let httpPort = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'asyncore-57-'));
    writeFileSync(join(dir, 'index.txt'), 'through the forwarder\n');
    ({ port: httpPort } = await startPython(['-c', PY_HTTP_SERVER, dir], true));
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('--help gives the tutorial defaults: 127.0.0.1, local port 80, remote port 80, only the remote host required', async () => {
    const result = await run(process.execPath, [CLI('forward'), '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      /^usage: asyncore-forward -r REMOTE_HOST \[-l LOCAL_HOST\] \[-p LOCAL_PORT\] \[-P REMOTE_PORT\]/,
    );
    expect(result.stdout).toMatch(/--local-host HOST +address to listen on \(default 127\.0\.0\.1\); also --local-ip/);
    expect(result.stdout).toMatch(/--local-port PORT +port to listen on; 0 picks a free one \(default 80\)/);
    expect(result.stdout).toMatch(
      /--remote-host HOST +host to forward every connection to \(required\); also --remote-ip/,
    );
    expect(result.stdout).toMatch(/--remote-port PORT +port to forward every connection to \(default 80\)/);
  });

  it.each(MODES)(
    'takes the long names --local-ip --local-port --remote-ip --remote-port; -v prints one line per connection (%s)',
    async (mode) => {
      const localPort = await freePort();
      const fwd = await start('forward', [
        '--local-ip',
        '127.0.0.1',
        '--local-port',
        String(localPort),
        '--remote-ip',
        '127.0.0.1',
        '--remote-port',
        String(httpPort),
        '--mode',
        mode,
        '-v',
      ]);
      expect(fwd.port).toBe(localPort);
      const ports: number[] = [];
      for (let i = 0; i < 2; i++) {
        const client = await pythonClient(localPort, "b'GET /index.txt HTTP/1.0\\r\\n\\r\\n'");
        expect(client.reply.toString('latin1')).toMatch(
          /^HTTP\/1\.0 200 OK\r\n[\s\S]*\r\n\r\nthrough the forwarder\n$/,
        );
        ports.push(client.port);
      }
      const output = await stop(fwd);
      expect(output.split('\n').filter((line) => line.startsWith('Incoming'))).toEqual(
        ports.map((p) => `Incoming connection from 127.0.0.1:${p}, forwarding to 127.0.0.1:${httpPort}`),
      );
    },
  );

  it('listens on 127.0.0.1 and forwards to port 80 unless told otherwise', async () => {
    const fwd = await start('forward', ['--remote-ip', '127.0.0.1', '-p', '0', '-v']);
    expect(fwd.host).toBe('127.0.0.1');
    // Whatever answers on port 80 here (or nothing), the line names where it went; it is
    // printed on accept, so the client need not wait for the remote end.
    const client = netConnect(fwd.port, '127.0.0.1');
    client.on('error', () => undefined);
    try {
      await waitFor(fwd.output, /Incoming connection from 127\.0\.0\.1:\d+, forwarding to 127\.0\.0\.1:80\n/);
    } finally {
      client.destroy();
    }
    await stop(fwd);
  });

  it('refuses a command line without a remote host, or whose two names for a host disagree', async () => {
    for (const args of [
      ['-p', '0'],
      ['-r', '127.0.0.1', '--remote-ip', '127.0.0.2'],
      ['-l', '127.0.0.1', '--local-ip', '::1', '-r', 'x'],
    ]) {
      const result = await run(process.execPath, [CLI('forward'), ...args]);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/^asyncore-forward: \S/);
      expect(result.stderr).toMatch(/usage: asyncore-forward/);
    }
  });

  it('--trace -v names the listener and both sides of a connection', async () => {
    const fwd = await start('forward', [
      '-p',
      '0',
      '-r',
      '127.0.0.1',
      '-P',
      String(httpPort),
      '--backend',
      BEST_BACKEND,
      '--trace',
      '-v',
    ]);
    const listener = listeningFd(fwd.child.pid as number, fwd.port);
    const client = await pythonClient(fwd.port, "b'GET /index.txt HTTP/1.0\\r\\n\\r\\n'");
    expect(client.reply.toString()).toContain('through the forwarder');
    const iterations = checkedTrace(await stop(fwd), BEST_BACKEND);
    expect(fdNamed(iterations, /^<Forwarder listening /)).toEqual([listener]);
    expect(iterations.some((it) => it.ready.get(listener) === 'IN')).toBe(true);
    expect(
      fdNamed(iterations, new RegExp(`^<ForwardSide connected 127\\.0\\.0\\.1:${client.port} at fd`)),
    ).toHaveLength(1);
    expect(
      fdNamed(iterations, new RegExp(`^<ForwardSide (connected )?127\\.0\\.0\\.1:${httpPort} at fd`)),
    ).toHaveLength(1);
  });
});

describe('asyncore-http', () => {
  it('--trace -v names the server and the channel; the access log escapes a request target with controls', async () => {
    const server = await start('http', ['--port', '0', '--backend', 'select', '--trace', '-v']);
    const listener = listeningFd(server.child.pid as number, server.port);
    const client = await pythonClient(server.port, "b'GET /\\x1b[31mred HTTP/1.0\\r\\n\\r\\n'");
    expect(client.reply.toString()).toMatch(/^HTTP\/1\.1 404 Not Found\r\n/);
    const output = await stop(server);
    expect(output).toContain(`127.0.0.1:${client.port} "GET /\\x1b[31mred HTTP/1.0" 404 `);
    expect(output).not.toContain('\x1b');
    const iterations = checkedTrace(output, 'select');
    expect(fdNamed(iterations, /^<HttpServer listening /)).toEqual([listener]);
    expect(
      fdNamed(iterations, new RegExp(`^<HttpChannel connected 127\\.0\\.0\\.1:${client.port} at fd`)),
    ).toHaveLength(1);
  });
});
