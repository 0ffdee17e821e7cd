#!/usr/bin/env node
// The baseline for bench/forward: the idiomatic node:net port forwarder, two pipe()s.
//
//   node node-forward.mjs LOCAL_HOST LOCAL_PORT REMOTE_HOST REMOTE_PORT
//
// pipe() gives it what asyncore-forward does by hand: backpressure (a full destination
// pauses the source) and EOF passed on (allowHalfOpen keeps the other direction open).
import net from 'node:net';

const [localHost = '127.0.0.1', localPort = '0', remoteHost = '127.0.0.1', remotePort] = process.argv.slice(2);
if (remotePort === undefined) {
  process.stderr.write('usage: node node-forward.mjs LOCAL_HOST LOCAL_PORT REMOTE_HOST REMOTE_PORT\n');
  process.exit(2);
}

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
  const upstream = net.connect({ host: remoteHost, port: Number(remotePort), allowHalfOpen: true, noDelay: true });
  client.pipe(upstream);
  upstream.pipe(client);
  // pipe() does not pass errors on: a reset on one side ends the other.
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
});

server.listen(Number(localPort), localHost, () => {
  const { address, port } = server.address();
  process.stdout.write(`listening on ${address}:${port} (node:net pipe)\n`);
});

const stop = () => process.exit(0);
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
