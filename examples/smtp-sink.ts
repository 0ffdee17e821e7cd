// smtp-sink: an SMTP server that accepts every message and writes its body to a file,
// built on AsyncChat like Python's old smtpd.DebuggingServer.
//
//   smtp-sink --dir OUT [--host 127.0.0.1] [--port 8025]
//
// Commands are lines ('\r\n' terminator); after DATA the terminator becomes '\r\n.\r\n' and
// the whole message arrives through collectIncomingData(), is dot-unstuffed (a line starting
// with '.' loses that dot) and written to OUT/message-N.eml. One limitation of that framing:
// a message with no line at all (".\r\n" right after DATA) is not recognised; no real client
// sends one (smtplib always sends at least an empty line).
//
// Other programs (and the tests) use startSmtpSink() in-process and run the loop themselves.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import {
  AF_INET,
  AF_INET6,
  type Address,
  AsyncChat,
  Dispatcher,
  Socket,
  type SocketMap,
  closeAll,
  loop,
} from 'asyncore';

export interface SmtpSinkOptions {
  /** Where each message is written, as message-N.eml (created if missing). */
  dir: string;
  host?: string;
  /** 0 picks a free port; see SmtpSink.address. */
  port?: number;
  map?: SocketMap;
}

const DATA_END = '\r\n.\r\n';

class SmtpSession extends AsyncChat {
  #helo: string | null = null;
  #from: string | null = null;
  #recipients: string[] = [];
  #inData = false;

  constructor(
    sock: Socket,
    readonly sink: SmtpSink,
  ) {
    super(sock, sink.map);
    this.setTerminator('\r\n');
    this.#reply(`220 ${sink.name} asyncore SMTP sink ready`);
  }

  override collectIncomingData(data: Buffer): void {
    this.collectIntoIncoming(data);
  }

  override foundTerminator(): void {
    const data = this.takeIncoming();
    if (this.#inData) this.#receiveMessage(data);
    else this.#command(data.toString('latin1'));
  }

  #command(line: string): void {
    const space = line.indexOf(' ');
    const verb = (space === -1 ? line : line.slice(0, space)).toUpperCase();
    const arg = space === -1 ? '' : line.slice(space + 1).trim();
    switch (verb) {
      case 'HELO':
      case 'EHLO':
        if (arg === '') return this.#reply(`501 Syntax: ${verb} hostname`);
        this.#helo = arg;
        this.#resetTransaction();
        return this.#reply(verb === 'EHLO' ? `250-${this.sink.name}\r\n250 8BITMIME` : `250 ${this.sink.name}`);
      case 'NOOP':
        return this.#reply('250 OK');
      case 'RSET':
        this.#resetTransaction();
        return this.#reply('250 OK');
      case 'QUIT':
        this.#reply('221 Bye');
        return this.closeWhenDone();
      case 'MAIL': {
        if (this.#helo === null) return this.#reply('503 Error: send HELO first');
        if (this.#from !== null) return this.#reply('503 Error: nested MAIL command');
        const from = /^FROM:\s*<([^>]*)>/i.exec(arg);
        if (from === null) return this.#reply('501 Syntax: MAIL FROM:<address>');
        this.#from = from[1] as string;
        return this.#reply('250 OK');
      }
      case 'RCPT': {
        if (this.#from === null) return this.#reply('503 Error: need MAIL command');
        const to = /^TO:\s*<([^>]+)>/i.exec(arg);
        if (to === null) return this.#reply('501 Syntax: RCPT TO:<address>');
        this.#recipients.push(to[1] as string);
        return this.#reply('250 OK');
      }
      case 'DATA':
        if (this.#recipients.length === 0) return this.#reply('503 Error: need RCPT command');
        if (arg !== '') return this.#reply('501 Syntax: DATA');
        this.#inData = true;
        this.setTerminator(DATA_END);
        return this.#reply('354 End data with <CR><LF>.<CR><LF>');
      default:
        return this.#reply(`500 Error: command "${verb.slice(0, 20)}" not recognized`);
    }
  }

  #receiveMessage(data: Buffer): void {
    // The terminator took the last line's CRLF: give it back, and undo the dot-stuffing.
    const lines = data.toString('latin1').split('\r\n');
    const body = lines.map((line) => (line.startsWith('.') ? line.slice(1) : line)).join('\r\n') + '\r\n';
    const file = this.sink.store(Buffer.from(body, 'latin1'));
    this.#inData = false;
    this.setTerminator('\r\n');
    this.#resetTransaction();
    this.#reply(`250 OK: queued as ${file}`);
  }

  #resetTransaction(): void {
    this.#from = null;
    this.#recipients = [];
  }

  #reply(text: string): void {
    this.push(Buffer.from(`${text}\r\n`, 'latin1'));
  }

  override handleClose(): void {
    this.close();
    this.sink.closedSessions++;
  }
}

/** The listening side: one SmtpSession per connection. */
export class SmtpSink extends Dispatcher {
  /** Paths of the messages written so far, in order. */
  readonly messages: string[] = [];
  /** Sessions that ended (QUIT or the client went away). */
  closedSessions = 0;
  readonly name = 'asyncore.localhost';
  #sequence = 0;

  constructor(
    readonly dir: string,
    host: string,
    port: number,
    readonly map?: SocketMap,
  ) {
    super(null, map);
    this.createSocket(host.includes(':') ? AF_INET6 : AF_INET);
    this.setReuseAddr();
    this.bind([host, port]);
    this.listen(64);
  }

  /** Where it listens, with the port the kernel picked for port 0. */
  get address(): [string, number] {
    if (!(this.socket instanceof Socket)) throw new Error('the sink is closed');
    const name = this.socket.getsockname();
    return typeof name === 'string' ? [name, 0] : [name[0], name[1]];
  }

  override handleAccepted(sock: Socket, _addr: Address): void {
    new SmtpSession(sock, this);
  }

  /** Writes a message to a new file and returns its name. */
  store(body: Buffer): string {
    for (;;) {
      this.#sequence++;
      const name = `message-${this.#sequence}.eml`;
      try {
        writeFileSync(join(this.dir, name), body, { flag: 'wx' });
        this.messages.push(join(this.dir, name));
        return name;
      } catch (err) {
        // Left by an earlier run: take the next number.
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
  }
}

/** Creates the directory and starts listening; run the map's loop to serve. */
export function startSmtpSink({ dir, host = '127.0.0.1', port = 8025, map }: SmtpSinkOptions): SmtpSink {
  mkdirSync(dir, { recursive: true });
  return new SmtpSink(dir, host, port, map);
}

function main(): void {
  const { values } = parseArgs({
    options: {
      dir: { type: 'string' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8025' },
    },
  });
  if (values.dir === undefined) {
    process.stderr.write('usage: smtp-sink --dir OUT [--host 127.0.0.1] [--port 8025]\n');
    process.exit(2);
  }
  const sink = startSmtpSink({ dir: values.dir, host: values.host, port: Number(values.port) });
  const [host, port] = sink.address;
  process.stdout.write(`listening on ${host}:${port}\nwriting messages to ${values.dir}\n`);
  // loop() runs the reactor on a native thread, so Node's own signal listeners work.
  const stop = (): void => closeAll();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  void loop();
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
