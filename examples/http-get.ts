// Lesson 2: an HTTP/1.0 client, the other half of Python's asyncore documentation.
//
//   node dist/examples/http-get.js http://127.0.0.1:8000/path > body
//
// It prints the status line on stderr and writes the body, byte for byte, to stdout. The exit
// code is 0 for a 2xx status, 1 for any other status or a failure, 2 for a bad command line.
//
// What it teaches:
// - connect() on a non-blocking socket returns at once; the connection completes later. The
//   loop reports the socket *writable* when it does, and asyncore calls handleConnect() first.
// - A client is writable() only while it has something to send. Once the request is out,
//   writable() turns false and the loop stops watching the fd for writing: a socket with room
//   in its send buffer is almost always writable, and watching it would wake the loop for
//   nothing on every iteration.
// - HTTP/1.0 marks the end of the response by closing the connection: recv() returns an
//   empty Buffer (EOF), asyncore calls handleClose(), and the dispatcher leaves the map. The
//   map is then empty and loopSync() returns. No timers, no callbacks: the loop ends when the
//   work does.
// - A refused connection is reported by the kernel as readable/writable with an error; the
//   next recv()/send() (or asyncore's connect check) throws, and handleError() sees it.
import { pathToFileURL } from 'node:url';

import { AF_INET, AF_INET6, Dispatcher, type SocketMap, loopSync } from 'asyncore';

/** The response, split as HTTP/1.0 defines it: a status line, headers, a blank line, the body. */
export interface HttpResponse {
  status: number;
  statusLine: string;
  headers: Map<string, string>;
  body: Buffer;
}

export class HttpClient extends Dispatcher {
  /** The request bytes not yet sent. */
  #out: Buffer;
  /** Every chunk of the response, joined once at the end (no quadratic concatenation). */
  readonly #chunks: Buffer[] = [];
  #received = 0;
  /** What went wrong, if the exchange failed (a refused connection, a reset). */
  error: Error | null = null;

  constructor(url: URL, map?: SocketMap) {
    super(null, map);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = url.port === '' ? 80 : Number(url.port);
    this.#out = Buffer.from(
      `GET ${url.pathname}${url.search} HTTP/1.0\r\nHost: ${url.host}\r\nUser-Agent: asyncore-lesson\r\n\r\n`,
      'latin1',
    );
    this.createSocket(host.includes(':') ? AF_INET6 : AF_INET);
    this.connect([host, port]);
  }

  override handleConnect(): void {
    // Nothing to do: the request goes out in handleWrite(), which runs next.
  }

  override writable(): boolean {
    return this.#out.length > 0;
  }

  override handleWrite(): void {
    const sent = this.send(this.#out);
    this.#out = this.#out.subarray(sent);
  }

  override handleRead(): void {
    const data = this.recv(65536);
    if (data.length > 0) {
      this.#chunks.push(data);
      this.#received += data.length;
    }
  }

  override handleClose(): void {
    this.close();
  }

  override handleError(err: unknown): void {
    this.error = err instanceof Error ? err : new Error(String(err));
    this.close();
  }

  /** The response, once the loop has ended; throws if it is not a complete HTTP response. */
  response(): HttpResponse {
    if (this.error !== null) throw this.error;
    const raw = Buffer.concat(this.#chunks, this.#received);
    const end = raw.indexOf('\r\n\r\n');
    if (end < 0) throw new Error(`no complete header in ${raw.length} bytes of response`);
    const [statusLine = '', ...lines] = raw.subarray(0, end).toString('latin1').split('\r\n');
    const match = /^HTTP\/\d\.\d (\d{3})/.exec(statusLine);
    if (match === null) throw new Error(`not an HTTP status line: ${JSON.stringify(statusLine)}`);
    const headers = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    return { status: Number(match[1]), statusLine, headers, body: raw.subarray(end + 4) };
  }
}

/** Fetches `url` with HTTP/1.0 on a map of its own, blocking this thread until it is done. */
export function httpGet(url: URL): HttpResponse {
  const map: SocketMap = new Map();
  const client = new HttpClient(url, map);
  loopSync({ map, backend: 'poll', timeout: 30 });
  return client.response();
}

function main(): void {
  const [text] = process.argv.slice(2);
  let url: URL;
  try {
    url = new URL(text ?? '');
    if (url.protocol !== 'http:') throw new Error('only http:// URLs');
  } catch {
    process.stderr.write('usage: http-get http://HOST[:PORT]/PATH\n');
    process.exit(2);
  }
  try {
    const response = httpGet(url);
    process.stderr.write(`${response.statusLine}\n`);
    process.stdout.write(response.body);
    process.exitCode = response.status >= 200 && response.status < 300 ? 0 : 1;
  } catch (err) {
    process.stderr.write(`http-get: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
