// FileWrapper and FileDispatcher (CPython's FileWrapperTest), over regular files and FIFOs.
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  FileDispatcher,
  FileWrapper,
  SOL_SOCKET,
  SO_ERROR,
  SO_REUSEADDR,
  SocketError,
  type SocketMap,
  closeAll,
} from 'asyncore';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { BACKENDS, MODES, constructUntyped, errorOf, runLoop, whenReady } from './helpers.js';

const O_NONBLOCK = 0o4000;
const CONTENT = Buffer.from("It's not dead, it's sleeping!");

let counter = 0;
let testFile: string;
let fifoPath: string;
/** fds opened with node:fs during a test; closed afterwards unless the test closed them. */
const fsFds = new Set<number>();
let map: SocketMap;

function openFs(path: string, flags: number): number {
  const fd = openSync(path, flags);
  fsFds.add(fd);
  return fd;
}

function closeFs(fd: number): void {
  fsFds.delete(fd);
  closeSync(fd);
}

/** The read and write ends of a fresh FIFO, both non-blocking. */
function fifo(): { reader: number; writer: number } {
  // Opening the read end first and non-blocking means neither open waits for the other.
  const reader = openFs(fifoPath, constants.O_RDONLY | constants.O_NONBLOCK);
  const writer = openFs(fifoPath, constants.O_WRONLY | constants.O_NONBLOCK);
  return { reader, writer };
}

function statusFlags(fd: number): number {
  const match = /flags:\s+([0-7]+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  return Number.parseInt(match?.[1] ?? 'x', 8);
}

beforeEach(() => {
  counter++;
  const base = join(tmpdir(), `asyncore-file-${process.pid}-${counter}`);
  testFile = `${base}.txt`;
  fifoPath = `${base}.fifo`;
  writeFileSync(testFile, CONTENT);
  execFileSync('mkfifo', [fifoPath]);
  map = new Map();
});

afterEach(() => {
  closeAll(map, true);
  for (const fd of fsFds) closeSync(fd);
  fsFds.clear();
  rmSync(testFile, { force: true });
  rmSync(fifoPath, { force: true });
});

describe('FileWrapper (CPython FileWrapperTest)', () => {
  it('dups the fd and reads through recv() and read() (test_recv)', () => {
    const fd = openFs(testFile, constants.O_RDONLY);
    const w = new FileWrapper(fd);
    closeFs(fd);

    expect(w.fd).not.toBe(fd);
    expect(w.fileno()).toBe(w.fd);
    expect(w.recv(13).toString()).toBe("It's not dead");
    expect(w.read(6).toString()).toBe(", it's");
    w.close();
    expect(errorOf(() => w.read(1))).toMatchObject({ code: 'EBADF' });
  });

  it('writes through write() and send() (test_send)', () => {
    const d1 = 'Come again?';
    const d2 = Buffer.from('I want to buy some cheese.');
    const fd = openFs(testFile, constants.O_WRONLY | constants.O_APPEND);
    const w = new FileWrapper(fd);
    closeFs(fd);

    expect(w.write(d1)).toBe(d1.length);
    expect(w.send(d2)).toBe(d2.length);
    w.close();
    expect(readFileSync(testFile)).toEqual(Buffer.concat([CONTENT, Buffer.from(d1), d2]));
  });

  it('answers getsockopt(SOL_SOCKET, SO_ERROR) with 0, and refuses other options', () => {
    const fd = openFs(testFile, constants.O_RDONLY);
    const w = new FileWrapper(fd);
    try {
      expect(w.getsockopt(SOL_SOCKET, SO_ERROR)).toBe(0);
      expect(() => w.getsockopt(SOL_SOCKET, SO_REUSEADDR)).toThrow();
    } finally {
      w.close();
    }
  });

  it('reports a failed close once, then closing again does nothing (test_close_twice)', () => {
    const fd = openFs(testFile, constants.O_RDONLY);
    const w = new FileWrapper(fd);
    // Close the dup behind the wrapper's back.
    closeSync(w.fd);
    const err = errorOf(() => w.close());
    expect(err).toBeInstanceOf(SocketError);
    expect(err).toMatchObject({ code: 'EBADF', syscall: 'close' });
    expect(w.fd).toBe(-1);
    expect(() => w.close()).not.toThrow();
  });

  it('refuses what is not an fd', () => {
    expect(errorOf(() => constructUntyped(FileWrapper, 'three'))).toBeInstanceOf(TypeError);
    expect(errorOf(() => new FileWrapper(-1))).toBeInstanceOf(TypeError);
    expect(errorOf(() => new FileWrapper(987654))).toMatchObject({ code: 'EBADF', syscall: 'dup' });
  });

  it('over a FIFO: EAGAIN when empty, data in order, an empty Buffer at EOF', () => {
    const { reader, writer } = fifo();
    const r = new FileWrapper(reader);
    const w = new FileWrapper(writer);
    closeFs(reader);
    closeFs(writer);
    try {
      expect(errorOf(() => r.recv(10))).toMatchObject({ code: 'EAGAIN', syscall: 'read' });
      w.send('first ');
      w.write(Buffer.from('second'));
      expect(whenReady(() => r.recv(100)).toString()).toBe('first second');
      w.close();
      expect(r.recv(100).length).toBe(0);
    } finally {
      r.close();
      w.close();
    }
  });
});

describe('FileDispatcher', () => {
  it('accepts an fd, a { fd } (a FileHandle) and a { fileno() }, and dups each', async () => {
    const handle = await open(testFile, 'r');
    try {
      const plain = openFs(testFile, constants.O_RDONLY);
      const fromNumber = new FileDispatcher(plain, map);
      const fromHandle = new FileDispatcher(handle, map);
      const fromFileno = new FileDispatcher({ fileno: () => plain }, map);
      for (const [d, original] of [
        [fromNumber, plain],
        [fromHandle, handle.fd],
        [fromFileno, plain],
      ] as const) {
        expect(d.connected).toBe(true);
        expect(d.socket).toBeInstanceOf(FileWrapper);
        expect(d.fileno()).not.toBe(original);
        expect(map.get(d.fileno() ?? -1)).toBe(d);
      }
      expect(map.size).toBe(3);
    } finally {
      closeAll(map);
      await handle.close();
    }
  });

  it('refuses anything else with TypeError', () => {
    expect(errorOf(() => constructUntyped(FileDispatcher, {}, map))).toBeInstanceOf(TypeError);
    expect(errorOf(() => constructUntyped(FileDispatcher, 'stdin', map))).toBeInstanceOf(TypeError);
    expect(map.size).toBe(0);
  });

  it('makes the fd non-blocking', () => {
    // A blocking write end (a reader exists, so the open does not wait).
    const reader = openFs(fifoPath, constants.O_RDONLY | constants.O_NONBLOCK);
    const writer = openFs(fifoPath, constants.O_WRONLY);
    expect(statusFlags(writer) & O_NONBLOCK).toBe(0);
    const d = new FileDispatcher(writer, map);
    expect(statusFlags(d.fileno() ?? -1) & O_NONBLOCK).toBe(O_NONBLOCK);
    // Filling the pipe ends in EAGAIN instead of blocking this thread forever.
    const chunk = Buffer.alloc(65536);
    let blocked: unknown;
    for (let i = 0; i < 64 && blocked === undefined; i++) {
      try {
        d.socket?.send(chunk);
      } catch (err) {
        blocked = err;
      }
    }
    expect(blocked).toMatchObject({ code: 'EAGAIN' });
    // The reader end only had to exist; afterEach closes it.
    expect(fsFds.has(reader)).toBe(true);
  });

  it.each(MODES)('reads a regular file with usePoll: true, count 2 (test_dispatcher, %s)', async (mode) => {
    const fd = openFs(testFile, constants.O_RDONLY);
    const data: Buffer[] = [];
    class Reader extends FileDispatcher {
      override handleRead(): void {
        data.push(this.recv(29));
      }
    }
    new Reader(fd, map);
    closeFs(fd);
    await runLoop(mode, { timeout: 0.01, usePoll: true, count: 2, map });
    expect(Buffer.concat(data)).toEqual(CONTENT);
  });
});

describe.each(BACKENDS.flatMap((backend) => MODES.map((mode) => ({ backend, mode }))))(
  'FileDispatchers on both ends of a FIFO ($backend, $mode)',
  ({ backend, mode }) => {
    it('carry 256 KiB through the 64 KiB pipe, then EOF closes the reader', async () => {
      const payload = Buffer.alloc(256 * 1024);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 7919) % 251;
      const received: Buffer[] = [];
      let readerClosed = false;

      class PipeReader extends FileDispatcher {
        override writable(): boolean {
          return false;
        }
        override handleRead(): void {
          // One read drains the whole pipe: readwrite() may call handleClose right after.
          const data = this.recv(65536);
          if (data.length > 0) received.push(data);
        }
        override handleClose(): void {
          readerClosed = true;
          this.close();
        }
      }

      class PipeWriter extends FileDispatcher {
        rest = payload;
        override readable(): boolean {
          return false;
        }
        override handleWrite(): void {
          const sent = this.send(this.rest.subarray(0, 16384));
          this.rest = this.rest.subarray(sent);
          if (this.rest.length === 0) this.close();
        }
        override handleClose(): void {
          this.close();
        }
      }

      const { reader, writer } = fifo();
      new PipeReader(reader, map);
      new PipeWriter(writer, map);
      // The dispatchers hold dups: closing the originals lets EOF through at the end.
      closeFs(reader);
      closeFs(writer);

      for (let round = 0; round < 400 && map.size > 0; round++) {
        await runLoop(mode, { backend, map, timeout: 0.5, count: 1 });
      }
      expect(map.size).toBe(0);
      expect(readerClosed).toBe(true);
      expect(Buffer.concat(received).equals(payload)).toBe(true);
    });
  },
);
