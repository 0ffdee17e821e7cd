// LeakSanitizer: 10,000 connections opened, echoed once and closed under loopSync(), and
// 10,000 more under loop(), spread over every backend. Each client sends a message of its
// own, checks that exactly those bytes come back, and closes; the server side closes on EOF.
// At most IN_FLIGHT connections are open at once, so the fd count stays small (select too).
import * as asyncore from 'asyncore';

import { check, echoKit, openFds, runScript } from '../fixtures/echo-kit.mjs';

const { DispatcherWithSend, loop, loopSync } = asyncore;
const { EchoServer } = echoKit(asyncore);
const BACKENDS = asyncore.availableBackends();

const CONNECTIONS_PER_MODE = 10_000;
const IN_FLIGHT = 50;

/** Connects, sends its message once, and closes as soon as the echo is complete. */
class OneEchoClient extends DispatcherWithSend {
  received = Buffer.alloc(0);

  constructor(port, map, message, onEchoed) {
    super(null, map);
    this.message = message;
    this.onEchoed = onEchoed;
    this.createSocket();
    this.connect(['127.0.0.1', port]);
  }

  handleConnect() {
    this.send(this.message);
  }

  handleRead() {
    this.received = Buffer.concat([this.received, this.recv(8192)]);
    if (this.received.length < this.message.length) return;
    check(this.received.equals(this.message), `echo differs: ${this.received} for ${this.message}`);
    this.close();
    this.onEchoed();
  }

  handleClose() {
    throw new Error(`closed before its echo was complete: ${this.received.length} bytes`);
  }

  handleError(err) {
    throw err;
  }
}

/** One server on one map: `total` clients, IN_FLIGHT at a time; the map empties at the end. */
function echoSession(total) {
  const map = new Map();
  const server = new EchoServer(map);
  let started = 0;
  const session = { map, echoed: 0, accepted: () => server.accepted };
  function startClient() {
    const message = Buffer.from(`connection ${started++} of ${total}\n`);
    new OneEchoClient(server.port, map, message, () => {
      session.echoed++;
      if (started < total) startClient();
      else if (session.echoed === total) server.close();
    });
  }
  for (let i = 0; i < Math.min(IN_FLIGHT, total); i++) startClient();
  return session;
}

function checkSession(session, total, where) {
  check(session.echoed === total, `${where}: ${session.echoed} of ${total} echoes`);
  check(session.accepted() === total, `${where}: ${session.accepted()} of ${total} accepted`);
  check(session.map.size === 0, `${where}: ${session.map.size} channels left in the map`);
}

/** CONNECTIONS_PER_MODE split over the backends. */
function shares() {
  return BACKENDS.map((backend, i) => ({
    backend,
    total: Math.floor(CONNECTIONS_PER_MODE / BACKENDS.length) + (i < CONNECTIONS_PER_MODE % BACKENDS.length ? 1 : 0),
  }));
}

runScript('connections', async () => {
  const fdsBefore = openFds();
  for (const { backend, total } of shares()) {
    const session = echoSession(total);
    loopSync({ map: session.map, backend });
    checkSession(session, total, `loopSync on ${backend}`);
  }
  for (const { backend, total } of shares()) {
    const session = echoSession(total);
    await loop({ map: session.map, backend });
    checkSession(session, total, `loop() on ${backend}`);
  }
  const fdsAfter = openFds();
  check(fdsAfter === fdsBefore, `${fdsAfter - fdsBefore} fds more than before the connections`);
  return `${CONNECTIONS_PER_MODE} connections echoed under loopSync and ${CONNECTIONS_PER_MODE} under loop() on ${BACKENDS.join(', ')}`;
});
