// The lessons in examples/ as programs: compiled by `tsc -p tsconfig.examples.json` (npm test
// does that first), started with node, driven by real peers (python3, curl, socat), every
// byte checked, and stopped by their PID. The chat server's output bound is checked
// in-process, where the test can make a client that never reads.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { SOL_SOCKET, SO_RCVBUF, SO_SNDBUF, type SocketMap, Socket, closeAll, loopSync } from 'asyncore';
import { afterEach, describe, expect, it } from 'vitest';

import { ChatServer, MAX_QUEUED } from '../examples/chat-server.js';
import { BEST_BACKEND, HALF_CLOSE_CLIENT, ROOT, accepts, freePort, run, waitExit } from './helpers.js';

const program = (name: string): string => join(ROOT, 'dist', 'examples', `${name}.js`);

const children: ChildProcess[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Starts a program and resolves with the port in the first line matching `pattern`. */
function start(
  command: string,
  args: string[],
  pattern = /listening on [^\n]*:(\d+)\n/,
): Promise<{ child: ChildProcess; port: number; output: () => string }> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} did not start: ${stdout}${stderr}`)), 15_000);
    child.on('exit', (code) => reject(new Error(`${command} exited ${String(code)}: ${stdout}${stderr}`)));
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = pattern.exec(stdout);
      if (m !== null) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]), output: () => stdout + stderr });
      }
    });
  });
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'asyncore-examples-'));
  dirs.push(dir);
  return dir;
}

describe('lesson 1: the echo server', () => {
  it('echoes every byte to a client with idle connections beside it, and traces its iterations', async () => {
    const server = await start(process.execPath, [
      program('echo-server'),
      '--port',
      '0',
      '--backend',
      BEST_BACKEND,
      '--trace',
    ]);
    // docs/tour/client.py checks each echo byte for byte and fails otherwise.
    const client = await run('python3', [
      join(ROOT, 'docs', 'tour', 'client.py'),
      String(server.port),
      '--idle',
      '20',
      '--messages',
      '200',
      '--size',
      '3000',
    ]);
    expect(client.stderr).toBe('');
    expect(client.code).toBe(0);
    expect(JSON.parse(client.stdout)).toMatchObject({ idle: 20, messages: 200 });
    expect(server.output()).toMatch(
      new RegExp(String.raw`^#\d+ ${BEST_BACKEND} read=\[[\d,]+\] write=\[[\d,]*\] ready=\[\d+:1\] waited `, 'm'),
    );
    server.child.kill('SIGTERM');
    expect(await waitExit(server.child)).toBe('SIGTERM');
  });

  it('gives socat back exactly what it sent', async () => {
    const server = await start(process.execPath, [program('echo-server'), '--port', '0']);
    const input = 'first line\nsecond line, a bit longer\n' + 'x'.repeat(5000) + '\n';
    const result = await run('socat', ['-t', '5', '-', `TCP:127.0.0.1:${server.port}`], { input });
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(input);
  });
});

describe('lesson 2: the HTTP/1.0 client', () => {
  it('fetches a binary file from python3 http.server byte for byte, and reports 404 and a refused connection', async () => {
    const dir = tempDir();
    const blob = randomBytes(300_000);
    writeFileSync(join(dir, 'blob.bin'), blob);
    const server = await start(
      'python3',
      ['-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', dir],
      /port (\d+)/,
    );

    const out = join(dir, 'got.bin');
    const ok = await run('bash', [
      '-c',
      `node "$0" "$1" > "$2"`,
      program('http-get'),
      `http://127.0.0.1:${server.port}/blob.bin`,
      out,
    ]);
    expect(ok.stderr).toBe('HTTP/1.0 200 OK\n');
    expect(ok.code).toBe(0);
    expect(readFileSync(out).equals(blob)).toBe(true);

    const missing = await run(process.execPath, [program('http-get'), `http://127.0.0.1:${server.port}/nothing-here`]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^HTTP\/1\.0 404 /);

    const refused = await run(process.execPath, [program('http-get'), `http://127.0.0.1:${await freePort()}/`]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('ECONNREFUSED');

    const usage = await run(process.execPath, [program('http-get'), 'ftp://example.org/']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('usage: http-get');
  });
});

describe('lesson 3: the port forwarder', () => {
  it('carries three concurrent half-closing clients through socat, both ways, and exits 0 on SIGTERM', async () => {
    const target = await freePort();
    // socat's -t: after one direction ends, wait up to 10 s for the other (cat's output).
    const socat = spawn('socat', ['-t', '10', `TCP-LISTEN:${target},bind=127.0.0.1,reuseaddr,fork`, 'EXEC:cat'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(socat);
    let socatErr = '';
    socat.stderr.on('data', (d: Buffer) => (socatErr += d.toString()));
    // The forwarder connects to it per client: socat must listen first. It prints nothing when it
    // does, so the port is tried every 20 ms; socat exits at once if it cannot bind.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const listening = await accepts(target);
      if (socat.exitCode !== null || socat.signalCode !== null) {
        throw new Error(`socat exited (${String(socat.exitCode ?? socat.signalCode)}) on port ${target}: ${socatErr}`);
      }
      if (listening) break;
      if (Date.now() > deadline) throw new Error(`socat did not listen on port ${target} within 10 s: ${socatErr}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const forwarder = await start(process.execPath, [
      program('port-forwarder'),
      '--listen',
      '0',
      '--to',
      `127.0.0.1:${target}`,
    ]);
    const clients = await Promise.all(
      [1, 2, 3].map(() => run('python3', [HALF_CLOSE_CLIENT, String(forwarder.port), '2000000'])),
    );
    for (const client of clients) {
      expect(client.stderr).toBe('');
      expect(client.stdout).toBe('2000000 True\n');
    }
    forwarder.child.kill('SIGTERM');
    expect(await waitExit(forwarder.child)).toBe(0);
  });

  it('lets curl download a file from python3 http.server through it', async () => {
    const dir = tempDir();
    const blob = randomBytes(500_000);
    writeFileSync(join(dir, 'blob.bin'), blob);
    const http = await start(
      'python3',
      ['-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', dir],
      /port (\d+)/,
    );
    const forwarder = await start(process.execPath, [
      program('port-forwarder'),
      '--listen',
      '0',
      '--to',
      `127.0.0.1:${http.port}`,
    ]);
    const out = join(dir, 'got.bin');
    const curl = await run('curl', [
      '-sS',
      '--max-time',
      '20',
      '-o',
      out,
      `http://127.0.0.1:${forwarder.port}/blob.bin`,
    ]);
    expect(curl.stderr).toBe('');
    expect(curl.code).toBe(0);
    expect(readFileSync(out).equals(blob)).toBe(true);
  });
});

describe('lesson 4: the chat server', () => {
  // Three python3 clients talk; each one's transcript is every byte it received, in order.
  const CHAT_CLIENTS = String.raw`
import json, socket, sys, time
port = int(sys.argv[1])
transcripts = {}

def connect(name):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    transcripts[name] = ""
    expect(name, s, "* hello: say NICK yourname\n")
    return s

def expect(name, s, text):
    want = text.encode()
    got = b""
    while len(got) < len(want):
        chunk = s.recv(len(want) - len(got))
        if not chunk:
            got += b"<EOF>"
            break
        got += chunk
    transcripts[name] += got.decode()

def eof(name, s):
    transcripts[name] += "<EOF>" if s.recv(1) == b"" else "<more>"

alice = connect("alice")
alice.sendall(b"hi\n"); expect("alice", alice, "! say NICK yourname first\n")
alice.sendall(b"NICK alice\n"); expect("alice", alice, "* you are alice\n* alice joined\n")

bob = connect("bob")
bob.sendall(b"NICK bo b\n"); expect("bob", bob, "! a nickname is 1 to 16 letters, digits, _ or -\n")
bob.sendall(b"NICK alice\n"); expect("bob", bob, "! alice is taken\n")
bob.sendall(b"NICK bob\r\n"); expect("bob", bob, "* you are bob\n* bob joined\n")
expect("alice", alice, "* bob joined\n")

carol = connect("carol")
carol.sendall(b"NICK carol\n"); expect("carol", carol, "* you are carol\n* carol joined\n")
for name, s in (("alice", alice), ("bob", bob)):
    expect(name, s, "* carol joined\n")

# One line in three pieces: AsyncChat joins them; nobody sees anything before the "\n".
for piece in (b"hello ", "ev\u00e9ry".encode(), " \u2713one\n".encode()):
    alice.sendall(piece); time.sleep(0.05)
for name, s in (("alice", alice), ("bob", bob), ("carol", carol)):
    expect(name, s, "alice: hello ev\u00e9ry \u2713one\n")

# bob leaves in the middle of a line: the half line is never broadcast.
bob.sendall(b"half a li"); time.sleep(0.05); bob.close()
for name, s in (("alice", alice), ("carol", carol)):
    expect(name, s, "* bob left\n")

# carol sends a line longer than MAX_LINE: she is disconnected, the others are told.
carol.sendall(b"y" * 2000 + b"\n")
eof("carol", carol)
expect("alice", alice, "* carol left\n")

alice.sendall(b"/quit\n"); expect("alice", alice, "* bye\n"); eof("alice", alice)
print(json.dumps(transcripts))
`;

  it('serves nicknames, broadcasts, a client leaving mid-line, a too-long line and /quit, to python3 clients', async () => {
    const server = await start(process.execPath, [program('chat-server'), '--port', '0']);
    const result = await run('python3', ['-c', CHAT_CLIENTS, String(server.port)]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      alice:
        '* hello: say NICK yourname\n! say NICK yourname first\n* you are alice\n* alice joined\n' +
        '* bob joined\n* carol joined\nalice: hello ev\u00e9ry \u2713one\n* bob left\n* carol left\n* bye\n<EOF>',
      bob:
        '* hello: say NICK yourname\n! a nickname is 1 to 16 letters, digits, _ or -\n! alice is taken\n' +
        '* you are bob\n* bob joined\n* carol joined\nalice: hello ev\u00e9ry \u2713one\n',
      carol:
        '* hello: say NICK yourname\n* you are carol\n* carol joined\nalice: hello ev\u00e9ry \u2713one\n* bob left\n<EOF>',
    });
    expect(server.output()).toContain('closing (line too long)');
    server.child.kill('SIGTERM');
    expect(await waitExit(server.child)).toBe(0);
  });

  describe('in-process', () => {
    let map: SocketMap = new Map();
    const sockets: Socket[] = [];
    afterEach(() => {
      closeAll(map);
      map = new Map();
      for (const sock of sockets.splice(0)) sock.close();
    });

    /** Runs loop iterations until `done()` (bounded: 2,000 iterations of at most 10 ms). */
    function until(done: () => boolean): void {
      for (let i = 0; i < 2000 && !done(); i++) loopSync({ map, backend: 'poll', timeout: 0.01, count: 1 });
      expect(done()).toBe(true);
    }

    it('disconnects a client that stops reading once its queue passes MAX_QUEUED, and the room goes on', () => {
      const server = new ChatServer('127.0.0.1', 0, map);
      const connect = (nick: string): Socket => {
        const sock = new Socket();
        sockets.push(sock);
        sock.setsockopt(SOL_SOCKET, SO_RCVBUF, 4096);
        sock.connectEx(['127.0.0.1', server.port]);
        until(() => server.room.sessions.size === sockets.length);
        sock.send(`NICK ${nick}\n`);
        until(() => server.room.byNick(nick) !== undefined);
        return sock;
      };
      connect('slow');
      const reader = connect('reader');
      // The kernel's send buffer must not absorb the whole flood: make it small.
      const slow = server.room.byNick('slow');
      if (!(slow?.socket instanceof Socket)) throw new Error('no session for slow');
      slow.socket.setsockopt(SOL_SOCKET, SO_SNDBUF, 4096);

      const line = 'z'.repeat(500);
      let sent = 0;
      // reader keeps reading, slow never does: only slow's outbox grows.
      for (; sent < 2000 && server.room.byNick('slow') !== undefined; sent++) {
        server.room.broadcast(line);
        loopSync({ map, backend: 'poll', timeout: 0, count: 1 });
        try {
          while (reader.recv(65536).length > 0);
        } catch {
          // EAGAIN: nothing more to read right now.
        }
      }
      expect(server.room.byNick('slow')).toBeUndefined();
      // It was dropped after about MAX_QUEUED bytes of backlog, far before the flood ended.
      expect(sent * (line.length + 1)).toBeGreaterThan(MAX_QUEUED);
      expect(sent).toBeLessThan(2000);
      expect([...server.room.sessions].map((s) => s.nick)).toEqual(['reader']);
    });
  });
});
