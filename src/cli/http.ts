#!/usr/bin/env node
// asyncore-http: a small HTTP/1.1 file server on AsyncChat, the classic use of asynchat.
//
//   asyncore-http [--host 127.0.0.1] [--port 8000] [--root DIR] [--backend auto] [--mode sync] [--quiet]
//                 [--header-timeout 20] [--idle-timeout 60] [--max-connections N] [--trace [-v]] [--workers 1]
//
// Each connection is an HttpChannel. It frames requests itself (AsyncChat's terminator is
// null): one scan over each read finds the blank line that ends a head, CRLF or bare-LF line
// ends alike, and the head is parsed in one go; a body announced by Content-Length is counted
// off. Replies go out through push(): the hello page and the error pages whole from a cache
// (FixedReplies, rebuilt when the Date header changes), and files are streamed by a
// FileProducer, 64 KiB per more(), never read whole.
// Without --root it serves a hello page at /. It prints "listening on HOST:PORT ..." once it
// listens and stops cleanly on SIGINT or SIGTERM.
//
// Built for hostile peers: AsyncChat's output bound stops a client that pipelines requests
// and never reads (its answers wait, its requests are not parsed, its files are not opened;
// the channel's parser pauses with it);
// a head must be complete within --header-timeout of its first byte; a connection that moves
// nothing for --idle-timeout is closed; connections past --max-connections get a 503; a
// failed accept() (out of fds) is logged and the listener keeps listening.
import { Buffer } from 'node:buffer';
import { closeSync, openSync, readFileSync, readSync, realpathSync, statSync } from 'node:fs';
import { extname, join, sep } from 'node:path';
import { performance } from 'node:perf_hooks';

import {
  type Address,
  AsyncChat,
  Dispatcher,
  IPPROTO_TCP,
  type Producer,
  type ScheduledCall,
  Socket,
  TCP_NODELAY,
  callLater,
  inWorkerPool,
} from '../index.js';
import {
  Cli,
  LOOP_FLAGS,
  LOOP_USAGE,
  boundPort,
  describeError,
  escapeControls,
  formatAddress,
  listenTcp,
  listeningAddress,
  traceToStderr,
} from './common.js';
import { type PoolData, WORKERS_FLAG, parseWorkers, poolWorker, runPoolWorker, servePool } from './pool.js';

const USAGE = `usage: asyncore-http [options]

  --host HOST       address to listen on (default 127.0.0.1)
  --port PORT       port to listen on; 0 picks a free one (default 8000)
  --root DIR        serve the files under DIR (default: a hello page at /)
  --header-timeout S
                    close a connection whose request head is not complete S seconds
                    after its first byte (default 20)
  --idle-timeout S  close a connection that moves no byte for S seconds outside a request
                    head: between keep-alive requests, or a reader that stopped (default 60)
  --max-connections N
                    connections served at once; more get a short 503 and are closed
                    (default: from the open-file limit, (ulimit -n - 32) / 2)
  --quiet           no access log (one stderr line per request otherwise)
  -v, --verbose     with --trace, name each fd's dispatcher
  --workers N       run N loops in N worker threads, each with its own listener on the
                    port (SO_REUSEPORT) (default 1)
${LOOP_USAGE}`;

// Explicitly typed, so TypeScript sees that cli.usageError() and cli.fail() never return.
const cli: Cli = new Cli('asyncore-http', USAGE);

const MAX_HEAD = 64 * 1024;
const MAX_BODY = 1024 * 1024;
const FILE_CHUNK = 64 * 1024;
const EMPTY = Buffer.alloc(0);

const REASONS: Record<number, string> = {
  200: 'OK',
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Content Too Large',
  501: 'Not Implemented',
};

/**
 * "Now" in milliseconds (performance.now()), read at most once per loop iteration: the first
 * reader of an iteration reads the clock and schedules a callLater(0), which the loop runs
 * right after that iteration's handlers and which makes the next reader read it again. The
 * timeouts need nothing finer, and a request costs no clock reads of its own. `wall` is
 * Date.now() of the same moment, for the Date header.
 */
class IterationClock {
  #now = 0;
  #wall = 0;
  #fresh = false;
  #expiry: ScheduledCall | null = null;

  get now(): number {
    if (!this.#fresh) this.#read();
    return this.#now;
  }

  get wall(): number {
    if (!this.#fresh) this.#read();
    return this.#wall;
  }

  #read(): void {
    this.#now = performance.now();
    this.#wall = Date.now();
    this.#fresh = true;
    // A call that has run is scheduled again by reset(): no allocation per iteration.
    if (this.#expiry === null) this.#expiry = callLater(0, () => (this.#fresh = false));
    else this.#expiry.reset();
  }
}

const clock = new IterationClock();

// The Date header changes once a second: format it once a second, as node:http does.
let dateSecond = -1;
let dateText = '';

function httpDate(): string {
  const now = clock.wall;
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.xml': 'application/xml',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.ico': 'image/x-icon',
  '.pdf': 'application/pdf',
  '.wasm': 'application/wasm',
};

const HELLO_PAGE = Buffer.from(
  '<!doctype html>\n<title>asyncore-http</title>\n' +
    '<h1>Hello from asyncore-http</h1>\n' +
    '<p>An HTTP/1.1 server on AsyncChat. Start it with --root DIR to serve files.</p>\n',
);

/** The header fields of a reply, besides Date and Server. */
interface ReplyFields {
  keepAlive: boolean;
  length: number;
  type: string;
  extra?: Readonly<Record<string, string>>;
}

/** The status line and header fields of a reply, ending with the blank line. */
function replyHead(status: number, fields: ReplyFields): string {
  let head =
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Unknown'}\r\nDate: ${httpDate()}\r\nServer: asyncore-http\r\n` +
    `Content-Type: ${fields.type}\r\nContent-Length: ${fields.length}\r\n` +
    `Connection: ${fields.keepAlive ? 'keep-alive' : 'close'}\r\n`;
  for (const [name, value] of Object.entries(fields.extra ?? {})) head += `${name}: ${value}\r\n`;
  return `${head}\r\n`;
}

/** The body of a reply that is not a file: the hello page, or a line naming the status. */
function fixedBody(status: number): Buffer {
  return status === 200 ? HELLO_PAGE : Buffer.from(`${status} ${REASONS[status] ?? 'Unknown'}\n`);
}

/**
 * The replies that are not files (the hello page, the error pages) repeat byte for byte
 * until the Date header changes: each variant (status, Connection, HEAD or not) is built
 * once a second, head and body in one Buffer, instead of once per request.
 */
class FixedReplies {
  #date = '';
  readonly #replies = new Map<number, Buffer>();

  get(status: number, keepAlive: boolean, headOnly: boolean): Buffer {
    const date = httpDate();
    if (date !== this.#date) {
      this.#replies.clear();
      this.#date = date;
    }
    const key = status * 4 + (keepAlive ? 2 : 0) + (headOnly ? 1 : 0);
    let reply = this.#replies.get(key);
    if (reply === undefined) {
      const body = fixedBody(status);
      const head = replyHead(status, {
        keepAlive,
        length: body.length,
        type: status === 200 ? 'text/html; charset=utf-8' : 'text/plain; charset=utf-8',
        extra: status === 405 ? { Allow: 'GET, HEAD' } : undefined,
      });
      reply = Buffer.concat(headOnly ? [Buffer.from(head, 'latin1')] : [Buffer.from(head, 'latin1'), body]);
      this.#replies.set(key, reply);
    }
    return reply;
  }
}

const fixedReplies = new FixedReplies();

interface Request {
  method: string;
  target: string;
  version: '1.0' | '1.1';
  headers: Map<string, string>;
}

const DIGITS = /^\d+$/;
const CONNECTION_CLOSE = /\bclose\b/i;
const CONNECTION_KEEP_ALIVE = /\bkeep-alive\b/i;
/** Header lines per request at most, as Python's http.client (_MAXHEADERS). */
const MAX_HEADER_LINES = 100;

// The head is parsed by hand, character codes compared in one pass per line. It accepts
// exactly the lines the regular expressions /^(token) (\S+) HTTP\/1\.([01])$/ (request line)
// and /^([^:\s]+):[ \t]*([^\r\n]*)$/ (header line) match, without their cost: a match array
// and its strings per line.

/** The characters of a method: RFC 9110's tchar. */
const TOKEN_CHARS = new Uint8Array(128);
for (const char of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  TOKEN_CHARS[char.charCodeAt(0)] = 1;
}

/** White space as a regular expression's \s has it, as far as Latin-1 goes. */
function isSpace(code: number): boolean {
  return code === 0x20 || (code >= 0x09 && code <= 0x0d) || code === 0xa0;
}

/** A blank: what is skipped before a header value and cut off after it. */
function isBlank(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/** Where the line of the head that ends with the LF at `end` stops: before that LF, or its CR. */
function lineStop(head: string, start: number, end: number): number {
  return end > start && head.charCodeAt(end - 1) === 0x0d ? end - 1 : end;
}

/** `METHOD SP target SP HTTP/1.x`: the method a token, the target without white space; or null. */
function parseRequestLine(line: string): Request | null {
  const length = line.length;
  const versionAt = length - 9; // ' HTTP/1.x'
  if (versionAt < 3 || !line.startsWith(' HTTP/1.', versionAt)) return null;
  const minor = line.charCodeAt(length - 1);
  if (minor !== 0x30 && minor !== 0x31) return null;
  const space = line.indexOf(' ');
  if (space < 1 || space + 1 >= versionAt) return null;
  for (let i = 0; i < space; i++) {
    const code = line.charCodeAt(i);
    if (code >= 128 || TOKEN_CHARS[code] !== 1) return null;
  }
  for (let i = space + 1; i < versionAt; i++) {
    if (isSpace(line.charCodeAt(i))) return null;
  }
  return {
    method: line.slice(0, space),
    target: line.slice(space + 1, versionAt),
    version: minor === 0x30 ? '1.0' : '1.1',
    headers: new Map(),
  };
}

/**
 * The request line and header fields of a head (its lines, each ending in LF or CRLF, up to
 * the blank line that ends it), or why they are malformed. A field is `name:value`: the name
 * without white space, blanks around the value dropped, no CR in it.
 */
function parseHead(head: string): Request | string {
  // Lines are read by index: only the request line, header names and values become strings.
  let end = head.indexOf('\n');
  if (end < 0) end = head.length;
  const requestLine = head.slice(0, lineStop(head, 0, end));
  const request = parseRequestLine(requestLine);
  if (request === null) return `malformed request line ${JSON.stringify(requestLine.slice(0, 100))}`;
  const headers = request.headers;
  for (let start = end + 1; start < head.length; start = end + 1) {
    end = head.indexOf('\n', start);
    if (end < 0) end = head.length;
    const stop = lineStop(head, start, end);
    if (stop === start) break; // the blank line that ends the head
    const colon = head.indexOf(':', start);
    let valid = colon > start && colon < stop;
    for (let i = start; valid && i < colon; i++) valid = !isSpace(head.charCodeAt(i));
    let valueStart = colon + 1;
    while (valueStart < stop && isBlank(head.charCodeAt(valueStart))) valueStart++;
    let valueEnd = stop;
    while (valueEnd > valueStart && isBlank(head.charCodeAt(valueEnd - 1))) valueEnd--;
    const value = valid ? head.slice(valueStart, valueEnd) : '';
    // A CR inside a line is refused. Only the value can hold one (the name refuses white space,
    // and only blanks surround the value), so the search stays within the line; a search of
    // the head from the value on ran to the head's end on every line of a bare-LF head.
    if (!valid || value.includes('\r')) {
      return `malformed header line ${JSON.stringify(head.slice(start, Math.min(stop, start + 100)))}`;
    }
    const name = head.slice(start, colon).toLowerCase();
    const previous = headers.get(name);
    headers.set(name, previous === undefined ? value : `${previous}, ${value}`);
  }
  return request;
}

function wantsKeepAlive(request: Request): boolean {
  const connection = request.headers.get('connection');
  if (connection === undefined) return request.version === '1.1';
  return request.version === '1.1' ? !CONNECTION_CLOSE.test(connection) : CONNECTION_KEEP_ALIVE.test(connection);
}

/**
 * Streams `size` bytes of a file, FILE_CHUNK at a time. The file is opened on the first
 * more(), when the reply reaches the front of the channel's queue, so replies queued behind
 * it hold no fd; AsyncChat calls close() when it is done, fails, or the channel closes.
 */
class FileProducer implements Producer {
  #fd: number | null = null;
  #left: number;

  constructor(
    readonly path: string,
    size: number,
  ) {
    this.#left = size;
  }

  more(): Uint8Array {
    if (this.#left === 0) return new Uint8Array(0);
    this.#fd ??= openSync(this.path, 'r');
    const chunk = Buffer.allocUnsafe(Math.min(FILE_CHUNK, this.#left));
    const got = readSync(this.#fd, chunk, 0, chunk.length, null);
    // Content-Length is already on its way: a file that shrank can only end the connection.
    if (got === 0) throw new Error(`file shrank while being sent (${this.#left} bytes missing)`);
    this.#left -= got;
    return chunk.subarray(0, got);
  }

  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }
}

/** A regular file under root and its size, or null. Nothing outside root is ever served. */
function fileFor(root: string, target: string): { path: string; size: number } | null {
  const path = target.split(/[?#]/, 1)[0] ?? '';
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return null;
  }
  if (!decoded.startsWith('/') || decoded.includes('\0')) return null;
  try {
    // realpath resolves '..' and symlinks alike; then the prefix check decides.
    let real = realpathSync(join(root, decoded));
    if (statSync(real).isDirectory()) real = realpathSync(join(real, 'index.html'));
    const inside = real === root || real.startsWith(root.endsWith(sep) ? root : root + sep);
    if (!inside) return null;
    const stat = statSync(real);
    return stat.isFile() ? { path: real, size: stat.size } : null;
  } catch {
    return null; // it does not exist (or vanished meanwhile)
  }
}

/** What every connection of one server shares. */
interface ServerSettings {
  readonly root: string | null;
  readonly logRequests: boolean;
  /** Seconds a request head may take from its first byte to its blank line. */
  readonly headerTimeout: number;
  /** Seconds a connection may go without a byte read or sent, outside a request head. */
  readonly idleTimeout: number;
}

/**
 * One connection. AsyncChat's terminator is null (every read is data): the channel frames
 * requests itself, with one scan over the bytes that finds the blank line ending a head (CRLF
 * or bare LF line ends, mixed as they come, as Python's http.server and nginx accept them),
 * then parses the head in one go; a body announced by Content-Length is counted off and
 * ignored. As AsyncChat does for its own framing, parsing stops while the output is over its
 * bound (readable() is false) and the rest of the input waits, so a peer that pipelines and
 * never reads is not answered beyond that bound.
 */
class HttpChannel extends AsyncChat {
  /** The request whose body is being read (and thrown away), if any. */
  #request: Request | null = null;
  /** Bytes of that body still to come. */
  #bodyLeft = 0;
  /** The earlier reads of the head being read (as Latin-1), when it spans reads. */
  #headSoFar = '';
  /** Bytes of the head being read so far, stray empty lines before it included. */
  #headSize = 0;
  /** Non-empty lines the head being read has so far (the request line included). */
  #headLines = 0;
  /** Bytes of the current line of the head so far, and the last of them (in earlier reads). */
  #lineLength = 0;
  #lastByte = 0;
  /** Input not parsed yet because the output is over its bound. */
  #waiting: Buffer = EMPTY;
  /** After an error or "Connection: close": input is ignored until the channel closes. */
  #finished = false;
  /** When the head being read began (clock.now); null outside a head. */
  #headStartedAt: number | null = null;
  /** When a byte was last read or sent outside a head. */
  #lastProgress = clock.now;
  /**
   * One timer per connection, checked lazily: progress only moves #lastProgress, and the
   * timer, when it runs, closes the connection or arms itself for the deadline as it is then.
   * It is never armed further ahead than headerTimeout, so a head that starts later always has
   * its deadline after the timer's: requests cost no timer operations at all.
   */
  #timer: ScheduledCall;

  constructor(
    sock: Socket,
    readonly settings: ServerSettings,
    readonly peer: string,
    readonly onClose: () => void,
  ) {
    super(sock);
    this.setTerminator(null);
    this.#timer = callLater(Math.min(settings.headerTimeout, settings.idleTimeout), () => this.#checkTimeouts());
  }

  override handleRead(): void {
    super.handleRead();
    // Bytes moved: outside a head, the idle time starts again.
    if (this.#headStartedAt === null) this.#lastProgress = clock.now;
  }

  override handleWrite(): void {
    super.handleWrite();
    if (this.#headStartedAt === null) this.#lastProgress = clock.now;
    // The output went back under its bound: parse what waited for it.
    if (this.#waiting.length > 0 && this.readable()) {
      const waiting = this.#waiting;
      this.#waiting = EMPTY;
      this.#parse(waiting);
    }
  }

  #checkTimeouts(): void {
    if (this.fileno() === null) return;
    const { headerTimeout, idleTimeout, logRequests } = this.settings;
    const now = performance.now();
    const inHead = this.#headStartedAt !== null;
    const deadline = inHead
      ? (this.#headStartedAt ?? now) + headerTimeout * 1000
      : this.#lastProgress + idleTimeout * 1000;
    if (now >= deadline) {
      if (logRequests) process.stderr.write(`${this.peer} ${inHead ? 'header' : 'idle'} timeout, closing\n`);
      this.close();
      return;
    }
    const delay = Math.min(deadline - now, headerTimeout * 1000) / 1000;
    this.#timer = callLater(delay, () => this.#checkTimeouts());
  }

  override collectIncomingData(data: Buffer): void {
    if (this.#finished) return;
    if (this.#waiting.length > 0) {
      // Not expected (no read while the output is over its bound), but order is kept.
      data = Buffer.concat([this.#waiting, data]);
      this.#waiting = EMPTY;
    }
    this.#parse(data);
  }

  /** Frames and answers the requests in data, until it is used up or the output is full. */
  #parse(data: Buffer): void {
    let at = 0;
    let text: string | undefined;
    while (at < data.length) {
      if (this.#finished) return;
      if (!this.readable()) {
        // The output is over its bound (or the channel closed): the rest waits.
        this.#waiting = data.subarray(at);
        return;
      }
      if (this.#request !== null) {
        // A body is only read to stay in step with the stream: no method served here uses one.
        const taken = Math.min(this.#bodyLeft, data.length - at);
        at += taken;
        this.#bodyLeft -= taken;
        if (this.#bodyLeft === 0) {
          const request = this.#request;
          this.#request = null;
          this.#answer(request);
        }
      } else {
        // Heads are scanned as text: one conversion per read, whatever number of heads it holds.
        text ??= data.toString('latin1');
        at = this.#scanHead(text, at);
      }
    }
  }

  /**
   * Scans text (a read, as Latin-1) from `at` for the blank line that ends the head being
   * read; returns where the scan stopped (after the head, or the end of text). Empty lines
   * before a request line are dropped (RFC 9112, 2.2); the limits are checked as the lines
   * come. Lines are found with indexOf, not byte by byte: that was a fifth of a request's cost.
   */
  #scanHead(text: string, at: number): number {
    this.#headStartedAt ??= clock.now;
    // Where the head proper starts in text, and where the current line does.
    let start = at;
    let lineStart = at;
    // What earlier reads hold of the current line: its length and last character.
    let carriedLength = this.#lineLength;
    let carriedLast = this.#lastByte;
    let lines = this.#headLines;
    for (let end = text.indexOf('\n', at); end >= 0; end = text.indexOf('\n', lineStart)) {
      const length = carriedLength + end - lineStart;
      const last = end > lineStart ? text.charCodeAt(end - 1) : carriedLast;
      const empty = length === 0 || (length === 1 && last === 0x0d);
      carriedLength = 0;
      carriedLast = 0x0a;
      lineStart = end + 1;
      if (!empty) {
        // The request line and up to MAX_HEADER_LINES header lines.
        if (++lines > MAX_HEADER_LINES + 1) {
          this.#fail(400, `more than ${MAX_HEADER_LINES} header lines`);
          return text.length;
        }
      } else if (lines === 0) {
        // A stray empty line: the head proper starts after it.
        this.#headSize += end + 1 - start;
        this.#headSoFar = '';
        start = end + 1;
      } else {
        if (this.#headSize + (end + 1 - start) > MAX_HEAD) {
          this.#fail(413, 'the request head is over 64 KiB');
          return text.length;
        }
        const head = this.#headSoFar + text.slice(start, end + 1);
        this.#headSoFar = '';
        this.#headSize = 0;
        this.#headLines = 0;
        this.#lineLength = 0;
        this.#lastByte = 0;
        this.#headStartedAt = null;
        this.#lastProgress = clock.now;
        this.#headEnded(head);
        return end + 1;
      }
    }
    this.#headSize += text.length - start;
    if (this.#headSize > MAX_HEAD) {
      this.#fail(413, 'the request head is over 64 KiB');
      return text.length;
    }
    if (start < text.length) this.#headSoFar += text.slice(start);
    this.#lineLength = carriedLength + text.length - lineStart;
    this.#lastByte = text.length > lineStart ? text.charCodeAt(text.length - 1) : carriedLast;
    this.#headLines = lines;
    return text.length;
  }

  /** A complete head (its lines with their line ends, up to its blank line): answer it. */
  #headEnded(head: string): void {
    const request = parseHead(head);
    if (typeof request === 'string') return this.#fail(400, request);
    if (request.headers.has('transfer-encoding')) return this.#fail(501, 'chunked request bodies are not supported');
    const length = request.headers.get('content-length');
    if (length === undefined) return this.#answer(request);
    if (!DIGITS.test(length)) return this.#fail(400, `bad Content-Length ${JSON.stringify(length)}`);
    const size = Number(length);
    if (size > MAX_BODY) return this.#fail(413, `the body is over ${MAX_BODY} bytes`);
    if (size > 0) {
      this.#request = request;
      this.#bodyLeft = size;
    } else {
      this.#answer(request);
    }
  }

  #answer(request: Request): void {
    const keepAlive = wantsKeepAlive(request);
    const headOnly = request.method === 'HEAD';
    if (request.method !== 'GET' && !headOnly) {
      this.#replyFixed(request, 405, keepAlive, headOnly);
    } else if (this.settings.root === null) {
      const target = request.target;
      this.#replyFixed(request, target === '/' || target.startsWith('/?') ? 200 : 404, keepAlive, headOnly);
    } else {
      const file = fileFor(this.settings.root, request.target);
      if (file === null) {
        this.#replyFixed(request, 404, keepAlive, headOnly);
      } else {
        const type = CONTENT_TYPES[extname(file.path).toLowerCase()] ?? 'application/octet-stream';
        this.push(Buffer.from(replyHead(200, { keepAlive, length: file.size, type }), 'latin1'));
        this.#log(request, 200, file.size);
        // Opened when its turn comes (see FileProducer): a queue of replies holds no fds.
        if (!headOnly) this.pushWithProducer(new FileProducer(file.path, file.size));
      }
    }
    if (!keepAlive) this.#finish();
  }

  /** A reply that is not a file: head and body in one push, so one send() and one TCP segment. */
  #replyFixed(request: Request | null, status: number, keepAlive: boolean, headOnly: boolean): void {
    this.push(fixedReplies.get(status, keepAlive, headOnly));
    // Checked here too: fixedBody() builds a Buffer only the log needs.
    if (this.settings.logRequests) this.#log(request, status, fixedBody(status).length);
  }

  /** The access log: one stderr line per reply, unless --quiet; control characters escaped. */
  #log(request: Request | null, status: number, length: number): void {
    if (!this.settings.logRequests) return;
    const line = request === null ? '-' : `${request.method} ${request.target} HTTP/${request.version}`;
    // The request target is the client's text: escaped, it cannot drive the terminal.
    process.stderr.write(`${this.peer} "${escapeControls(line.slice(0, 200))}" ${status} ${length}\n`);
  }

  /** An error reply, then the connection closes: after a bad request the stream cannot be trusted. */
  #fail(status: number, why: string): void {
    if (this.settings.logRequests) process.stderr.write(`${this.peer} ${escapeControls(why)}\n`);
    this.#replyFixed(null, status, false, false);
    this.#finish();
  }

  /** No more requests on this connection: close it once the replies are sent. */
  #finish(): void {
    this.#finished = true;
    this.#headSoFar = '';
    this.#waiting = EMPTY;
    this.#headStartedAt = null;
    this.#lastProgress = clock.now;
    this.closeWhenDone();
  }

  /** A failure while answering (a file that vanished or shrank): log it and close. */
  override handleError(err: unknown): void {
    if (this.settings.logRequests) {
      process.stderr.write(`${this.peer} ${escapeControls(err instanceof Error ? err.message : String(err))}\n`);
    }
    this.close();
  }

  override close(): void {
    const wasOpen = this.fileno() !== null;
    this.#timer.cancel();
    try {
      // AsyncChat closes the producers still queued, and their files with them.
      super.close();
    } finally {
      if (wasOpen) this.onClose();
    }
  }
}

/** The reply to a connection over --max-connections, sent once without waiting. */
const BUSY_BODY = '503 Service Unavailable\n';
const BUSY_REPLY = Buffer.from(
  'HTTP/1.1 503 Service Unavailable\r\nServer: asyncore-http\r\nContent-Type: text/plain; charset=utf-8\r\n' +
    `Content-Length: ${BUSY_BODY.length}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n${BUSY_BODY}`,
  'latin1',
);

class HttpServer extends Dispatcher {
  /** Connections open now. */
  connections = 0;
  /** Called for every accepted connection (a pool worker counts them). */
  onAccepted: (() => void) | null = null;

  constructor(
    host: string,
    port: number,
    readonly settings: ServerSettings,
    readonly maxConnections: number,
    reusePort = false,
  ) {
    super();
    listenTcp(this, host, port, reusePort);
  }

  override handleAccepted(sock: Socket, addr: Address): void {
    const peer = formatAddress(addr);
    if (this.connections >= this.maxConnections) {
      this.#refuse(sock, peer);
      return;
    }
    let channel: HttpChannel;
    try {
      sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
      channel = new HttpChannel(sock, this.settings, peer, () => this.connections--);
    } catch (err) {
      // Reset before we got to it: nothing to serve.
      sock.close();
      if (this.settings.logRequests) process.stderr.write(`${peer} ${describeError(err)}\n`);
      return;
    }
    this.connections++;
    if (!channel.connected) channel.close();
    this.onAccepted?.();
  }

  /** Over the cap: a short 503, written once without waiting, and the connection closed. */
  #refuse(sock: Socket, peer: string): void {
    if (this.settings.logRequests) {
      process.stderr.write(`${peer} refused: ${this.connections} connections open (--max-connections)\n`);
    }
    try {
      sock.setBlocking(false);
      // What the client already sent is read first, so the close does not turn into a reset
      // that could destroy the 503 before the client reads it.
      sock.recv(65536);
    } catch {
      // Nothing sent yet, or the peer is gone: either way, answer and close.
    }
    try {
      sock.send(BUSY_REPLY);
    } catch {
      // The peer is gone or its buffer is full: the close says it all.
    }
    sock.close();
  }

  /** A failed accept() (EMFILE, ENFILE, ...) must not close the listener: log, and keep listening. */
  override handleError(err: unknown): void {
    process.stderr.write(`asyncore-http: accept: ${describeError(err)}\n`);
  }
}

/**
 * The soft limit on open fds, from /proc/self/limits (Node has no getrlimit); null where
 * that file does not exist or says "unlimited".
 */
function openFileLimit(): number | null {
  try {
    const match = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'latin1'));
    return match === null ? null : Number(match[1]);
  } catch {
    return null;
  }
}

/**
 * The default --max-connections: each connection may hold two fds (its socket and the file
 * it is sending), and the process keeps some 32 for itself (Node's own, the listener, the
 * loop). 1024 is assumed when the limit is unknown.
 */
function defaultMaxConnections(): number {
  const limit = openFileLimit() ?? 1024;
  return Math.max(1, Math.floor((limit - 32) / 2));
}

function positiveSeconds(text: string, flag: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value <= 0) {
    cli.usageError(`${flag} must be a positive number of seconds, not ${text}`);
  }
  return value;
}

interface HttpPoolData extends PoolData {
  settings: ServerSettings;
  maxConnections: number;
  trace: boolean;
  verbose: boolean;
}

/** One worker of --workers N: the same server on the shared port, with its own loop. */
function serveAsWorker(): void {
  const { ctx, port } = poolWorker<HttpPoolData>();
  const { host, settings, maxConnections, backend, mode, trace, verbose } = ctx.data;
  const server = new HttpServer(host, port, settings, maxConnections, true);
  server.onAccepted = (): void => ctx.count('connections');
  ctx.ready({ port: boundPort(server), address: listeningAddress(server) });
  runPoolWorker(mode, { backend, timeout: 30, ...(trace ? { trace: traceToStderr(verbose) } : {}) });
}

function main(): void {
  if (inWorkerPool()) {
    serveAsWorker();
    return;
  }
  const parsed = cli.parse({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8000' },
      root: { type: 'string' },
      quiet: { type: 'boolean', default: false },
      'header-timeout': { type: 'string', default: '20' },
      'idle-timeout': { type: 'string', default: '60' },
      'max-connections': { type: 'string' },
      ...WORKERS_FLAG,
      ...LOOP_FLAGS,
    },
    strict: true,
    allowPositionals: false,
  });
  if (parsed === null) return;
  const { values } = parsed;
  const port = cli.port(values.port, '--port');
  const { mode, options } = cli.loopFlags(values);
  const headerTimeout = positiveSeconds(values['header-timeout'], '--header-timeout');
  const idleTimeout = positiveSeconds(values['idle-timeout'], '--idle-timeout');
  let maxConnections = defaultMaxConnections();
  const maxText = values['max-connections'];
  if (maxText !== undefined) {
    maxConnections = Number(maxText);
    if (!/^\d+$/.test(maxText) || maxConnections < 1 || !Number.isSafeInteger(maxConnections)) {
      cli.usageError(`--max-connections must be a positive integer, not ${maxText}`);
    }
  }
  let root: string | null = null;
  if (values.root !== undefined) {
    try {
      root = realpathSync(values.root);
    } catch {
      cli.usageError(`--root ${values.root} does not exist`);
    }
    if (!statSync(root).isDirectory()) cli.usageError(`--root ${values.root} is not a directory`);
  }
  const settings: ServerSettings = { root, logRequests: !values.quiet, headerTimeout, idleTimeout };
  const workers = parseWorkers(cli, values.workers);
  if (workers > 1) {
    const { backend } = options;
    const data: HttpPoolData = {
      host: values.host,
      port,
      backend,
      mode,
      settings,
      maxConnections,
      trace: values.trace,
      verbose: values.verbose,
    };
    servePool(cli, {
      module: new URL(import.meta.url),
      workers,
      data,
      announce: (address) =>
        `listening on ${address} (backend ${Cli.backendName(backend)}, mode ${mode}, workers ${workers})`,
    });
    return;
  }

  const server = cli.listen(values.host, port, () => new HttpServer(values.host, port, settings, maxConnections));
  cli.run(mode, options, { announce: Cli.listening(server, options.backend, mode) });
}

main();
