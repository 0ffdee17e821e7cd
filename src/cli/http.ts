#!/usr/bin/env node
// asyncore-http: a small HTTP/1.1 file server on AsyncChat, the classic use of asynchat.
//
//   asyncore-http [--host 127.0.0.1] [--port 8000] [--root DIR] [--backend auto] [--mode sync] [--quiet]
//                 [--workers 1]
//
// Each connection is an HttpChannel. The terminator '\r\n\r\n' frames a request head; a body
// announced by Content-Length is then read with a numeric terminator. Replies go out through
// push(): the hello page and the error pages whole from a cache (FixedReplies, rebuilt when
// the Date header changes), and files are streamed by a FileProducer, 64 KiB per more(),
// never read whole.
// Without --root it serves a hello page at /. It prints "listening on HOST:PORT ..." once it
// listens and stops cleanly on SIGINT or SIGTERM.
import { closeSync, fstatSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { extname, join, sep } from 'node:path';

import {
  AF_INET,
  AF_INET6,
  type Address,
  AsyncChat,
  Dispatcher,
  IPPROTO_TCP,
  type Producer,
  SOL_SOCKET,
  SO_REUSEPORT,
  Socket,
  TCP_NODELAY,
  inWorkerPool,
} from '../index.js';
import { Cli, LOOP_FLAGS } from './common.js';
import { type PoolData, WORKERS_FLAG, parseWorkers, poolWorker, runPoolWorker, servePool } from './pool.js';

const USAGE = `usage: asyncore-http [options]

  --host HOST       address to listen on (default 127.0.0.1)
  --port PORT       port to listen on; 0 picks a free one (default 8000)
  --root DIR        serve the files under DIR (default: a hello page at /)
  --backend NAME    select | poll | epoll | auto (default auto)
  --mode MODE       sync (loopSync on this thread) | thread (loop() on a native thread)
                    (default sync)
  --quiet           no access log (one stderr line per request otherwise)
  --workers N       run N loops in N worker threads, each with its own listener on the
                    port (SO_REUSEPORT) (default 1)
  -h, --help        show this help`;

// Explicitly typed, so TypeScript sees that cli.usageError() and cli.fail() never return.
const cli: Cli = new Cli('asyncore-http', USAGE);

const HEAD_END = '\r\n\r\n';
const MAX_HEAD = 64 * 1024;
const MAX_BODY = 1024 * 1024;
const FILE_CHUNK = 64 * 1024;

const REASONS: Record<number, string> = {
  200: 'OK',
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Content Too Large',
  501: 'Not Implemented',
};

// The Date header changes once a second: format it once a second, as node:http does.
let dateSecond = -1;
let dateText = '';

function httpDate(): string {
  const now = Date.now();
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

const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.([01])$/;
// The value is taken greedily and its trailing blanks cut off after: a lazy (.*?)[ \t]*$
// tries the end of the line at every character, twice the cost on a browser's head.
const HEADER_FIELD = /^([^:\s]+):[ \t]*([^\r\n]*)$/;
const LEADING_CRLFS = /^(\r\n)+/;
const DIGITS = /^\d+$/;
const CONNECTION_CLOSE = /\bclose\b/i;
const CONNECTION_KEEP_ALIVE = /\bkeep-alive\b/i;

function withoutTrailingBlanks(text: string): string {
  let end = text.length;
  while (end > 0 && (text.charCodeAt(end - 1) === 0x20 || text.charCodeAt(end - 1) === 0x09)) end--;
  return end === text.length ? text : text.slice(0, end);
}

/** The request line and header fields, or the reason they are malformed. */
function parseHead(head: string): Request | string {
  // Line by line with indexOf rather than split(): no array of lines per request.
  let end = head.indexOf('\r\n');
  if (end === -1) end = head.length;
  const requestLine = head.slice(0, end);
  const match = REQUEST_LINE.exec(requestLine);
  if (match === null) return `malformed request line ${JSON.stringify(requestLine.slice(0, 100))}`;
  const headers = new Map<string, string>();
  for (let start = end + 2; start < head.length; start = end + 2) {
    end = head.indexOf('\r\n', start);
    if (end === -1) end = head.length;
    const line = head.slice(start, end);
    const field = HEADER_FIELD.exec(line);
    if (field === null) return `malformed header line ${JSON.stringify(line.slice(0, 100))}`;
    const name = (field[1] as string).toLowerCase();
    const value = withoutTrailingBlanks(field[2] as string);
    const previous = headers.get(name);
    headers.set(name, previous === undefined ? value : `${previous}, ${value}`);
  }
  return { method: match[1] as string, target: match[2] as string, version: match[3] === '0' ? '1.0' : '1.1', headers };
}

function wantsKeepAlive(request: Request): boolean {
  const connection = request.headers.get('connection');
  if (connection === undefined) return request.version === '1.1';
  return request.version === '1.1' ? !CONNECTION_CLOSE.test(connection) : CONNECTION_KEEP_ALIVE.test(connection);
}

/** Streams `size` bytes of an open file, FILE_CHUNK at a time; closes it at the end. */
class FileProducer implements Producer {
  #fd: number | null;
  #left: number;

  /** `openFiles` lists the producers of a channel, so that closing the channel closes their files. */
  constructor(
    fd: number,
    size: number,
    readonly openFiles: Set<FileProducer>,
  ) {
    this.#fd = fd;
    this.#left = size;
    openFiles.add(this);
  }

  more(): Uint8Array {
    if (this.#fd === null || this.#left === 0) {
      this.close();
      return new Uint8Array(0);
    }
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
    this.openFiles.delete(this);
  }
}

/** Maps a request target to a regular file under root, or null. Nothing outside root is ever served. */
function fileFor(root: string, target: string): string | null {
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
    return inside && statSync(real).isFile() ? real : null;
  } catch {
    return null; // it does not exist (or vanished meanwhile)
  }
}

/** An fd for the file, or null when it cannot be opened (permissions, or it just vanished). */
function openForReading(path: string): number | null {
  try {
    return openSync(path, 'r');
  } catch {
    return null;
  }
}

class HttpChannel extends AsyncChat {
  /** The request whose body is being read (and thrown away), if any. */
  #request: Request | null = null;
  #headSize = 0;
  /** After an error or "Connection: close": input is ignored until the channel closes. */
  #finished = false;
  readonly #openFiles = new Set<FileProducer>();

  constructor(
    sock: Socket,
    readonly root: string | null,
    readonly peer: string,
    readonly logRequests: boolean,
  ) {
    super(sock);
    this.maxIncomingBuffer = MAX_BODY;
    this.setTerminator(HEAD_END);
  }

  override collectIncomingData(data: Buffer): void {
    // A body is only read to stay in step with the stream: no method served here uses one.
    if (this.#finished || this.#request !== null) return;
    this.#headSize += data.length;
    if (this.#headSize > MAX_HEAD) return this.#fail(413, 'the request head is over 64 KiB');
    this.collectIntoIncoming(data);
  }

  override foundTerminator(): void {
    if (this.#finished) return;
    const data = this.takeIncoming();
    this.#headSize = 0;
    if (this.#request !== null) {
      // The body has been read: answer, and look for the next request head.
      const request = this.#request;
      this.#request = null;
      this.setTerminator(HEAD_END);
      this.#answer(request);
      return;
    }
    // Stray CRLFs between requests are allowed (RFC 9112, 2.2).
    let head = data.toString('latin1');
    if (head.startsWith('\r\n')) head = head.replace(LEADING_CRLFS, '');
    if (head === '') return;
    const request = parseHead(head);
    if (typeof request === 'string') return this.#fail(400, request);
    if (request.headers.has('transfer-encoding')) return this.#fail(501, 'chunked request bodies are not supported');
    const length = request.headers.get('content-length') ?? '0';
    if (!DIGITS.test(length)) return this.#fail(400, `bad Content-Length ${JSON.stringify(length)}`);
    if (Number(length) > MAX_BODY) return this.#fail(413, `the body is over ${MAX_BODY} bytes`);
    if (Number(length) > 0) {
      this.#request = request;
      this.setTerminator(Number(length));
    } else {
      this.#answer(request);
    }
  }

  #answer(request: Request): void {
    const keepAlive = wantsKeepAlive(request);
    const headOnly = request.method === 'HEAD';
    if (request.method !== 'GET' && !headOnly) {
      this.#replyFixed(request, 405, keepAlive, headOnly);
    } else if (this.root === null) {
      const target = request.target;
      this.#replyFixed(request, target === '/' || target.startsWith('/?') ? 200 : 404, keepAlive, headOnly);
    } else {
      const file = fileFor(this.root, request.target);
      const fd = file === null ? null : openForReading(file);
      if (file === null || fd === null) {
        this.#replyFixed(request, 404, keepAlive, headOnly);
      } else {
        const size = fstatSync(fd).size;
        const type = CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
        this.push(Buffer.from(replyHead(200, { keepAlive, length: size, type }), 'latin1'));
        this.#log(request, 200, size);
        if (headOnly) closeSync(fd);
        else this.pushWithProducer(new FileProducer(fd, size, this.#openFiles));
      }
    }
    if (!keepAlive) this.#finish();
  }

  /** A reply that is not a file: head and body in one push, so one send() and one TCP segment. */
  #replyFixed(request: Request | null, status: number, keepAlive: boolean, headOnly: boolean): void {
    this.push(fixedReplies.get(status, keepAlive, headOnly));
    // Checked here too: fixedBody() builds a Buffer only the log needs.
    if (this.logRequests) this.#log(request, status, fixedBody(status).length);
  }

  /** The access log: one stderr line per reply, unless --quiet. */
  #log(request: Request | null, status: number, length: number): void {
    if (!this.logRequests) return;
    const line = request === null ? '-' : `${request.method} ${request.target} HTTP/${request.version}`;
    process.stderr.write(`${this.peer} "${line.slice(0, 200)}" ${status} ${length}\n`);
  }

  /** An error reply, then the connection closes: after a bad request the stream cannot be trusted. */
  #fail(status: number, why: string): void {
    if (this.logRequests) process.stderr.write(`${this.peer} ${why}\n`);
    this.#replyFixed(null, status, false, false);
    this.#finish();
  }

  /** No more requests on this connection: close it once the replies are sent. */
  #finish(): void {
    this.#finished = true;
    this.setTerminator(null);
    this.takeIncoming();
    this.closeWhenDone();
  }

  override close(): void {
    super.close();
    // A file still being streamed when the peer went away.
    for (const producer of this.#openFiles) producer.close();
  }
}

class HttpServer extends Dispatcher {
  /** Called for every accepted connection (a pool worker counts them). */
  onAccepted: (() => void) | null = null;

  constructor(
    host: string,
    port: number,
    readonly root: string | null,
    readonly logRequests: boolean,
    reusePort = false,
  ) {
    super();
    this.createSocket(host.includes(':') ? AF_INET6 : AF_INET);
    this.setReuseAddr();
    // One listener per worker on the same port: the kernel spreads connections over them.
    if (reusePort && this.socket instanceof Socket) this.socket.setsockopt(SOL_SOCKET, SO_REUSEPORT, 1);
    this.bind([host, port]);
    this.listen(1024);
  }

  override handleAccepted(sock: Socket, addr: Address): void {
    sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
    const peer = typeof addr === 'string' ? addr : `${addr[0]}:${addr[1]}`;
    new HttpChannel(sock, this.root, peer, this.logRequests);
    this.onAccepted?.();
  }

  address(): string {
    const name = this.socket instanceof Socket ? this.socket.getsockname() : '?';
    return typeof name === 'string' ? name : `${name[0]}:${name[1]}`;
  }

  port(): number {
    const name = this.socket instanceof Socket ? this.socket.getsockname() : '';
    return typeof name === 'string' ? 0 : name[1];
  }
}

interface HttpPoolData extends PoolData {
  root: string | null;
  quiet: boolean;
}

/** One worker of --workers N: the same server on the shared port, with its own loop. */
function serveAsWorker(): void {
  const { ctx, port } = poolWorker<HttpPoolData>();
  const { host, root, quiet, backend, mode } = ctx.data;
  const server = new HttpServer(host, port, root, !quiet, true);
  server.onAccepted = (): void => ctx.count('connections');
  ctx.ready({ port: server.port(), address: server.address() });
  runPoolWorker(mode, { backend, timeout: 30 });
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
      ...WORKERS_FLAG,
      ...LOOP_FLAGS,
    },
    strict: true,
    allowPositionals: false,
  });
  if (parsed === null) return;
  const { values } = parsed;
  const port = cli.port(values.port, '--port');
  const backend = cli.backend(values.backend);
  const mode = cli.mode(values.mode);
  let root: string | null = null;
  if (values.root !== undefined) {
    try {
      root = realpathSync(values.root);
    } catch {
      cli.usageError(`--root ${values.root} does not exist`);
    }
    if (!statSync(root).isDirectory()) cli.usageError(`--root ${values.root} is not a directory`);
  }
  const workers = parseWorkers(cli, values.workers);
  if (workers > 1) {
    const data: HttpPoolData = { host: values.host, port, backend, mode, root, quiet: values.quiet };
    servePool(cli, {
      module: new URL(import.meta.url),
      workers,
      data,
      announce: (address) =>
        `listening on ${address} (backend ${Cli.backendName(backend)}, mode ${mode}, workers ${workers})`,
    });
    return;
  }

  let server: HttpServer;
  try {
    server = new HttpServer(values.host, port, root, !values.quiet);
  } catch (err) {
    cli.fail(`cannot listen on ${values.host}:${port}: ${(err as Error).message}`);
  }
  const listening = `listening on ${server.address()} (backend ${Cli.backendName(backend)}, mode ${mode})`;
  cli.run(mode, { backend, timeout: 30 }, { announce: listening });
}

main();
