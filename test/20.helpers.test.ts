// CPython's HelperFunctionTests and DispatcherTests (test_asyncore.py), ported: the per-event
// helpers and where exceptions go, closeAll, compactTraceback, toString() and logging.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  AF_INET,
  Dispatcher,
  ExitNow,
  POLLERR,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  POLLPRI,
  Socket,
  SocketError,
  type SocketMap,
  closeAll,
  compactTraceback,
  read,
  readwrite,
  socketMap,
  socketpair,
  write,
} from 'asyncore';
import { afterEach, describe, expect, it, vi } from 'vitest';

import { DIST, run, whenReady } from './helpers.js';

afterEach(() => {
  vi.restoreAllMocks();
  closeAll(socketMap, true);
});

// --- Fakes, as in CPython: dispatchers without a socket whose entry points misbehave ------

/** Every entry point raises ExitNow (CPython's exitingdummy). */
class ExitingDummy extends Dispatcher {
  override handleReadEvent(): void {
    throw new ExitNow();
  }
  override handleWriteEvent(): void {
    throw new ExitNow();
  }
  override handleExptEvent(): void {
    throw new ExitNow();
  }
  override handleClose(): void {
    throw new ExitNow();
  }
}

/** Every entry point raises `error`; records what reached handleError and handleClose. */
class RaisingDummy extends Dispatcher {
  handled: unknown[] = [];
  closes = 0;
  constructor(private readonly error: unknown) {
    super(null, new Map());
  }
  override handleReadEvent(): void {
    throw this.error;
  }
  override handleWriteEvent(): void {
    throw this.error;
  }
  override handleExptEvent(): void {
    throw this.error;
  }
  override handleError(err: unknown): void {
    this.handled.push(err);
  }
  override handleClose(): void {
    this.closes++;
  }
}

/** Records which entry point readwrite() called (CPython's testobj). */
class RecordingDummy extends Dispatcher {
  calls: string[] = [];
  override handleReadEvent(): void {
    this.calls.push('read');
  }
  override handleWriteEvent(): void {
    this.calls.push('write');
  }
  override handleExptEvent(): void {
    this.calls.push('expt');
  }
  override handleClose(): void {
    this.calls.push('closed');
  }
  override handleError(): void {
    this.calls.push('error_handled');
  }
}

function socketError(code: string, errno: number): SocketError {
  return new SocketError(`recv ${code}: test (errno ${errno})`, code, errno, 'recv');
}

// POLLPRI through readwrite() is the public way to reach Python's _exception().
const HELPERS: [string, (obj: Dispatcher) => void][] = [
  ['read', read],
  ['write', write],
  ['exception (readwrite POLLPRI)', (obj) => readwrite(obj, POLLPRI)],
];

describe('read / write / exception (test_readwriteexc)', () => {
  it.each(HELPERS)('%s lets ExitNow through', (_name, helper) => {
    expect(() => helper(new ExitingDummy(null, new Map()))).toThrow(ExitNow);
  });

  it.each(HELPERS)('%s hands any other error to handleError', (_name, helper) => {
    const boom = new Error('boom');
    const dummy = new RaisingDummy(boom);
    helper(dummy);
    expect(dummy.handled).toEqual([boom]);
    expect(dummy.closes).toBe(0);
  });

  it.each(HELPERS)('%s hands a thrown non-Error value to handleError too', (_name, helper) => {
    const dummy = new RaisingDummy('a string');
    helper(dummy);
    expect(dummy.handled).toEqual(['a string']);
  });

  const disconnects: [string, number][] = [
    ['ECONNRESET', 104],
    ['ENOTCONN', 107],
    ['ESHUTDOWN', 108],
    ['ECONNABORTED', 103],
    ['EPIPE', 32],
    ['EBADF', 9],
  ];
  it.each(disconnects)('%s escaping a handler leads to handleClose, not handleError', (code, errno) => {
    for (const [, helper] of HELPERS) {
      const dummy = new RaisingDummy(socketError(code, errno));
      helper(dummy);
      expect(dummy.closes).toBe(1);
      expect(dummy.handled).toEqual([]);
    }
  });

  it('an EAGAIN escaping a handler is a spurious wake-up: ignored', () => {
    for (const [, helper] of HELPERS) {
      const dummy = new RaisingDummy(socketError('EAGAIN', 11));
      helper(dummy);
      expect(dummy.closes).toBe(0);
      expect(dummy.handled).toEqual([]);
    }
  });

  it('an ECONNREFUSED is an ordinary error: handleError', () => {
    const refused = socketError('ECONNREFUSED', 111);
    const dummy = new RaisingDummy(refused);
    read(dummy);
    expect(dummy.handled).toEqual([refused]);
  });
});

describe('readwrite (test_readwrite)', () => {
  const expected: [string, string, number][] = [
    ['POLLIN', 'read', POLLIN],
    ['POLLPRI', 'expt', POLLPRI],
    ['POLLOUT', 'write', POLLOUT],
    ['POLLERR', 'closed', POLLERR],
    ['POLLHUP', 'closed', POLLHUP],
    ['POLLNVAL', 'closed', POLLNVAL],
  ];

  it.each(expected)('%s calls only the "%s" entry point', (_name, entry, flag) => {
    const obj = new RecordingDummy(null, new Map());
    readwrite(obj, flag);
    expect(obj.calls).toEqual([entry]);

    expect(() => readwrite(new ExitingDummy(null, new Map()), flag)).toThrow(ExitNow);

    const crashing = new RaisingDummy(new Error('crash'));
    expect(crashing.handled).toEqual([]);
    // POLLERR/HUP/NVAL call handleClose, which RaisingDummy does not make raise.
    crashing.handleClose = (): void => {
      throw new Error('crash in close');
    };
    readwrite(crashing, flag);
    expect(crashing.handled).toHaveLength(1);
  });

  it('calls read, write, expt, close in that order when all flags are set', () => {
    const obj = new RecordingDummy(null, new Map());
    readwrite(obj, POLLIN | POLLOUT | POLLPRI | POLLHUP);
    expect(obj.calls).toEqual(['read', 'write', 'expt', 'closed']);
  });
});

// --- closeAll ------------------------------------------------------------------------------

/** CPython's dummychannel: close() only records that it ran. */
class DummyChannel extends Dispatcher {
  closed = false;
  override close(): void {
    this.closed = true;
  }
}

describe('closeAll (test_closeall)', () => {
  function fill(map: SocketMap): DummyChannel[] {
    const channels: DummyChannel[] = [];
    for (let i = 0; i < 10; i++) {
      const channel = new DummyChannel(null, map);
      channels.push(channel);
      map.set(1000 + i, channel);
    }
    return channels;
  }

  it('closes every channel of the given map and clears it', () => {
    const map: SocketMap = new Map();
    const channels = fill(map);
    expect(channels.every((c) => !c.closed)).toBe(true);
    closeAll(map);
    expect(map.size).toBe(0);
    expect(channels.every((c) => c.closed)).toBe(true);
  });

  it('uses the global socketMap by default', () => {
    const channels = fill(socketMap);
    closeAll();
    expect(socketMap.size).toBe(0);
    expect(channels.every((c) => c.closed)).toBe(true);
  });

  it('closes the real fds of real dispatchers', () => {
    const map: SocketMap = new Map();
    const [a, b] = socketpair();
    const left = new Dispatcher(a, map);
    const right = new Dispatcher(b, map);
    expect(map.size).toBe(2);
    closeAll(map);
    expect(map.size).toBe(0);
    expect(a.fileno()).toBe(-1);
    expect(b.fileno()).toBe(-1);
    expect(left.connected).toBe(false);
    expect(right.fileno()).toBeNull();
  });

  it('raises what a close() raised unless ignoreAll; EBADF is always ignored; ExitNow never is', () => {
    class FailingClose extends Dispatcher {
      constructor(
        map: SocketMap,
        private readonly error: unknown,
      ) {
        super(null, map);
      }
      override close(): void {
        throw this.error;
      }
    }
    const map: SocketMap = new Map();
    map.set(1, new FailingClose(map, new Error('close failed')));
    expect(() => closeAll(map)).toThrow('close failed');
    closeAll(map, true);
    expect(map.size).toBe(0);

    map.set(1, new FailingClose(map, socketError('EBADF', 9)));
    map.set(2, new DummyChannel(null, map));
    closeAll(map);
    expect(map.size).toBe(0);

    map.set(1, new FailingClose(map, new ExitNow()));
    expect(() => closeAll(map, true)).toThrow(ExitNow);
    map.clear();
  });
});

// --- compactTraceback ----------------------------------------------------------------------

function spamThrower(): never {
  throw new Error("I don't like spam!");
}

describe('compactTraceback (test_compact_traceback)', () => {
  it('names the innermost frame: this file, the throwing function, the throwing line', () => {
    let caught: unknown;
    try {
      spamThrower();
    } catch (err) {
      caught = err;
    }
    const { file, func, line, info } = compactTraceback(caught);
    expect(file).toMatch(/20\.helpers\.test\.ts$/);
    expect(func).toMatch(/spamThrower/);
    const source = readFileSync(new URL(import.meta.url), 'utf8').split('\n');
    expect(source[line - 1]).toMatch(/throw new Error\("I don't like spam!"\)/);
    // Every frame, outermost first, the innermost last, as Python prints it.
    const frames = info.split(' [').length;
    expect(frames).toBeGreaterThan(1);
    expect(info.endsWith(`[${file}|${func}|${line}]`)).toBe(true);
    expect(info).toMatch(/^\[[^|\]]+\|[^|\]]+\|\d+\]( \[[^|\]]+\|[^|\]]+\|\d+\])*$/);
  });

  it('gives "?" fields for something that has no stack', () => {
    expect(compactTraceback('not an error')).toEqual({ file: '?', func: '?', line: 0, info: '[?|?|0]' });
  });
});

// --- toString(), like Python's repr ----------------------------------------------------------

class EchoServer extends Dispatcher {}
class Handler extends Dispatcher {}

/** A port that was free a moment ago (Python's repr shows the address given to bind()). */
function freePort(): number {
  const probe = new Socket(AF_INET);
  probe.bind(['127.0.0.1', 0]);
  const [, port] = probe.getsockname() as readonly [string, number];
  probe.close();
  return port;
}

describe('toString (test_repr)', () => {
  it('shows the class and "at fd None" without a socket', () => {
    expect(String(new Dispatcher(null, new Map()))).toBe('<Dispatcher at fd None>');
  });

  it('shows a listening server like <EchoServer listening 127.0.0.1:8080 at fd 7>', () => {
    const map: SocketMap = new Map();
    const server = new EchoServer(null, map);
    server.createSocket(AF_INET);
    server.setReuseAddr();
    const port = freePort();
    server.bind(['127.0.0.1', port]);
    server.listen(5);
    try {
      expect(String(server)).toBe(`<EchoServer listening 127.0.0.1:${port} at fd ${server.fileno()}>`);
      // eslint-disable-next-line @typescript-eslint/restrict-template-expressions -- template conversion is what is tested
      expect(`${server}`).toBe(server.toString());
    } finally {
      server.close();
    }
  });

  it('shows a connected channel with its peer', () => {
    const listener = new Socket(AF_INET);
    listener.bind(['127.0.0.1', 0]);
    listener.listen(1);
    const client = new Socket(AF_INET);
    client.connectEx(listener.getsockname());
    const [accepted] = whenReady(() => listener.accept());
    const map: SocketMap = new Map();
    const handler = new Handler(accepted, map);
    try {
      const [host, port] = client.getsockname() as readonly [string, number];
      expect(String(handler)).toBe(`<Handler connected ${host}:${port} at fd ${accepted.fileno()}>`);
    } finally {
      closeAll(map);
      client.close();
      listener.close();
    }
  });

  it("shows an unnamed UNIX peer as '' (Python's repr of the empty address)", () => {
    const [a, b] = socketpair();
    const map: SocketMap = new Map();
    const channel = new Dispatcher(a, map);
    try {
      expect(String(channel)).toBe(`<Dispatcher connected '' at fd ${a.fileno()}>`);
    } finally {
      closeAll(map);
      b.close();
    }
  });
});

// --- Logging ---------------------------------------------------------------------------------

/** What was written to a stream while `fn` ran (the writes are swallowed). */
function captured(stream: NodeJS.WriteStream, fn: () => void): string[] {
  const chunks: string[] = [];
  const spy = vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
    chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString());
    return true;
  });
  try {
    fn();
  } finally {
    spy.mockRestore();
  }
  return chunks
    .join('')
    .split('\n')
    .filter((l) => l !== '');
}

describe('logging', () => {
  it('log() writes "log: message" lines to stderr (test_log)', () => {
    const d = new Dispatcher(null, new Map());
    const l1 = 'Lovely spam! Wonderful spam!';
    const l2 = "I don't like spam!";
    const lines = captured(process.stderr, () => {
      d.log(l1);
      d.log(l2);
    });
    expect(lines).toEqual([`log: ${l1}`, `log: ${l2}`]);
  });

  it('logInfo() writes "type: message" lines to stdout (test_log_info)', () => {
    const d = new Dispatcher(null, new Map());
    const l1 = 'Have you got anything without spam?';
    const l2 = "Why can't she have egg bacon spam and sausage?";
    const l3 = "THAT'S got spam in it!";
    const lines = captured(process.stdout, () => {
      d.logInfo(l1, 'EGGS');
      d.logInfo(l2);
      d.logInfo(l3, 'SPAM');
    });
    expect(lines).toEqual([`EGGS: ${l1}`, `info: ${l2}`, `SPAM: ${l3}`]);
  });

  it('logInfo() stays quiet for the types in ignoreLogTypes ({"warning"} by default)', () => {
    const d = new Dispatcher(null, new Map());
    expect([...d.ignoreLogTypes]).toEqual(['warning']);
    // Watch console.log too, so the test means something whichever way logInfo prints.
    const consoleLog = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    const lines = captured(process.stdout, () => {
      d.logInfo('not shown', 'warning');
      d.handleRead();
      d.handleWrite();
    });
    expect(lines).toEqual([]);
    expect(consoleLog).not.toHaveBeenCalled();
  });

  it('warns about unhandled events once ignoreLogTypes is empty (test_unhandled)', () => {
    const d = new Dispatcher(null, new Map());
    d.ignoreLogTypes = new Set();
    const lines = captured(process.stdout, () => {
      d.handleExpt();
      d.handleRead();
      d.handleWrite();
      d.handleConnect();
    });
    expect(lines).toEqual([
      'warning: unhandled incoming priority event',
      'warning: unhandled read event',
      'warning: unhandled write event',
      'warning: unhandled connect event',
    ]);
  });

  it('the default handleError logs a compact traceback as "error" and then calls handleClose', () => {
    class Closing extends Dispatcher {
      closes = 0;
      override handleClose(): void {
        this.closes++;
      }
    }
    const d = new Closing(null, new Map());
    const lines = captured(process.stdout, () => d.handleError(new TypeError('bad thing')));
    expect(d.closes).toBe(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^error: uncaptured exception, closing channel <Closing at fd None> \(TypeError:bad thing \[.+\|.+\|\d+\]/,
    );
  });

  it('the default handleAccepted closes the socket it was given', () => {
    const [a, b] = socketpair();
    const d = new Dispatcher(null, new Map());
    d.handleAccepted(a, '');
    expect(a.fileno()).toBe(-1);
    b.close();
  });

  it('a real process prints logInfo() on its stdout and log() on its stderr', async () => {
    const script = `
      import { Dispatcher } from ${JSON.stringify(join(DIST, 'index.js'))};
      const d = new Dispatcher(null, new Map());
      d.logInfo('to stdout');
      d.logInfo('hidden', 'warning');
      d.log('to stderr');
    `;
    const result = await run(process.execPath, ['--input-type=module', '-e', script], { timeoutMs: 10_000 });
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('info: to stdout\n');
    expect(result.stderr).toBe('log: to stderr\n');
  });
});
