#!/usr/bin/env node
// asyncore-get: the classic asyncore HTTP client (the http_client example of Python's
// asyncore documentation) as a tool.
//
//   asyncore-get URL [-o FILE] [-i] [-v] [--backend B] [--mode sync|thread] [--timeout S] [--trace]
//
// One Dispatcher connects, sends `GET path HTTP/1.0`, and reads until the server closes.
// The status line and headers are parsed line by line as they arrive; the body is written
// out chunk by chunk, so a large download never sits in memory, and never past the
// Content-Length the server announced; with -i the status line and headers go first, byte for
// byte as they came. Exit status: 0 for a 2xx answer, 1 for any other answer or a failure
// (refused, unknown host, timeout, a body shorter or longer than its Content-Length), 2 for a
// bad command line.
import { Buffer } from 'node:buffer';
import { closeSync, openSync, writeSync } from 'node:fs';

import { errnoName } from '../errors.js';
import {
  AF_INET,
  AF_INET6,
  Dispatcher,
  SOL_SOCKET,
  SO_ERROR,
  type ScheduledCall,
  Socket,
  callLater,
  closeAll,
} from '../index.js';
import { Cli, LOOP_FLAGS, LOOP_USAGE, describeError, escapeControls, formatAddress } from './common.js';

const USAGE = `usage: asyncore-get URL [options]

  URL               an http:// URL (https and other schemes are not supported)
  -o, --output FILE write the body to FILE instead of stdout
  -i, --include     write the status line and the headers too, as they came, before the body
                    (also for an answer that is not 2xx; the exit status is still 1 then)
  -v, --verbose     print the status line and the headers to stderr
  --timeout S       give up after S seconds without any progress (default 30)
${LOOP_USAGE}`;

/** A status line plus headers longer than this is not an HTTP server talking. */
const MAX_HEAD_BYTES = 64 * 1024;
const READ_CHUNK = 65536;

// Explicitly typed, so TypeScript sees that cli.usageError() never returns.
const cli: Cli = new Cli('asyncore-get', USAGE);

function usageError(message: string): never {
  cli.usageError(message);
}

/** Where to connect and what to ask for, from an http:// URL. */
interface Target {
  host: string;
  port: number;
  /** The Host header: the host and, when not 80, the port, as the URL spells them. */
  hostHeader: string;
  path: string;
}

function parseTarget(text: string): Target {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    usageError(`not a URL: ${text}`);
  }
  if (url.protocol !== 'http:') {
    usageError(`only http:// URLs are supported, not ${url.protocol}// (no TLS here)`);
  }
  // WHATWG URL keeps the brackets of an IPv6 literal: the socket wants the bare address.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return {
    host,
    port: url.port === '' ? 80 : Number(url.port),
    hostHeader: url.host,
    path: `${url.pathname || '/'}${url.search}`,
  };
}

/**
 * The status line and headers, parsed a line at a time as bytes arrive. feed() returns
 * null until the blank line that ends the head has been seen, then the bytes after it
 * (the start of the body).
 */
class ResponseHead {
  statusLine = '';
  status = 0;
  reason = '';
  readonly headers: [name: string, value: string][] = [];
  #partial: Buffer = Buffer.alloc(0);
  #size = 0;
  #complete = false;

  constructor(private readonly onLine: (line: string) => void) {}

  get complete(): boolean {
    return this.#complete;
  }

  feed(chunk: Buffer): Buffer | null {
    let data = this.#partial.length > 0 ? Buffer.concat([this.#partial, chunk]) : chunk;
    this.#partial = Buffer.alloc(0);
    for (;;) {
      const newline = data.indexOf(0x0a);
      if (newline < 0) break;
      const end = newline > 0 && data[newline - 1] === 0x0d ? newline - 1 : newline;
      const line = data.subarray(0, end).toString('latin1');
      this.#size += newline + 1;
      data = data.subarray(newline + 1);
      if (this.#takeLine(line)) {
        this.#complete = true;
        return data;
      }
    }
    if (this.#size + data.length > MAX_HEAD_BYTES) {
      throw new Error(`the response head is longer than ${MAX_HEAD_BYTES} bytes`);
    }
    // Copy: the rest of a line must not pin the (possibly large) chunk it came in.
    this.#partial = Buffer.from(data);
    return null;
  }

  /** Content-Length, or null when the server did not say (then EOF ends the body). */
  contentLength(): number | null {
    const header = this.headers.find(([name]) => name.toLowerCase() === 'content-length');
    if (header === undefined) return null;
    const length = Number(header[1]);
    return Number.isSafeInteger(length) && length >= 0 ? length : null;
  }

  /** Returns true at the blank line that ends the head. */
  #takeLine(line: string): boolean {
    if (this.statusLine === '') {
      const match = /^HTTP\/\d+(?:\.\d+)? (\d{3})(?: (.*))?$/.exec(line);
      if (match === null) throw new Error(`not an HTTP status line: ${JSON.stringify(line.slice(0, 80))}`);
      this.statusLine = line;
      this.status = Number(match[1]);
      this.reason = match[2] ?? '';
      this.onLine(line);
      return false;
    }
    if (line === '') return true;
    const colon = line.indexOf(':');
    if (colon > 0) this.headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
    this.onLine(line);
    return false;
  }
}

/**
 * Where the body goes: stdout, or a file that is only created once a 2xx answer arrives (with
 * -i, once the first byte does).
 */
class BodyOutput {
  /** Body bytes written so far (with -i, the head written before them does not count). */
  bytes = 0;
  #fd: number | null = null;

  constructor(private readonly path: string | null) {}

  open(): void {
    if (this.#fd === null) this.#fd = this.path === null ? 1 : openSync(this.path, 'w');
  }

  write(chunk: Uint8Array, isBody = true): void {
    if (this.#fd === null) this.open();
    const fd = this.#fd as number;
    let offset = 0;
    while (offset < chunk.length) {
      try {
        offset += writeSync(fd, chunk, offset);
      } catch (err) {
        // stdout is blocking unless whoever started us made it non-blocking; then wait for
        // it in short naps instead of buffering a body of unknown size.
        if ((err as { code?: unknown }).code !== 'EAGAIN') throw err;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
      }
    }
    if (isBody) this.bytes += chunk.length;
  }

  close(): void {
    if (this.#fd !== null && this.#fd !== 1) closeSync(this.#fd);
    this.#fd = null;
  }
}

type Outcome = { ok: true } | { ok: false; message: string };

/** What the command line asks of the transfer besides the URL. */
interface GetOptions {
  /** -v: the status line and headers to stderr. */
  verbose: boolean;
  /** -i: the raw status line and headers to the output, before the body. */
  include: boolean;
  timeoutSeconds: number;
}

/** The HTTP/1.0 client: connect, send the request, read until EOF. */
class HttpGet extends Dispatcher {
  outcome: Outcome | null = null;
  readonly #target: Target;
  readonly #head: ResponseHead;
  readonly #output: BodyOutput;
  readonly #include: boolean;
  /** With -i, an answer that is not 2xx: written out whole, then reported as a failure. */
  #failure: Outcome | null = null;
  #request: Buffer;
  #idleTimer: ScheduledCall | null = null;

  constructor(target: Target, output: BodyOutput, { verbose, include, timeoutSeconds }: GetOptions) {
    super();
    this.#target = target;
    this.#output = output;
    this.#include = include;
    this.#head = new ResponseHead((line) => {
      // The server chose these bytes: no terminal escapes from it reach the terminal.
      if (verbose) process.stderr.write(`${escapeControls(line)}\n`);
    });
    this.#request = Buffer.from(
      `GET ${target.path} HTTP/1.0\r\nHost: ${target.hostHeader}\r\nUser-Agent: asyncore-get\r\n` +
        'Accept: */*\r\n\r\n',
      'latin1',
    );
    this.createSocket(target.host.includes(':') ? AF_INET6 : AF_INET);
    this.#idleTimer = callLater(timeoutSeconds, () =>
      this.#finish({ ok: false, message: `timed out: no progress for ${timeoutSeconds} s` }),
    );
    this.connect([target.host, target.port]);
  }

  override writable(): boolean {
    return this.#request.length > 0;
  }

  override handleConnect(): void {
    this.#idleTimer?.reset();
  }

  override handleWrite(): void {
    const sent = this.send(this.#request);
    this.#request = this.#request.subarray(sent);
    this.#idleTimer?.reset();
  }

  override handleRead(): void {
    const data = this.recv(READ_CHUNK);
    if (data.length === 0 || this.outcome !== null) return;
    this.#idleTimer?.reset();
    const body = this.#head.complete ? data : this.#head.feed(data);
    // The head's bytes are the front of this chunk: the body (if any) is its tail.
    const headBytes = body === null ? data : data.subarray(0, data.length - body.length);
    if (this.#include && headBytes.length > 0 && body !== data) this.#output.write(headBytes, false);
    if (body === null) return;
    if (body !== data) {
      // The head just ended: anything but a 2xx answer is a failure, and its body unwanted
      // unless -i asked for the whole answer.
      if (this.#head.status < 200 || this.#head.status > 299) {
        const reason = escapeControls(this.#head.reason);
        const failure: Outcome = { ok: false, message: `HTTP ${this.#head.status} ${reason}`.trimEnd() };
        if (!this.#include) {
          this.#finish(failure);
          return;
        }
        this.#failure = failure;
      }
      this.#output.open();
    }
    if (body.length > 0) this.#writeBody(body);
  }

  /**
   * Writes the body, never past Content-Length: a server that sends more is broken or
   * hostile, and what follows is not this body. The transfer stops there with an error.
   */
  #writeBody(body: Buffer): void {
    const expected = this.#head.contentLength();
    const room = expected === null ? body.length : expected - this.#output.bytes;
    if (body.length <= room) {
      this.#output.write(body);
      return;
    }
    if (room > 0) this.#output.write(body.subarray(0, room));
    this.#finish({
      ok: false,
      message: `the body is longer than its Content-Length (${expected} bytes); stopped there`,
    });
  }

  /** The server closed the connection (or never accepted it). */
  override handleClose(): void {
    if (!this.connected) {
      this.#finish({ ok: false, message: this.#connectFailure() });
      return;
    }
    if (!this.#head.complete) {
      this.#finish({ ok: false, message: 'the server closed the connection before a complete response head' });
      return;
    }
    const expected = this.#head.contentLength();
    if (expected !== null && this.#output.bytes !== expected) {
      this.#finish({ ok: false, message: `the body ended after ${this.#output.bytes} of ${expected} bytes` });
      return;
    }
    this.#finish(this.#failure ?? { ok: true });
  }

  override handleError(err: unknown): void {
    const message = this.connected ? describeError(err) : `cannot connect to ${this.#where()}: ${describeError(err)}`;
    this.#finish({ ok: false, message });
  }

  /** Ends the transfer with the first outcome; the loop ends once the map is empty. */
  #finish(outcome: Outcome): void {
    if (this.outcome === null) this.outcome = outcome;
    this.#idleTimer?.cancel();
    this.#idleTimer = null;
    this.close();
    closeAll();
  }

  #connectFailure(): string {
    const sock = this.socket;
    const errno = sock instanceof Socket && !sock.closed ? sock.getsockopt(SOL_SOCKET, SO_ERROR) : 0;
    const reason = errno === 0 ? 'the connection closed' : errnoName(errno);
    return `cannot connect to ${this.#where()}: ${reason}`;
  }

  #where(): string {
    return formatAddress([this.#target.host, this.#target.port]);
  }
}

function main(): void {
  const parsed = cli.parse({
    options: {
      output: { type: 'string', short: 'o' },
      include: { type: 'boolean', short: 'i', default: false },
      timeout: { type: 'string', default: '30' },
      ...LOOP_FLAGS,
    },
    strict: true,
    allowPositionals: true,
  });
  if (parsed === null) return;
  const { values, positionals } = parsed;
  if (positionals.length !== 1) usageError(positionals.length === 0 ? 'a URL is required' : 'only one URL, please');
  const target = parseTarget(positionals[0] as string);
  const { mode, options } = cli.loopFlags(values);
  const timeout = Number(values.timeout);
  if (!Number.isFinite(timeout) || timeout <= 0)
    usageError(`--timeout must be a positive number, not ${values.timeout}`);

  let signalled: NodeJS.Signals | null = null;
  const stop = (signal: NodeJS.Signals): void => {
    signalled = signal;
    closeAll();
  };
  // Before the connect: from then on the peer may see us, and a signal must not kill us.
  cli.catchSignals(mode, stop);

  const output = new BodyOutput(values.output ?? null);
  let client: HttpGet;
  try {
    client = new HttpGet(target, output, { verbose: values.verbose, include: values.include, timeoutSeconds: timeout });
  } catch (err) {
    // A host that does not resolve, or a connect() refused on the spot.
    const where = formatAddress([target.host, target.port]);
    process.stderr.write(`asyncore-get: cannot connect to ${where}: ${describeError(err)}\n`);
    closeAll();
    process.exit(1);
  }

  const report = (): void => {
    output.close();
    const outcome: Outcome = client.outcome ?? {
      ok: false,
      message: signalled === null ? 'stopped' : `interrupted by ${signalled}`,
    };
    if (!outcome.ok) {
      process.stderr.write(`asyncore-get: ${outcome.message}\n`);
      process.exitCode = 1;
    }
  };
  cli.run(mode, options, { onSignal: stop, onDone: report });
}

main();
