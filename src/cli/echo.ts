#!/usr/bin/env node
// asyncore-echo: the classic asyncore echo server (EchoHandler + EchoServer) as a tool.
//
//   asyncore-echo [--host 127.0.0.1] [--port 8080] [--backend auto] [--mode sync] [--trace]
//
// It prints one line when it listens ("listening on HOST:PORT ...") and stops cleanly on
// SIGINT or SIGTERM.
import { parseArgs } from 'node:util';

import {
  AF_INET,
  AF_INET6,
  Dispatcher,
  DispatcherWithSend,
  IPPROTO_TCP,
  type IterationTrace,
  type LoopOptions,
  POLLERR,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  POLLPRI,
  Socket,
  TCP_NODELAY,
  availableBackends,
  closeAll,
  loop,
  loopSync,
} from '../index.js';
import { SignalDispatcher } from '../signals.js';

const USAGE = `usage: asyncore-echo [options]

  --host HOST       address to listen on (default 127.0.0.1)
  --port PORT       port to listen on; 0 picks a free one (default 8080)
  --backend NAME    select | poll | epoll | auto (default auto)
  --mode MODE       sync (loopSync on this thread) | thread (loop() on a native thread)
                    (default sync)
  --trace           print every loop iteration to stderr
  -h, --help        show this help`;

class EchoHandler extends DispatcherWithSend {
  override handleRead(): void {
    const data = this.recv(8192);
    if (data.length > 0) this.send(data);
  }

  override handleClose(): void {
    this.close();
  }
}

class EchoServer extends Dispatcher {
  constructor(host: string, port: number) {
    super();
    this.createSocket(host.includes(':') ? AF_INET6 : AF_INET);
    this.setReuseAddr();
    this.bind([host, port]);
    this.listen(1024);
  }

  override handleAccepted(sock: Socket): void {
    sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
    new EchoHandler(sock);
  }

  address(): string {
    const name = this.socket instanceof Socket ? this.socket.getsockname() : '?';
    return typeof name === 'string' ? name : `${name[0]}:${name[1]}`;
  }
}

function usageError(message: string): never {
  process.stderr.write(`asyncore-echo: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

function eventNames(events: number): string {
  const names: [number, string][] = [
    [POLLIN, 'IN'],
    [POLLPRI, 'PRI'],
    [POLLOUT, 'OUT'],
    [POLLERR, 'ERR'],
    [POLLHUP, 'HUP'],
    [POLLNVAL, 'NVAL'],
  ];
  return names
    .filter(([bit]) => events & bit)
    .map(([, name]) => name)
    .join('|');
}

function printTrace(it: IterationTrace): void {
  const ready = it.ready.map((r) => `${r.fd}:${eventNames(r.events)}`).join(' ');
  process.stderr.write(
    `#${it.iteration} ${it.backend} read=[${it.read.join(',')}] write=[${it.write.join(',')}] ` +
      `except=[${it.except.join(',')}] waited ${it.waitMs.toFixed(3)} ms -> ready ${ready || '-'} ` +
      `(dispatch ${it.dispatchMs.toFixed(3)} ms)\n`,
  );
}

function main(): void {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string', default: '8080' },
        backend: { type: 'string', default: 'auto' },
        mode: { type: 'string', default: 'sync' },
        trace: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    usageError(err instanceof Error ? err.message : String(err));
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) usageError(`--port must be 0-65535, not ${values.port}`);
  const backends = ['auto', ...availableBackends()];
  if (!backends.includes(values.backend)) {
    usageError(`--backend ${values.backend} is not available here (available: ${backends.join(', ')})`);
  }
  if (values.mode !== 'sync' && values.mode !== 'thread') usageError(`--mode must be sync or thread, not ${values.mode}`);

  let server: EchoServer;
  try {
    server = new EchoServer(values.host, port);
  } catch (err) {
    process.stderr.write(`asyncore-echo: cannot listen on ${values.host}:${port}: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const stop = (): void => closeAll();
  // Inside loopSync, Node's signal listeners cannot run: a dispatcher on a wake-up pipe can.
  new SignalDispatcher(['SIGINT', 'SIGTERM'], stop);
  const options: LoopOptions = {
    backend: values.backend as LoopOptions['backend'],
    timeout: 30,
    ...(values.trace ? { trace: printTrace } : {}),
  };
  const backend = values.backend === 'auto' ? availableBackends()[0] : values.backend;
  process.stdout.write(`listening on ${server.address()} (backend ${backend}, mode ${values.mode})\n`);

  if (values.mode === 'sync') {
    loopSync(options);
  } else {
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    loop(options).then(
      () => process.removeListener('SIGINT', stop).removeListener('SIGTERM', stop),
      (err: unknown) => {
        process.stderr.write(`asyncore-echo: ${String(err)}\n`);
        process.exitCode = 1;
      },
    );
  }
}

main();
