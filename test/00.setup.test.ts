// The package loads, and every name of the public contract is exported.
import { createRequire } from 'node:module';

import * as asyncore from 'asyncore';
import { describe, expect, it } from 'vitest';

import { ROOT } from './helpers.js';

const CONTRACT = [
  'loop',
  'loopSync',
  'poll',
  'poll2',
  'readwrite',
  'read',
  'write',
  'closeAll',
  'socketMap',
  'ExitNow',
  'callLater',
  'availableBackends',
  'compactTraceback',
  'Dispatcher',
  'DispatcherWithSend',
  'FileDispatcher',
  'FileWrapper',
  'Socket',
  'socketpair',
  'SocketError',
  'AF_INET',
  'AF_INET6',
  'AF_UNIX',
  'SOCK_STREAM',
  'SOCK_DGRAM',
  'SOL_SOCKET',
  'SO_REUSEADDR',
  'SO_REUSEPORT',
  'SO_ERROR',
  'SO_SNDBUF',
  'SO_RCVBUF',
  'IPPROTO_TCP',
  'TCP_NODELAY',
  'SHUT_RD',
  'SHUT_WR',
  'SHUT_RDWR',
  'POLLIN',
  'POLLPRI',
  'POLLOUT',
  'POLLERR',
  'POLLHUP',
  'POLLNVAL',
];

describe('the package', () => {
  it('exports every name of the contract from src', () => {
    const missing = CONTRACT.filter((name) => !(name in asyncore));
    expect(missing).toEqual([]);
  });

  it('resolves as "asyncore" from the checkout, through require() too', async () => {
    const require = createRequire(`${ROOT}/package.json`);
    const viaRequire = require('asyncore') as typeof asyncore;
    expect(typeof viaRequire.loopSync).toBe('function');
    const viaImport = (await import(`${ROOT}/dist/index.js`)) as typeof asyncore;
    expect(viaImport.availableBackends()).toEqual(asyncore.availableBackends());
  });

  it('has the platform values of the constants', () => {
    expect(asyncore.AF_INET).toBe(2);
    expect(asyncore.SOCK_STREAM).toBe(1);
    expect(asyncore.POLLIN).toBe(1);
    expect(asyncore.POLLOUT).toBe(4);
    expect(asyncore.availableBackends()).toContain('select');
    expect(asyncore.availableBackends()).toContain('poll');
  });
});
