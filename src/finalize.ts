// What happens to an fd whose owner is dropped without close(): Python closes the fd of a
// socket (or of asyncore's file_wrapper) that is garbage-collected while still open, and
// warns with a ResourceWarning. Socket and FileWrapper do the same through this module.
//
// An owner claims its fd when it gets it and releases the claim when it closes it. Only the
// current claim on an fd number may close it at garbage collection, so a number the kernel
// has since handed out again, or one another owner adopted (Socket.fromFd of a Socket's
// fd), is never closed from under its new owner.
import { native } from './binding.js';

/** One owner's claim on one fd number. Holds no reference to the owner. */
export interface FdClaim {
  readonly fd: number;
  /** The owner as its warning names it, e.g. `<Socket fd=7 family=2 type=1>`. */
  readonly what: string;
}

/** fd -> the claim of its current owner. */
const claims = new Map<number, FdClaim>();

const registry = new FinalizationRegistry<FdClaim>((claim) => {
  if (claims.get(claim.fd) !== claim) return;
  claims.delete(claim.fd);
  native.close(claim.fd);
  process.emitWarning(
    `unclosed ${claim.what}: fd ${claim.fd} was closed when its owner was garbage-collected; call close()`,
    'ResourceWarning',
  );
});

/**
 * Makes `owner` the one that closes `fd` if it is garbage-collected before
 * {@link releaseFd}. A claim an earlier owner still holds on this number is dropped: that
 * owner closed the fd behind our back, or handed it over.
 */
export function claimFd(owner: object, fd: number, what: string): FdClaim {
  const earlier = claims.get(fd);
  if (earlier !== undefined) registry.unregister(earlier);
  const claim: FdClaim = { fd, what };
  claims.set(fd, claim);
  registry.register(owner, claim, claim);
  return claim;
}

/** Ends a claim: its owner closed the fd (or gave it away). Releasing twice does nothing. */
export function releaseFd(claim: FdClaim): void {
  if (claims.get(claim.fd) === claim) claims.delete(claim.fd);
  registry.unregister(claim);
}
