// The socket API Python code reaches for: setsockopt/getsockopt with integers and with raw bytes
// (struct-valued options), recv/send/sendto/recvfrom with MSG_* flags, and the constants they take.
import { spawn } from 'node:child_process';
import { endianness } from 'node:os';

import {
  AF_INET,
  AF_INET6,
  IPPROTO_IPV6,
  IPPROTO_TCP,
  IPV6_V6ONLY,
  MSG_DONTWAIT,
  MSG_OOB,
  MSG_PEEK,
  MSG_WAITALL,
  SOCK_DGRAM,
  SOL_SOCKET,
  SO_BROADCAST,
  SO_KEEPALIVE,
  SO_LINGER,
  SO_RCVBUF,
  SO_RCVLOWAT,
  SO_RCVTIMEO,
  SO_SNDTIMEO,
  Socket,
  SocketError,
  Dispatcher,
  TCP_KEEPCNT,
  TCP_KEEPIDLE,
  TCP_KEEPINTVL,
  loopSync,
  socketpair,
} from 'asyncore';
import { afterEach, describe, expect, it } from 'vitest';

import { callUntyped, whenReady } from './helpers.js';
import { BACKENDS, waitExit } from './helpers.js';

const LITTLE_ENDIAN = endianness() === 'LE';

/** Every socket a test opened, closed afterwards even when the test failed half-way. */
const opened: Socket[] = [];

function track<T extends Socket>(sock: T): T {
  opened.push(sock);
  return sock;
}

afterEach(() => {
  for (const sock of opened.splice(0)) sock.close();
});

/** What `fn` threw (the test fails when it throws nothing). */
function errorOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an exception');
}

/** Two connected TCP sockets on 127.0.0.1 (client, accepted server side). */
function tcpPair(): [Socket, Socket] {
  const listener = track(new Socket(AF_INET));
  listener.bind(['127.0.0.1', 0]);
  listener.listen(1);
  const client = track(new Socket(AF_INET));
  client.connectEx(listener.getsockname());
  const [server] = whenReady(() => listener.accept());
  track(server);
  return [client, server];
}

/** `n` C ints in the host's byte order, as a struct of ints is laid out. */
function cInts(...values: number[]): Buffer {
  const bytes = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => (LITTLE_ENDIAN ? bytes.writeInt32LE(v, 4 * i) : bytes.writeInt32BE(v, 4 * i)));
  return bytes;
}

function readCInt(bytes: Buffer, index: number): number {
  return LITTLE_ENDIAN ? bytes.readInt32LE(4 * index) : bytes.readInt32BE(4 * index);
}

/** A `struct timeval` (two 64-bit longs on LP64 Linux): seconds and microseconds. */
function timeval(seconds: number, micros: number): Buffer {
  const bytes = Buffer.alloc(16);
  if (LITTLE_ENDIAN) {
    bytes.writeBigInt64LE(BigInt(seconds), 0);
    bytes.writeBigInt64LE(BigInt(micros), 8);
  } else {
    bytes.writeBigInt64BE(BigInt(seconds), 0);
    bytes.writeBigInt64BE(BigInt(micros), 8);
  }
  return bytes;
}

describe('the constants', () => {
  it('are the platform numbers, distinct where they share a level', () => {
    const solSocket = { SO_KEEPALIVE, SO_LINGER, SO_BROADCAST, SO_RCVLOWAT, SO_RCVBUF, SO_RCVTIMEO, SO_SNDTIMEO };
    const tcp = { TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT };
    const msg = { MSG_OOB, MSG_PEEK, MSG_DONTWAIT, MSG_WAITALL };
    for (const group of [solSocket, tcp, msg]) {
      for (const [name, value] of Object.entries(group)) expect(Number.isInteger(value), name).toBe(true);
      expect(new Set(Object.values(group)).size).toBe(Object.keys(group).length);
    }
    // MSG_* are single bits, so they combine with |.
    for (const value of Object.values(msg)) expect(value & (value - 1)).toBe(0);
    expect(Number.isInteger(IPPROTO_IPV6) && Number.isInteger(IPV6_V6ONLY)).toBe(true);
  });
});

describe('setsockopt / getsockopt', () => {
  it('SO_LINGER round-trips as the bytes of a struct linger', () => {
    const sock = track(new Socket(AF_INET));
    sock.setsockopt(SOL_SOCKET, SO_LINGER, cInts(1, 7));
    const raw = sock.getsockopt(SOL_SOCKET, SO_LINGER, 8);
    expect(Buffer.isBuffer(raw)).toBe(true);
    expect(raw.length).toBe(8);
    expect([readCInt(raw, 0) !== 0, readCInt(raw, 1)]).toEqual([true, 7]);
    // A larger buffer comes back cut to what the kernel wrote.
    expect(sock.getsockopt(SOL_SOCKET, SO_LINGER, 64)).toEqual(raw);
    sock.setsockopt(SOL_SOCKET, SO_LINGER, cInts(0, 0));
    expect(readCInt(sock.getsockopt(SOL_SOCKET, SO_LINGER, 8), 0)).toBe(0);
  });

  it('SO_RCVTIMEO round-trips as the bytes of a struct timeval', () => {
    const sock = track(new Socket(AF_INET));
    sock.setsockopt(SOL_SOCKET, SO_RCVTIMEO, timeval(2, 500_000));
    expect(sock.getsockopt(SOL_SOCKET, SO_RCVTIMEO, 16)).toEqual(timeval(2, 500_000));
  });

  it('SO_RCVBUF as a number, and as the bytes of that int with buflen', () => {
    const sock = track(new Socket(AF_INET));
    sock.setsockopt(SOL_SOCKET, SO_RCVBUF, 65536);
    const size = sock.getsockopt(SOL_SOCKET, SO_RCVBUF);
    // Linux doubles the value for its bookkeeping (socket(7)); other kernels keep it.
    expect(size).toBe(process.platform === 'linux' ? 131072 : 65536);
    const raw = sock.getsockopt(SOL_SOCKET, SO_RCVBUF, 4);
    expect(raw.length).toBe(4);
    expect(readCInt(raw, 0)).toBe(size);
  });

  it('IPV6_V6ONLY on an AF_INET6 socket round-trips and keeps IPv4 clients out', () => {
    const v6 = track(new Socket(AF_INET6));
    v6.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, 0);
    expect(v6.getsockopt(IPPROTO_IPV6, IPV6_V6ONLY)).toBe(0);
    v6.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, true);
    expect(v6.getsockopt(IPPROTO_IPV6, IPV6_V6ONLY)).toBe(1);
    v6.bind(['::', 0]);
    v6.listen(1);
    const [, port] = v6.getsockname() as [string, number];
    const v4 = track(new Socket(AF_INET));
    v4.setBlocking(true);
    expect(errorOf(() => v4.connect(['127.0.0.1', port]))).toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('the TCP keepalive settings round-trip', () => {
    const sock = track(new Socket(AF_INET));
    sock.setsockopt(SOL_SOCKET, SO_KEEPALIVE, 1);
    sock.setsockopt(IPPROTO_TCP, TCP_KEEPIDLE, 30);
    sock.setsockopt(IPPROTO_TCP, TCP_KEEPINTVL, 5);
    sock.setsockopt(IPPROTO_TCP, TCP_KEEPCNT, 3);
    expect(sock.getsockopt(SOL_SOCKET, SO_KEEPALIVE)).toBe(1);
    expect([
      sock.getsockopt(IPPROTO_TCP, TCP_KEEPIDLE),
      sock.getsockopt(IPPROTO_TCP, TCP_KEEPINTVL),
      sock.getsockopt(IPPROTO_TCP, TCP_KEEPCNT),
    ]).toEqual([30, 5, 3]);
  });

  it('SO_BROADCAST and SO_RCVLOWAT round-trip on the sockets they apply to', () => {
    const udp = track(new Socket(AF_INET, SOCK_DGRAM));
    udp.setsockopt(SOL_SOCKET, SO_BROADCAST, 1);
    expect(udp.getsockopt(SOL_SOCKET, SO_BROADCAST)).toBe(1);
    const tcp = track(new Socket(AF_INET));
    tcp.setsockopt(SOL_SOCKET, SO_RCVLOWAT, 16);
    expect(tcp.getsockopt(SOL_SOCKET, SO_RCVLOWAT)).toBe(16);
  });

  it('bad arguments throw TypeError or RangeError before any system call', () => {
    const sock = track(new Socket(AF_INET));
    const cases: [unknown[], typeof TypeError][] = [
      [[SOL_SOCKET, SO_RCVBUF, 'big'], TypeError],
      [[SOL_SOCKET, SO_RCVBUF, 1.5], TypeError],
      [[SOL_SOCKET, SO_RCVBUF, null], TypeError],
      [[SOL_SOCKET, SO_RCVBUF, [1, 0, 0, 0]], TypeError],
      [[SOL_SOCKET, SO_RCVBUF, 2 ** 31], RangeError],
      [['1', SO_RCVBUF, 1], TypeError],
    ];
    for (const [args, type] of cases) {
      expect(() => callUntyped(sock, 'setsockopt', ...args), JSON.stringify(args)).toThrow(type);
    }
    for (const [buflen, type] of [
      [0, RangeError],
      [1025, RangeError],
      [-4, RangeError],
      [2.5, TypeError],
      ['8', TypeError],
    ] as const) {
      expect(() => callUntyped(sock, 'getsockopt', SOL_SOCKET, SO_LINGER, buflen), String(buflen)).toThrow(type);
    }
  });

  it('an option the kernel does not know is a SocketError; a closed socket is EBADF', () => {
    const sock = track(new Socket(AF_INET));
    const unknown = errorOf(() => sock.getsockopt(SOL_SOCKET, 0x7fff, 4));
    expect(unknown).toBeInstanceOf(SocketError);
    expect(unknown).toMatchObject({ code: 'ENOPROTOOPT', syscall: 'getsockopt' });
    sock.close();
    expect(errorOf(() => sock.setsockopt(SOL_SOCKET, SO_LINGER, cInts(1, 1)))).toMatchObject({ code: 'EBADF' });
    expect(errorOf(() => sock.getsockopt(SOL_SOCKET, SO_LINGER, 8))).toMatchObject({ code: 'EBADF' });
  });
});

describe('MSG_* flags', () => {
  it('MSG_PEEK leaves the data queued for the next recv', () => {
    const [a, b] = socketpair();
    track(a);
    track(b);
    a.send('hello');
    expect(whenReady(() => b.recv(16, MSG_PEEK)).toString()).toBe('hello');
    expect(b.recv(16).toString()).toBe('hello');
    expect(errorOf(() => b.recv(16))).toMatchObject({ code: 'EAGAIN' });
  });

  it('MSG_DONTWAIT makes a blocking socket answer EAGAIN instead of waiting', () => {
    const [a, b] = socketpair();
    track(a);
    track(b);
    b.setBlocking(true);
    expect(errorOf(() => b.recv(16, MSG_DONTWAIT))).toMatchObject({ code: 'EAGAIN', syscall: 'recv' });
    a.send('x');
    expect(b.recv(16, MSG_DONTWAIT).toString()).toBe('x');
  });

  it('a send with flags to a closed peer is EPIPE, never SIGPIPE', () => {
    const [a, b] = socketpair();
    track(a);
    b.close();
    expect(errorOf(() => a.send('x', MSG_DONTWAIT))).toMatchObject({ code: 'EPIPE', syscall: 'send' });
  });

  it('sendto and recvfrom take flags too (a datagram peeked, then received)', () => {
    const receiver = track(new Socket(AF_INET, SOCK_DGRAM));
    receiver.bind(['127.0.0.1', 0]);
    const sender = track(new Socket(AF_INET, SOCK_DGRAM));
    sender.bind(['127.0.0.1', 0]);
    expect(sender.sendto('dgram', receiver.getsockname(), MSG_DONTWAIT)).toBe(5);
    const [peeked, from] = whenReady(() => receiver.recvfrom(64, MSG_PEEK));
    expect([peeked.toString(), from]).toEqual(['dgram', sender.getsockname()]);
    expect(receiver.recvfrom(64)[0].toString()).toBe('dgram');
    expect(() => callUntyped(sender, 'sendto', 'x', receiver.getsockname(), 'flags')).toThrow(TypeError);
    expect(() => callUntyped(receiver, 'recv', 4, 0.5)).toThrow(TypeError);
    expect(() => callUntyped(receiver, 'recvInto', Buffer.alloc(4), 4, 'x')).toThrow(TypeError);
  });

  it('MSG_WAITALL waits for every byte a python3 peer sends in two parts', async () => {
    const listener = track(new Socket(AF_INET));
    listener.bind(['127.0.0.1', 0]);
    listener.listen(1);
    const [, port] = listener.getsockname() as [string, number];
    const peer = spawn('python3', [
      '-c',
      'import socket, sys, time\n' +
        's = socket.create_connection(("127.0.0.1", int(sys.argv[1])))\n' +
        's.sendall(b"abc"); time.sleep(0.2); s.sendall(b"def"); s.close()\n',
      String(port),
    ]);
    try {
      // Blocking calls, bounded by SO_RCVTIMEO (accept honours it too): a missing peer fails, never hangs.
      listener.setBlocking(true);
      listener.setsockopt(SOL_SOCKET, SO_RCVTIMEO, timeval(10, 0));
      const [server] = listener.accept();
      track(server);
      server.setBlocking(true);
      server.setsockopt(SOL_SOCKET, SO_RCVTIMEO, timeval(10, 0));
      server.setsockopt(SOL_SOCKET, SO_SNDTIMEO, timeval(10, 0));
      expect(server.recv(6, MSG_WAITALL).toString()).toBe('abcdef');
      expect(await waitExit(peer)).toBe(0);
    } finally {
      peer.kill();
    }
  });

  it.each(BACKENDS)('MSG_OOB reaches the peer as urgent data: handleExpt() reads it (%s)', (backend) => {
    const [client, server] = tcpPair();
    const map = new Map();
    const seen = { normal: '', urgent: '' };
    class Receiver extends Dispatcher {
      override writable(): boolean {
        return false;
      }
      override handleRead(): void {
        seen.normal += this.recv(64).toString();
      }
      override handleExpt(): void {
        seen.urgent += server.recv(1, MSG_OOB).toString();
      }
    }
    const receiver = new Receiver(server, map);
    client.send('ab');
    expect(client.send('!', MSG_OOB)).toBe(1);
    const deadline = Date.now() + 5000;
    while ((seen.normal !== 'ab' || seen.urgent !== '!') && Date.now() < deadline) {
      loopSync({ map, backend, timeout: 0.1, count: 1 });
    }
    receiver.close();
    expect(seen).toEqual({ normal: 'ab', urgent: '!' });
  });
});
