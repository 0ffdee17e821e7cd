// Records the loop's own trace (the `trace` option, one IterationTrace per iteration) while
// docs/tour/client.py talks to an echo server in this process.
//
//   node docs/tour/record.mjs --backend select|poll|epoll [--idle N] [--messages M]
//
// Prints one JSON object: the backend, the listener's and the busy connection's fds, and
// every iteration from the busy connection's accept to its close (without idle connections,
// all of them from the first wait that returns a ready fd). The echo server is README's, line for line; the loop is loopSync.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Dispatcher, DispatcherWithSend, loopSync } from 'asyncore';

import { flags } from '../../bench/lib.mjs';

const USAGE = 'usage: node docs/tour/record.mjs --backend select|poll|epoll [--idle N] [--messages M] [--size BYTES]';
const values = flags({ backend: 'select', idle: 0, messages: 3, size: 64 }, USAGE);
const idle = values.idle;
const client = fileURLToPath(new URL('./client.py', import.meta.url));

let accepted = 0;
let closed = 0;
let busyFd = null;
let busyClosed = false;

class EchoHandler extends DispatcherWithSend {
  handleRead() {
    const data = this.recv(8192);
    if (data.length > 0) this.send(data);
  }
  handleClose() {
    closed++;
    if (this.fileno() === busyFd) busyClosed = true;
    this.close();
  }
}

class EchoServer extends Dispatcher {
  constructor() {
    super();
    this.createSocket();
    this.setReuseAddr();
    this.bind(['127.0.0.1', 0]);
    this.listen(1024);
  }
  handleAccepted(sock) {
    accepted++;
    // The client opens its idle connections first: the next one is the busy one.
    if (accepted === idle + 1) busyFd = sock.fileno();
    new EchoHandler(sock);
  }
}

const server = new EchoServer();
const listenerFd = server.fileno();
const port = server.socket.getsockname()[1];
const child = spawn(
  'python3',
  [client, String(port), '--idle', String(idle), '--messages', String(values.messages), '--size', String(values.size)],
  {
    stdio: ['ignore', 'pipe', 'inherit'],
  },
);
let clientOutput = '';
child.stdout.on('data', (d) => (clientOutput += d));

const traces = [];
let first = null;
const deadline = Date.now() + 120_000;
// Until every connection the client opened has closed (loopSync blocks this thread, so the
// loop itself decides when it is done: one iteration at a time, checking the count).
while (closed < idle + 1 && Date.now() < deadline) {
  loopSync({
    backend: values.backend,
    timeout: 1,
    count: 1,
    trace: (it) => {
      // Without idle connections, from the first wait that returns something: the waits that
      // time out while python3 starts (seconds on a loaded machine) show nothing of the loop.
      const recording = idle === 0 ? traces.length > 0 || it.ready.length > 0 : busyFd !== null && !busyClosed;
      if (!recording) return;
      first ??= it.iteration;
      traces.push({ ...it, iteration: traces.length });
    },
  });
}
server.close();
await new Promise((resolve) => child.on('close', resolve));
process.stdout.write(
  `${JSON.stringify({
    backend: values.backend,
    idle,
    listenerFd,
    busyFd,
    client: clientOutput.trim() === '' ? null : JSON.parse(clientOutput),
    traces,
  })}\n`,
);
