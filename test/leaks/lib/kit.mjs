// Shared by the LeakSanitizer scripts in test/leaks/ (run by .ci/sanitize, one plain node
// process each). LeakSanitizer reports what is unreachable when the process exits; these
// helpers make each script also prove that it did what it claims (the echo happened, the
// loops ran, the fds came back), so a script that silently did nothing cannot pass.
import { readdirSync } from 'node:fs';

import * as asyncore from 'asyncore';

const { AF_INET, Dispatcher, DispatcherWithSend } = asyncore;

/** Throws (non-zero exit) unless `condition` holds. */
export function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

/** The fds this process has open now. */
export function openFds() {
  return readdirSync('/proc/self/fd').length;
}

/** The backends compiled in, each used in turn so all of them are exercised. */
export const BACKENDS = asyncore.availableBackends();

/** Echoes what it reads, closes when its peer does. */
export class EchoHandler extends DispatcherWithSend {
  handleRead() {
    const data = this.recv(8192);
    if (data.length > 0) this.send(data);
  }

  handleClose() {
    this.close();
  }
}

/** An echo server on 127.0.0.1, port chosen by the kernel. */
export class EchoServer extends Dispatcher {
  accepted = 0;

  constructor(map) {
    super(null, map);
    this.createSocket(AF_INET);
    this.setReuseAddr();
    this.bind(['127.0.0.1', 0]);
    this.listen(1024);
  }

  get port() {
    return this.socket.getsockname()[1];
  }

  handleAccepted(sock) {
    this.accepted++;
    new EchoHandler(sock, this._map);
  }
}

/** Sends one message on connect and returns everything it reads: endless ping-pong. */
export class Bouncer extends DispatcherWithSend {
  reads = 0;

  constructor(port, map) {
    super(null, map);
    this.createSocket(AF_INET);
    this.connect(['127.0.0.1', port]);
  }

  handleConnect() {
    this.send(Buffer.alloc(64, 0x2a));
  }

  handleRead() {
    const data = this.recv(8192);
    if (data.length === 0) return;
    this.reads++;
    this.send(data);
  }

  handleClose() {
    this.close();
  }
}

/** Runs `main`; any failure prints its reason and makes the exit code non-zero. */
export function runScript(name, main) {
  main().then(
    (summary) => console.log(`${name}: ${summary}`),
    (err) => {
      console.error(`${name}: ${err instanceof Error ? err.stack : String(err)}`);
      process.exitCode = 1;
    },
  );
}
