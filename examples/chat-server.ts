// Lesson 4: a chat server on AsyncChat: lines in, lines out to everyone.
//
//   node dist/examples/chat-server.js [--port 7000]
//
// The protocol, one line per message, ending in "\n" ("\r\n" works too):
//   server: "* hello: say NICK yourname"
//   client: "NICK alice"             -> "* you are alice" to alice, "* alice joined" to everyone
//   client: "hello all"              -> "alice: hello all" to everyone (alice included)
//   client: "/quit"                  -> "* bye" to alice, then the server closes the connection
//   (closed)                         -> "* alice left" to everyone still there
// Mistakes get a line starting with "!": a bad or taken nickname, talking before NICK.
//
// What it teaches:
// - AsyncChat does the framing. setTerminator('\n') makes it call collectIncomingData() with
//   the bytes of a line (possibly in several pieces, as TCP delivers them) and then
//   foundTerminator() once the "\n" arrives. A client that leaves in the middle of a line
//   never produces a foundTerminator(): the half line is dropped with the connection.
// - One room object holds every session; broadcasting is a loop over it calling push().
//   push() never blocks: what the kernel does not take now is queued and sent when the
//   socket is writable, and the loop watches for that only while something is queued.
// - A server must assume hostile peers, so memory is bounded on both sides:
//   * in: a line may be at most MAX_LINE bytes (AsyncChat's maxIncomingBuffer); a longer one
//     is an error, and the session is closed. Without the bound, a peer that never sends
//     "\n" could fill the server's memory.
//   * out: a client that does not read while others talk would make its queue grow forever.
//     Each session queues at most MAX_QUEUED bytes of broadcasts (its outbox, handed to
//     AsyncChat through a producer); a client past that is disconnected as too slow.
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import {
  AF_INET,
  AF_INET6,
  AsyncChat,
  Dispatcher,
  type Producer,
  Socket,
  type SocketMap,
  closeAll,
  loop,
} from 'asyncore';

/** The longest line a client may send, in bytes, "\n" excluded. */
export const MAX_LINE = 512;
/** The most bytes of broadcasts one session may have waiting for its client to read them. */
export const MAX_QUEUED = 64 * 1024;
const NICK = /^[A-Za-z0-9_-]{1,16}$/;

export class ChatRoom {
  readonly sessions = new Set<ChatSession>();

  byNick(nick: string): ChatSession | undefined {
    for (const session of this.sessions) if (session.nick === nick) return session;
    return undefined;
  }

  /** Sends one line to every session that has a nickname. */
  broadcast(line: string): void {
    // A copy: a session that is too slow leaves the set while we go through it.
    for (const session of [...this.sessions]) if (session.nick !== null) session.deliver(line);
  }
}

/**
 * The outbox: lines waiting for the client, handed to AsyncChat on demand. AsyncChat asks
 * more() when it has room to send; what it has taken out is bounded by acOutBufferSize, and
 * what is still here is bounded by MAX_QUEUED, so a session's memory is bounded as a whole.
 */
class Outbox implements Producer {
  readonly #lines: Buffer[] = [];
  bytes = 0;
  /** Whether AsyncChat holds this producer now; it drops it once more() returns nothing. */
  active = false;

  add(data: Buffer): void {
    this.#lines.push(data);
    this.bytes += data.length;
  }

  more(): Uint8Array {
    const next = this.#lines.shift();
    if (next === undefined) {
      this.active = false;
      return new Uint8Array(0);
    }
    this.bytes -= next.length;
    return next;
  }
}

export class ChatSession extends AsyncChat {
  nick: string | null = null;
  readonly #outbox = new Outbox();

  constructor(
    sock: Socket,
    readonly room: ChatRoom,
    map?: SocketMap,
  ) {
    super(sock, map);
    this.setTerminator('\n');
    this.maxIncomingBuffer = MAX_LINE + 1; // the line and a possible "\r"
    room.sessions.add(this);
    this.deliver('* hello: say NICK yourname');
  }

  override collectIncomingData(data: Buffer): void {
    this.collectIntoIncoming(data);
  }

  override foundTerminator(): void {
    const line = this.takeIncoming().toString('utf8').replace(/\r$/, '');
    if (this.nick === null) {
      this.#choose(line);
    } else if (line === '/quit') {
      this.deliver('* bye');
      this.closeWhenDone();
      this.#leave();
    } else {
      this.room.broadcast(`${this.nick}: ${line}`);
    }
  }

  #choose(line: string): void {
    const nick = /^NICK (.*)$/.exec(line)?.[1];
    if (nick === undefined) {
      this.deliver('! say NICK yourname first');
    } else if (!NICK.test(nick)) {
      this.deliver('! a nickname is 1 to 16 letters, digits, _ or -');
    } else if (this.room.byNick(nick) !== undefined) {
      this.deliver(`! ${nick} is taken`);
    } else {
      this.nick = nick;
      this.deliver(`* you are ${nick}`);
      this.room.broadcast(`* ${nick} joined`);
    }
  }

  /** Queues one line for this client, or disconnects it if it has fallen too far behind. */
  deliver(line: string): void {
    if (this.fileno() === null) return;
    const data = Buffer.from(`${line}\n`, 'utf8');
    if (this.#outbox.bytes + data.length > MAX_QUEUED) {
      this.#tooSlow();
      return;
    }
    this.#outbox.add(data);
    if (!this.#outbox.active) {
      this.#outbox.active = true;
      this.pushWithProducer(this.#outbox);
    }
  }

  /** A line longer than MAX_LINE (AsyncChat reports it here), or any other failure. */
  override handleError(err: unknown): void {
    const tooLong = err instanceof Error && err.message.includes('maxIncomingBuffer');
    this.logInfo(`${String(this)}: closing (${tooLong ? 'line too long' : String(err)})`);
    this.#leave();
    this.close();
  }

  /** The client closed (or, after /quit, everything was sent). */
  override handleClose(): void {
    this.#leave();
    this.close();
  }

  #tooSlow(): void {
    this.logInfo(`${String(this)}: closing (more than ${MAX_QUEUED} bytes queued: too slow)`);
    this.#leave();
    this.close();
  }

  /** Leaves the room (once) and tells the others. */
  #leave(): void {
    if (this.room.sessions.delete(this) && this.nick !== null) this.room.broadcast(`* ${this.nick} left`);
  }
}

export class ChatServer extends Dispatcher {
  readonly room = new ChatRoom();

  constructor(host: string, port: number, map?: SocketMap) {
    super(null, map);
    this.createSocket(host.includes(':') ? AF_INET6 : AF_INET);
    this.setReuseAddr();
    this.bind([host, port]);
    this.listen(128);
  }

  override handleAccepted(sock: Socket): void {
    new ChatSession(sock, this.room, this._map);
  }

  get port(): number {
    const name = this.socket instanceof Socket ? this.socket.getsockname() : null;
    return name === null || typeof name === 'string' ? 0 : name[1];
  }
}

function main(): void {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '7000' },
    },
  });
  const server = new ChatServer(values.host, Number(values.port));
  process.stdout.write(`listening on ${values.host}:${server.port}\n`);
  const stop = (): void => closeAll();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  void loop({ backend: 'auto' });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
