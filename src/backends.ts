// The readiness backends compiled into the addon, and the system calls behind each, so an
// error names the call that failed (a SocketError's `syscall`) whichever layer reports it.
import { type NativeReactor, native } from './binding.js';
import { ERANGE, errnoError } from './errors.js';

/** The system calls a backend makes to create its interest set, change it and wait on it. */
interface BackendCalls {
  create: string;
  change: string;
  wait: string;
}

const CALLS: Readonly<Record<string, BackendCalls>> = {
  select: { create: 'select', change: 'select', wait: 'select' },
  poll: { create: 'poll', change: 'poll', wait: 'poll' },
  epoll: { create: 'epoll_create1', change: 'epoll_ctl', wait: 'epoll_wait' },
};

/** The system call behind one step of a backend, e.g. 'epoll_ctl' for epoll's 'change'. */
export function syscallOf(backend: string, step: keyof BackendCalls): string {
  return CALLS[backend]?.[step] ?? backend;
}

/** The backends compiled in on this platform, most scalable first ('auto' excluded). */
export function availableBackends(): string[] {
  return native.availableBackends();
}

/** The backend the options ask for: `backend` wins, then Python's `usePoll`; 'auto' is the best one. */
export function chooseBackend(backend: string | undefined, usePoll: boolean | undefined): string {
  const requested = backend ?? (usePoll === true ? 'poll' : 'select');
  const available = availableBackends();
  if (requested === 'auto') return available[0] ?? 'select';
  if (!available.includes(requested)) {
    throw new Error(`backend ${JSON.stringify(requested)} is not available here; available: ${available.join(', ')}`);
  }
  return requested;
}

/** The RangeError for an fd the backend cannot hold (select: fd >= FD_SETSIZE). */
export function fdRangeError(fd: number, backend: string, whose = 'fd'): RangeError {
  return new RangeError(
    `${whose} ${fd} is beyond what ${backend}() can watch (FD_SETSIZE is ${native.constants.FD_SETSIZE}); ` +
      `use backend 'poll' or 'epoll'`,
  );
}

/** loopSync's reactor on `backend`; throws what {@link creationError} makes of a refusal. */
export function createReactor(backend: string): NativeReactor {
  try {
    return new native.Reactor(backend);
  } catch (err) {
    throw creationError(err, backend);
  }
}

/** What the addon threw when it could not create a reactor or thread loop, as the error to report. */
export function creationError(err: unknown, backend: string): unknown {
  const { errno, fd } = err as { errno?: unknown; fd?: unknown };
  // loop() needs a wake-up fd of its own, and select() could not hold it.
  if (errno === ERANGE && typeof fd === 'number') return fdRangeError(fd, 'select', "loop()'s wake-up fd");
  return typeof errno === 'number' && errno > 0 ? errnoError(-errno, syscallOf(backend, 'create')) : err;
}
