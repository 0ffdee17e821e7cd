// Socket: the thin wrapper over one raw non-blocking fd, on every address family this host has.
import { readFileSync } from 'node:fs';

import {
  AF_INET,
  AF_UNIX,
  type Address,
  IPPROTO_TCP,
  SHUT_WR,
  SOCK_DGRAM,
  SOCK_STREAM,
  SOL_SOCKET,
  SO_ERROR,
  SO_RCVBUF,
  SO_REUSEADDR,
  SO_SNDBUF,
  Socket,
  SocketError,
  TCP_NODELAY,
  socketpair,
} from 'asyncore';
import { afterEach, describe, expect, it } from 'vitest';

import { FAMILIES, type Family, errorOf, recvExactly, removeUnixPath, whenReady } from './helpers.js';

const EINPROGRESS = 115;
// File status flags as /proc/<pid>/fdinfo prints them (octal).
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;

/** Every socket a test opened, closed afterwards even when the test failed half-way. */
const opened: Socket[] = [];
const unixPaths: Address[] = [];

function track<T extends Socket>(sock: T): T {
  opened.push(sock);
  return sock;
}

afterEach(() => {
  for (const sock of opened.splice(0)) sock.close();
  for (const path of unixPaths.splice(0)) removeUnixPath(path);
});

/** A listener on a fresh address of the family, and a client connected to it, and the accepted peer. */
function connectedPair(family: Family): { listener: Socket; client: Socket; server: Socket; peer: Address } {
  const listener = track(new Socket(family.family));
  const address = family.any();
  unixPaths.push(address);
  listener.bind(address);
  listener.listen(8);
  const client = track(new Socket(family.family));
  expect([0, EINPROGRESS]).toContain(client.connectEx(listener.getsockname()));
  const [server, peer] = whenReady(() => listener.accept());
  track(server);
  return { listener, client, server, peer };
}

function fdFlags(fd: number): number {
  const line = /flags:\s+([0-7]+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  if (line === null) throw new Error(`no flags for fd ${fd}`);
  return Number.parseInt(line[1] as string, 8);
}

describe.each(FAMILIES)('Socket over $name', (family) => {
  it('binds, listens, connects, accepts and reports both ends', () => {
    const { listener, client, server, peer } = connectedPair(family);
    const bound = listener.getsockname();
    if (family.family === AF_UNIX) {
      expect(typeof bound).toBe('string');
      expect(client.getpeername()).toBe(bound);
      // The client never bound: the kernel reports an unnamed UNIX socket.
      expect(peer).toBe('');
      expect(server.getsockname()).toBe(bound);
    } else {
      const [host, port] = bound as readonly [string, number];
      expect(port).toBeGreaterThan(0);
      expect(client.getpeername()).toEqual([host, port]);
      expect(server.getsockname()).toEqual([host, port]);
      expect(server.getpeername()).toEqual(client.getsockname());
      expect(peer).toEqual(client.getsockname());
    }
    // The connection finished without an error.
    expect(client.getsockopt(SOL_SOCKET, SO_ERROR)).toBe(0);
    expect(server.family).toBe(family.family);
    expect(server.type).toBe(SOCK_STREAM);
  });

  it('sends and receives both ways, and shutdown(SHUT_WR) is seen as EOF', () => {
    const { client, server } = connectedPair(family);
    const request = Buffer.from('hello over the wire');
    expect(client.send(request)).toBe(request.length);
    expect(recvExactly(server, request.length)).toEqual(request);
    expect(server.send('answer ünïcode')).toBe(Buffer.byteLength('answer ünïcode'));
    expect(recvExactly(client, Buffer.byteLength('answer ünïcode')).toString('utf8')).toBe('answer ünïcode');

    client.shutdown(SHUT_WR);
    expect(whenReady(() => server.recv(100)).length).toBe(0);
    // The other direction is still open.
    server.send('still here');
    expect(recvExactly(client, 10).toString()).toBe('still here');
  });

  it('returns an empty Buffer at EOF, again and again', () => {
    const { client, server } = connectedPair(family);
    client.close();
    const eof = whenReady(() => server.recv(16));
    expect(Buffer.isBuffer(eof)).toBe(true);
    expect(eof.length).toBe(0);
    expect(server.recv(16).length).toBe(0);
  });

  it('throws EAGAIN from recv() and accept() when nothing is there', () => {
    const { listener, server } = connectedPair(family);
    const recvError = errorOf(() => server.recv(10));
    expect(recvError).toBeInstanceOf(SocketError);
    expect(recvError).toMatchObject({ code: 'EAGAIN', errno: 11, syscall: 'recv' });
    expect(errorOf(() => listener.accept())).toMatchObject({ code: 'EAGAIN', syscall: 'accept' });
  });

  it('creates sockets non-blocking and close-on-exec, accepted ones too', () => {
    const sock = track(new Socket(family.family));
    const { server } = connectedPair(family);
    for (const fd of [sock.fileno(), server.fileno()]) {
      expect(fdFlags(fd) & O_NONBLOCK).toBe(O_NONBLOCK);
      expect(fdFlags(fd) & O_CLOEXEC).toBe(O_CLOEXEC);
    }
  });

  it('sets and reads socket options', () => {
    const sock = track(new Socket(family.family));
    sock.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1);
    expect(sock.getsockopt(SOL_SOCKET, SO_REUSEADDR)).not.toBe(0);
    sock.setsockopt(SOL_SOCKET, SO_REUSEADDR, 0);
    expect(sock.getsockopt(SOL_SOCKET, SO_REUSEADDR)).toBe(0);
    sock.setsockopt(SOL_SOCKET, SO_SNDBUF, 65536);
    // Linux doubles the value for its bookkeeping; it never gives less than asked.
    expect(sock.getsockopt(SOL_SOCKET, SO_SNDBUF)).toBeGreaterThanOrEqual(65536);
    expect(sock.getsockopt(SOL_SOCKET, SO_RCVBUF)).toBeGreaterThan(0);
    if (family.family !== AF_UNIX) {
      sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, true);
      expect(sock.getsockopt(IPPROTO_TCP, TCP_NODELAY)).not.toBe(0);
    }
  });

  it('sends datagrams with sendto() and says who sent them in recvfrom()', () => {
    const receiver = track(new Socket(family.family, SOCK_DGRAM));
    const sender = track(new Socket(family.family, SOCK_DGRAM));
    const receiverAddress = family.any();
    unixPaths.push(receiverAddress);
    receiver.bind(receiverAddress);
    // A UNIX datagram sender must have a name for the receiver to see one.
    const senderAddress = family.any();
    unixPaths.push(senderAddress);
    sender.bind(senderAddress);

    expect(sender.sendto('datagram one', receiver.getsockname())).toBe(12);
    expect(sender.sendto(Buffer.from('two'), receiver.getsockname())).toBe(3);
    const [first, from] = whenReady(() => receiver.recvfrom(100));
    expect(first.toString()).toBe('datagram one');
    expect(from).toEqual(sender.getsockname());
    // Message boundaries are kept.
    const [second] = whenReady(() => receiver.recvfrom(100));
    expect(second.toString()).toBe('two');
    expect(errorOf(() => receiver.recvfrom(100))).toMatchObject({ code: 'EAGAIN', syscall: 'recvfrom' });
  });
});

describe('socketpair', () => {
  it('gives two connected non-blocking UNIX stream sockets', () => {
    const [a, b] = socketpair().map(track) as [Socket, Socket];
    expect(a.family).toBe(AF_UNIX);
    expect(a.type).toBe(SOCK_STREAM);
    a.send('ping');
    expect(recvExactly(b, 4).toString()).toBe('ping');
    b.send('pong');
    expect(recvExactly(a, 4).toString()).toBe('pong');
    expect(errorOf(() => a.recv(1))).toMatchObject({ code: 'EAGAIN', errno: 11, syscall: 'recv' });
  });

  it('gives datagram pairs that keep message boundaries', () => {
    const [a, b] = socketpair(AF_UNIX, SOCK_DGRAM).map(track) as [Socket, Socket];
    expect(a.type).toBe(SOCK_DGRAM);
    a.send('one');
    a.send('second');
    expect(b.recv(100).toString()).toBe('one');
    expect(b.recv(100).toString()).toBe('second');
  });
});

describe('sending to a closed peer', () => {
  it('throws EPIPE instead of raising SIGPIPE (socketpair)', () => {
    const [a, b] = socketpair().map(track) as [Socket, Socket];
    b.close();
    const err = errorOf(() => a.send('nobody listens'));
    expect(err).toBeInstanceOf(SocketError);
    expect(err).toMatchObject({ code: 'EPIPE', errno: 32, syscall: 'send' });
    // Had SIGPIPE been raised, this worker would be dead by now.
    expect(process.pid).toBeGreaterThan(0);
  });

  it('throws EPIPE (after ECONNRESET at most) on TCP, never SIGPIPE', () => {
    const ipv4 = FAMILIES.find((f) => f.family === AF_INET);
    if (ipv4 === undefined) throw new Error('no IPv4 family');
    const { client, server } = connectedPair(ipv4);
    server.close();
    const codes: string[] = [];
    // The first send may still succeed (the peer answers it with RST); later ones fail.
    for (let i = 0; i < 50 && !codes.includes('EPIPE'); i++) {
      try {
        client.send(Buffer.alloc(1024));
      } catch (err) {
        if (!(err instanceof SocketError)) throw err;
        codes.push(err.code);
      }
    }
    expect(codes.length).toBeGreaterThan(0);
    for (const code of codes) expect(['EPIPE', 'ECONNRESET']).toContain(code);
    expect(codes).toContain('EPIPE');
  });
});

describe('close()', () => {
  it('is idempotent and leaves fileno() at -1', () => {
    const sock = new Socket();
    expect(sock.fileno()).toBeGreaterThanOrEqual(0);
    sock.close();
    expect(sock.fileno()).toBe(-1);
    expect(() => sock.close()).not.toThrow();
    expect(sock.fileno()).toBe(-1);
  });
});

describe('Socket.fromFd', () => {
  it('adopts an open fd, asking the kernel its family and type', () => {
    const [a, b] = socketpair().map(track) as [Socket, Socket];
    // The adopted wrapper owns a's fd from here on; a is left unclosed on purpose.
    opened.splice(opened.indexOf(a), 1);
    const adopted = track(Socket.fromFd(a.fileno()));
    expect(adopted.fileno()).toBe(a.fileno());
    expect(adopted.family).toBe(AF_UNIX);
    expect(adopted.type).toBe(SOCK_STREAM);
    adopted.send('through the adopted fd');
    expect(recvExactly(b, 22).toString()).toBe('through the adopted fd');
    // It is non-blocking too.
    expect(errorOf(() => adopted.recv(1))).toMatchObject({ code: 'EAGAIN' });
  });

  it('reads the family and type of an IPv4 listener', () => {
    const listener = new Socket(AF_INET);
    listener.bind(['127.0.0.1', 0]);
    listener.listen(1);
    const adopted = track(Socket.fromFd(listener.fileno()));
    expect(adopted.family).toBe(AF_INET);
    expect(adopted.type).toBe(SOCK_STREAM);
    expect(adopted.getsockname()).toEqual(listener.getsockname());
  });
});

describe('name resolution', () => {
  it('binds and connects to "localhost" like Python does', () => {
    const listener = track(new Socket(AF_INET));
    listener.bind(['localhost', 0]);
    listener.listen(1);
    const [host, port] = listener.getsockname() as readonly [string, number];
    expect(host).toBe('127.0.0.1');
    const client = track(new Socket(AF_INET));
    expect([0, EINPROGRESS]).toContain(client.connectEx(['localhost', port]));
    const [server] = whenReady(() => listener.accept());
    track(server);
    client.send('resolved');
    expect(recvExactly(server, 8).toString()).toBe('resolved');
  });

  it('binds to all interfaces for an empty host', () => {
    const sock = track(new Socket(AF_INET));
    sock.bind(['', 0]);
    expect((sock.getsockname() as readonly [string, number])[0]).toBe('0.0.0.0');
  });
});
