// SplicePipe: bytes moved from socket to socket through a kernel pipe (splice(2)), never
// through JavaScript. Over UNIX socketpairs and TCP on loopback: contents intact, EOF,
// EAGAIN on either side, bad arguments and a closed pipe refused, no fd left behind.
import { createHash, randomBytes } from 'node:crypto';

import {
  AF_INET,
  AF_UNIX,
  SOCK_STREAM,
  Socket,
  SocketError,
  SplicePipe,
  availableBackends,
  socketpair,
} from 'asyncore';
import { afterEach, describe, expect, it } from 'vitest';

import { openFds } from './helpers.js';

const opened: { close(): void }[] = [];

function track<T extends { close(): void }>(thing: T): T {
  opened.push(thing);
  return thing;
}

afterEach(() => {
  for (const thing of opened.splice(0)) thing.close();
});

/** A connected TCP pair on 127.0.0.1 (client, server side). */
function tcpPair(): [Socket, Socket] {
  const listener = track(new Socket(AF_INET, SOCK_STREAM));
  listener.bind(['127.0.0.1', 0]);
  listener.listen(1);
  const client = track(new Socket(AF_INET, SOCK_STREAM));
  client.connectEx(listener.getsockname());
  client.setBlocking(true);
  listener.setBlocking(true);
  const [server] = listener.accept();
  track(server);
  client.setBlocking(false);
  server.setBlocking(false);
  return [client, server];
}

function pairs(): { name: string; make: () => [Socket, Socket] }[] {
  return [
    { name: 'UNIX socketpair', make: () => socketpair(AF_UNIX).map(track) as [Socket, Socket] },
    { name: 'TCP loopback', make: tcpPair },
  ];
}

function expectCode(fn: () => unknown, code: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(SocketError);
  expect((caught as SocketError).code).toBe(code);
  expect((caught as SocketError).syscall).toBe('splice');
}

// splice(2) is Linux's, and native/platform.h compiles it in exactly where epoll is: on Linux,
// unless the build forces the portable fallbacks (.ci/fallbacks runs this file against such a
// build). A SplicePipe exists where it is supported and is refused with ENOSYS elsewhere.
describe('SplicePipe.supported', () => {
  it('says whether splice is compiled in, as availableBackends() says for epoll', () => {
    expect(SplicePipe.supported).toBe(availableBackends().includes('epoll'));
    if (process.platform !== 'linux') expect(SplicePipe.supported).toBe(false);
  });

  it('a pipe is made where splice is supported, and refused with ENOSYS where it is not', () => {
    if (SplicePipe.supported) {
      expect(track(new SplicePipe()).closed).toBe(false);
    } else {
      expectCode(() => new SplicePipe(), 'ENOSYS');
    }
  });
});

describe.runIf(SplicePipe.supported)('SplicePipe', () => {
  it('grants at least the capacity asked for, rounded to pages', () => {
    const pipe = track(new SplicePipe(100_000));
    expect(pipe.capacity).toBeGreaterThanOrEqual(100_000);
    expect(pipe.capacity % 4096).toBe(0);
    expect(pipe.pending).toBe(0);
  });

  for (const { name, make } of pairs()) {
    it(`moves 8 MiB from one connection to another intact (${name})`, () => {
      const [writer, source] = make();
      const [sink, reader] = make();
      const pipe = track(new SplicePipe());
      const data = randomBytes(8 * 1024 * 1024);
      const received: Buffer[] = [];
      let written = 0;
      let receivedBytes = 0;
      // A little of everything each round: write what fits, splice in, splice out, read.
      for (let rounds = 0; receivedBytes < data.length && rounds < 100_000; rounds++) {
        if (written < data.length) {
          try {
            written += writer.send(data.subarray(written, written + 65536));
          } catch (err) {
            if ((err as SocketError).code !== 'EAGAIN') throw err;
          }
        }
        if (pipe.pending === 0) {
          try {
            pipe.fill(source);
          } catch (err) {
            if ((err as SocketError).code !== 'EAGAIN') throw err;
          }
        }
        try {
          pipe.drain(sink);
        } catch (err) {
          if ((err as SocketError).code !== 'EAGAIN') throw err;
        }
        try {
          const chunk = reader.recv(65536);
          received.push(chunk);
          receivedBytes += chunk.length;
        } catch (err) {
          if ((err as SocketError).code !== 'EAGAIN') throw err;
        }
      }
      expect(receivedBytes).toBe(data.length);
      const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
      expect(digest(Buffer.concat(received))).toBe(digest(data));
      expect(pipe.pending).toBe(0);
    });

    it(`reports EOF as 0 and an empty source as EAGAIN (${name})`, () => {
      const [writer, source] = make();
      const pipe = track(new SplicePipe());
      expectCode(() => pipe.fill(source), 'EAGAIN');
      writer.send('last words');
      expect(pipe.fill(source)).toBe(10);
      expect(pipe.pending).toBe(10);
      writer.close();
      expect(pipe.fill(source)).toBe(0);
      expect(pipe.pending).toBe(10);
    });
  }

  it('keeps bytes pending when the destination is full, then delivers them in order', () => {
    const [writer, source] = socketpair(AF_UNIX).map(track) as [Socket, Socket];
    const [sink, reader] = socketpair(AF_UNIX).map(track) as [Socket, Socket];
    const pipe = track(new SplicePipe());
    // Fill the destination until it takes nothing more.
    let stuffed = 0;
    for (;;) {
      try {
        stuffed += sink.send(Buffer.alloc(65536, 1));
      } catch (err) {
        expect((err as SocketError).code).toBe('EAGAIN');
        break;
      }
    }
    writer.send('0123456789');
    expect(pipe.fill(source)).toBe(10);
    expectCode(() => pipe.drain(sink), 'EAGAIN');
    expect(pipe.pending).toBe(10);
    // Make room: read the stuffing back, then the spliced bytes arrive after it.
    let drained = 0;
    while (drained < stuffed) drained += reader.recv(65536).length;
    expect(pipe.drain(sink)).toBe(10);
    expect(reader.recv(100).toString()).toBe('0123456789');
  });

  it('drains at most what is pending, and nothing from an empty pipe', () => {
    const [writer, source] = socketpair(AF_UNIX).map(track) as [Socket, Socket];
    const [sink, reader] = socketpair(AF_UNIX).map(track) as [Socket, Socket];
    const pipe = track(new SplicePipe());
    expect(pipe.drain(sink)).toBe(0);
    writer.send('abcdef');
    pipe.fill(source);
    expect(pipe.drain(sink, 2)).toBe(2);
    expect(pipe.drain(sink, 100)).toBe(4);
    expect(reader.recv(100).toString()).toBe('abcdef');
  });

  it('refuses bad arguments with a clear error and loses nothing', () => {
    const [writer, source] = socketpair(AF_UNIX).map(track) as [Socket, Socket];
    const pipe = track(new SplicePipe());
    expect(() => new SplicePipe(0)).toThrow(RangeError);
    expect(() => new SplicePipe(1.5)).toThrow(RangeError);
    expect(() => pipe.fill(source, 0)).toThrow(RangeError);
    expect(() => pipe.drain(source, -1)).toThrow(RangeError);
    writer.send('kept');
    expect(pipe.fill(source)).toBe(4);
    expect(pipe.pending).toBe(4);
  });

  it('fails with EBADF once closed, closes twice harmlessly, and gives its fds back', () => {
    const [, source] = socketpair(AF_UNIX).map(track) as [Socket, Socket];
    const before = openFds();
    const pipes = Array.from({ length: 100 }, () => new SplicePipe());
    expect(openFds()).toBe(before + 200);
    for (const pipe of pipes) pipe.close();
    expect(openFds()).toBe(before);
    const pipe = pipes[0] as SplicePipe;
    pipe.close();
    expect(pipe.closed).toBe(true);
    expect(pipe.pending).toBe(0);
    expectCode(() => pipe.fill(source), 'EBADF');
  });

  it('reports a closed source socket as EBADF from splice', () => {
    const [, source] = socketpair(AF_UNIX).map(track) as [Socket, Socket];
    const pipe = track(new SplicePipe());
    source.close();
    expectCode(() => pipe.fill(source), 'EBADF');
  });
});
