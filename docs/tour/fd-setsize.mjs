// select() and FD_SETSIZE, from a real run: a listener whose fd is 1024 or more.
//
//   node docs/tour/fd-setsize.mjs
//
// It opens sockets until one has fd >= 1024 (FD_SETSIZE), listens on it, and asks loopSync to
// watch it with each backend. select refuses it before touching an fd_set; poll and epoll
// watch it, and a connection from python3 to that listener is accepted. Prints one JSON line.
import { spawnSync } from 'node:child_process';

import { Dispatcher, Socket, loopSync } from 'asyncore';

const filler = [];
let sock = new Socket();
while (sock.fileno() < 1024) {
  filler.push(sock);
  sock = new Socket();
}

class Listener extends Dispatcher {
  accepted = 0;
  handleAccepted(conn) {
    this.accepted++;
    conn.close();
  }
}

const listener = new Listener(sock);
listener.setReuseAddr();
listener.bind(['127.0.0.1', 0]);
listener.listen(5);
const port = listener.socket.getsockname()[1];
const result = { fd: listener.fileno(), backends: {} };

for (const backend of ['select', 'poll', 'epoll']) {
  const map = new Map([[listener.fileno(), listener]]);
  try {
    // python3 connects, then the loop must accept: one iteration is enough.
    const py = spawnSync('python3', ['-c', `import socket; socket.create_connection(("127.0.0.1", ${port})).close()`]);
    if (py.status !== 0) throw new Error(`python3 could not connect: ${py.stderr}`);
    const before = listener.accepted;
    loopSync({ backend, map, timeout: 5, count: 1 });
    result.backends[backend] = { ok: true, accepted: listener.accepted - before };
  } catch (err) {
    result.backends[backend] = { ok: false, error: `${err.constructor.name}: ${err.message}` };
    // The connection select could not see is still queued: take it so the next backend starts clean.
    listener.accept()?.[0].close();
  }
}

// The same fd number in Python 3.11's select.select(), for comparison.
const py = spawnSync('python3', [
  '-c',
  [
    'import select, socket',
    'socks = [socket.socket() for _ in range(1030)]',
    's = next(s for s in socks if s.fileno() >= 1024)',
    'try:',
    '    select.select([s], [], [], 0)',
    'except ValueError as err:',
    '    print("%d %s: %s" % (s.fileno(), type(err).__name__, err))',
  ].join('\n'),
]);
result.python = py.stdout.toString().trim();

listener.close();
for (const s of filler) s.close();
process.stdout.write(`${JSON.stringify(result)}\n`);
