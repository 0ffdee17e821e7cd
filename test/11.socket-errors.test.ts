// Bad input and failed system calls: TypeError / RangeError / SocketError with Node's
// system-error fields, never a crash and never a silent no-op.
import { closeSync, openSync } from 'node:fs';

import {
  AF_INET,
  AF_INET6,
  AF_UNIX,
  type Address,
  Socket,
  SocketError,
  SOCK_DGRAM,
  SOCK_STREAM,
  SOL_SOCKET,
  SO_ERROR,
  SO_REUSEADDR,
  loop,
  loopSync,
  socketpair,
} from 'asyncore';
import { afterEach, describe, expect, it } from 'vitest';

import { callUntyped, constructUntyped, errorOf, recvExactly, removeUnixPath, sleepSync, unixPath } from './helpers.js';

const opened: Socket[] = [];
const unixPaths: Address[] = [];

function track(sock: Socket): Socket {
  opened.push(sock);
  return sock;
}

afterEach(() => {
  for (const sock of opened.splice(0)) sock.close();
  for (const path of unixPaths.splice(0)) removeUnixPath(path);
  // After every failure the process is alive and a fresh socket still works.
  const [a, b] = socketpair();
  try {
    a.send('alive');
    expect(recvExactly(b, 5).toString()).toBe('alive');
  } finally {
    a.close();
    b.close();
  }
});

describe('arguments of the wrong type throw TypeError', () => {
  const cases: [string, (sock: Socket) => unknown][] = [
    ['bind(42)', (s) => callUntyped(s, 'bind', 42)],
    ['bind(["127.0.0.1", "80"])', (s) => callUntyped(s, 'bind', ['127.0.0.1', '80'])],
    ['bind([127, 80])', (s) => callUntyped(s, 'bind', [127, 80])],
    ['bind(["127.0.0.1"])', (s) => callUntyped(s, 'bind', ['127.0.0.1'])],
    ['bind(["127.0.0.1", 1.5])', (s) => callUntyped(s, 'bind', ['127.0.0.1', 1.5])],
    ['connect(null)', (s) => callUntyped(s, 'connect', null)],
    ['connectEx({})', (s) => callUntyped(s, 'connectEx', {})],
    ['send(42)', (s) => callUntyped(s, 'send', 42)],
    ['send([1, 2])', (s) => callUntyped(s, 'send', [1, 2])],
    ['recv("10")', (s) => callUntyped(s, 'recv', '10')],
    ['recv(1.5)', (s) => callUntyped(s, 'recv', 1.5)],
    ['listen("5")', (s) => callUntyped(s, 'listen', '5')],
    [
      'setsockopt(SOL_SOCKET, SO_REUSEADDR, "yes")',
      (s) => callUntyped(s, 'setsockopt', SOL_SOCKET, SO_REUSEADDR, 'yes'),
    ],
    ['getsockopt("SOL_SOCKET", 2)', (s) => callUntyped(s, 'getsockopt', 'SOL_SOCKET', 2)],
    ['shutdown("both")', (s) => callUntyped(s, 'shutdown', 'both')],
    ['sendto("x", 8080)', (s) => callUntyped(s, 'sendto', 'x', 8080)],
  ];

  it.each(cases)('%s', (_name, call) => {
    const sock = track(new Socket(AF_INET, SOCK_STREAM));
    expect(errorOf(() => call(sock))).toBeInstanceOf(TypeError);
  });

  it('a UNIX socket refuses a [host, port] address, an IP socket a path', () => {
    const unix = track(new Socket(AF_UNIX));
    expect(errorOf(() => callUntyped(unix, 'bind', ['127.0.0.1', 0]))).toBeInstanceOf(TypeError);
    const inet = track(new Socket(AF_INET));
    expect(errorOf(() => inet.bind('/tmp/not-for-inet.sock'))).toBeInstanceOf(TypeError);
  });

  it('new Socket("inet") and socketpair("unix")', () => {
    expect(errorOf(() => constructUntyped(Socket, 'inet'))).toBeInstanceOf(TypeError);
    expect(errorOf(() => constructUntyped(Socket, AF_INET, 'stream'))).toBeInstanceOf(TypeError);
    expect(errorOf(() => callUntyped({ socketpair }, 'socketpair', 'unix'))).toBeInstanceOf(TypeError);
  });
});

describe('values out of range throw RangeError', () => {
  it.each([70000, -1, 65536])('port %i in bind, connect, connectEx and sendto', (port) => {
    const sock = track(new Socket(AF_INET));
    expect(errorOf(() => sock.bind(['127.0.0.1', port]))).toBeInstanceOf(RangeError);
    expect(errorOf(() => sock.connect(['127.0.0.1', port]))).toBeInstanceOf(RangeError);
    expect(errorOf(() => sock.connectEx(['127.0.0.1', port]))).toBeInstanceOf(RangeError);
    const dgram = track(new Socket(AF_INET, SOCK_DGRAM));
    expect(errorOf(() => dgram.sendto('x', ['127.0.0.1', port]))).toBeInstanceOf(RangeError);
    // Nothing was bound on the way: the socket still binds to a real port.
    sock.bind(['127.0.0.1', 0]);
  });

  it('recv(-1) and recvfrom(-1)', () => {
    const [a, b] = socketpair();
    track(a);
    track(b);
    const err = errorOf(() => a.recv(-1));
    expect(err).toBeInstanceOf(RangeError);
    expect(String(err)).toMatch(/-1/);
    expect(errorOf(() => a.recvfrom(-1))).toBeInstanceOf(RangeError);
  });

  it('Socket.fromFd(-1)', () => {
    expect(errorOf(() => Socket.fromFd(-1))).toBeInstanceOf(RangeError);
  });
});

describe('failed name resolution', () => {
  // A name glibc rejects before asking DNS, so the answer does not depend on the network.
  const UNKNOWN_HOST = 'no such host.invalid';

  it('throws SocketError ENOTFOUND from getaddrinfo for an unknown host', () => {
    const sock = track(new Socket(AF_INET));
    const err = errorOf(() => sock.connectEx([UNKNOWN_HOST, 80]));
    expect(err).toBeInstanceOf(SocketError);
    expect(err).toMatchObject({ code: 'ENOTFOUND', syscall: 'getaddrinfo' });
    expect(String(err)).toContain(UNKNOWN_HOST);
    expect(errorOf(() => sock.bind([UNKNOWN_HOST, 0]))).toMatchObject({ code: 'ENOTFOUND' });
    const dgram = track(new Socket(AF_INET, SOCK_DGRAM));
    expect(errorOf(() => dgram.sendto('x', [UNKNOWN_HOST, 9]))).toMatchObject({ code: 'ENOTFOUND' });
  });
});

describe('every operation on a closed socket throws SocketError EBADF', () => {
  const operations: [string, (sock: Socket) => unknown][] = [
    ['bind', (s) => s.bind(['127.0.0.1', 0])],
    ['listen', (s) => s.listen(1)],
    ['connect', (s) => s.connect(['127.0.0.1', 9])],
    ['connectEx', (s) => s.connectEx(['127.0.0.1', 9])],
    ['accept', (s) => s.accept()],
    ['send', (s) => s.send('x')],
    ['recv', (s) => s.recv(1)],
    ['sendto', (s) => s.sendto('x', ['127.0.0.1', 9])],
    ['recvfrom', (s) => s.recvfrom(1)],
    ['shutdown', (s) => s.shutdown(0)],
    ['getsockname', (s) => s.getsockname()],
    ['getpeername', (s) => s.getpeername()],
    ['setsockopt', (s) => s.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)],
    ['getsockopt', (s) => s.getsockopt(SOL_SOCKET, SO_REUSEADDR)],
    ['setBlocking', (s) => s.setBlocking(true)],
  ];

  it.each(operations)('%s', (_name, operation) => {
    const sock = new Socket(AF_INET);
    sock.close();
    const err = errorOf(() => operation(sock));
    expect(err).toBeInstanceOf(SocketError);
    expect(err).toMatchObject({ code: 'EBADF', errno: 9 });
    // Closing again stays quiet.
    expect(() => sock.close()).not.toThrow();
  });
});

describe('refused connections', () => {
  /** A port with nothing listening: bound once, then released. */
  function closedPort(family: number, host: string): number {
    const probe = new Socket(family);
    probe.bind([host, 0]);
    const [, port] = probe.getsockname() as readonly [string, number];
    probe.close();
    return port;
  }

  it('connect() to a closed TCP port throws ECONNREFUSED with code, errno, syscall and a message naming them', () => {
    const port = closedPort(AF_INET, '127.0.0.1');
    const sock = track(new Socket(AF_INET));
    // Blocking, so connect() itself reports the refusal (loopback answers at once).
    sock.setBlocking(true);
    const err = errorOf(() => sock.connect(['127.0.0.1', port]));
    expect(err).toBeInstanceOf(SocketError);
    expect(err).toBeInstanceOf(Error);
    expect(err).toMatchObject({ code: 'ECONNREFUSED', errno: 111, syscall: 'connect', name: 'SocketError' });
    const message = (err as SocketError).message;
    expect(message).toMatch(/ECONNREFUSED/);
    expect(message).toMatch(/connect/);
    expect(message).toMatch(/111/);
  });

  it('connectEx() returns the errno instead, and SO_ERROR tells a non-blocking connect', () => {
    const port = closedPort(AF_INET, '127.0.0.1');
    const blocking = track(new Socket(AF_INET));
    blocking.setBlocking(true);
    expect(blocking.connectEx(['127.0.0.1', port])).toBe(111);

    const nonBlocking = track(new Socket(AF_INET));
    const started = nonBlocking.connectEx(['127.0.0.1', port]);
    expect([111, 115]).toContain(started);
    if (started === 115) {
      // EINPROGRESS: the refusal arrives as the socket's pending error.
      let pending = 0;
      for (let i = 0; i < 2000 && pending === 0; i++) {
        pending = nonBlocking.getsockopt(SOL_SOCKET, SO_ERROR);
        if (pending === 0) sleepSync(1);
      }
      expect(pending).toBe(111);
    }
  });

  it('a UNIX path that nobody listens on refuses too, a missing one is ENOENT', () => {
    const path = unixPath();
    unixPaths.push(path);
    const bound = track(new Socket(AF_UNIX));
    bound.bind(path);
    const client = track(new Socket(AF_UNIX));
    expect(errorOf(() => client.connect(path))).toMatchObject({ code: 'ECONNREFUSED', syscall: 'connect' });
    expect(errorOf(() => client.connect(`${path}.missing`))).toMatchObject({ code: 'ENOENT', errno: 2 });
  });

  it('bind() to a taken address throws EADDRINUSE', () => {
    const first = track(new Socket(AF_INET));
    first.bind(['127.0.0.1', 0]);
    first.listen(1);
    const second = track(new Socket(AF_INET));
    expect(errorOf(() => second.bind(first.getsockname()))).toMatchObject({
      code: 'EADDRINUSE',
      errno: 98,
      syscall: 'bind',
    });
  });
});

describe('other failed system calls', () => {
  it('Socket.fromFd() of a file is ENOTSOCK', () => {
    const fd = openSync('/dev/null', 'r');
    try {
      expect(errorOf(() => Socket.fromFd(fd))).toMatchObject({ code: 'ENOTSOCK' });
    } finally {
      closeSync(fd);
    }
  });

  it('an unknown family is EAFNOSUPPORT, an IPv4 socketpair is EOPNOTSUPP', () => {
    expect(errorOf(() => new Socket(12345))).toMatchObject({ code: 'EAFNOSUPPORT', syscall: 'socket' });
    expect(errorOf(() => socketpair(AF_INET))).toBeInstanceOf(SocketError);
  });

  it('getpeername() of an unconnected socket is ENOTCONN', () => {
    const sock = track(new Socket(AF_INET6));
    expect(errorOf(() => sock.getpeername())).toMatchObject({ code: 'ENOTCONN', syscall: 'getpeername' });
  });
});

describe('asking for a backend that is not here', () => {
  it('loopSync throws, and loop() rejects, before anything runs', async () => {
    const map = new Map();
    // kqueue is no backend of this package (it has none to test it on): asking for it throws too.
    expect(() => callUntyped({ loopSync }, 'loopSync', { backend: 'kqueue', map })).toThrow(/kqueue/);
    expect(() => callUntyped({ loopSync }, 'loopSync', { backend: 'nope', map })).toThrow(/nope/);
    await expect(callUntyped({ loop }, 'loop', { backend: 'kqueue', map }) as Promise<void>).rejects.toThrow(/kqueue/);
  });
});
