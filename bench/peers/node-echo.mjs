// node:net echo server: the baseline every ratio in RESULTS.md is taken against.
// The idiomatic server (on('data') -> write, TCP_NODELAY), listening like asyncore-echo does.
//
//   node bench/peers/node-echo.mjs [--host 127.0.0.1] [--port 0]
import net from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '0' } },
});

const server = net.createServer({ noDelay: true }, (socket) => {
  socket.on('data', (chunk) => socket.write(chunk));
  // A peer that resets its connection is routine here (the load generator closes with RST).
  socket.on('error', () => socket.destroy());
});
server.listen({ host: values.host, port: Number(values.port), backlog: 1024 }, () => {
  const { address, port } = server.address();
  process.stdout.write(`listening on ${address}:${port} (backend libuv, mode node)\n`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
