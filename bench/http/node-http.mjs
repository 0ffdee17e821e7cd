// The node:http peer of the HTTP benchmark: the same hello page as asyncore-http serves
// without --root, with the same headers, so wrk compares servers, not payloads.
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import { HELLO } from './hello.mjs';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } } });
const body = Buffer.from(HELLO);
const server = createServer((req, res) => {
  res.writeHead(200, {
    Server: 'node:http',
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': body.length,
  });
  res.end(req.method === 'HEAD' ? undefined : body);
});
server.listen(Number(values.port), '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`listening on 127.0.0.1:${address.port} (backend libuv, mode node:http)\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
process.on('SIGINT', () => server.close(() => process.exit(0)));
