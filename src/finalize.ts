// What happens to an fd whose owner is dropped without close(): Python closes the fd of a
// socket (or of asyncore's file_wrapper) that is garbage-collected while still open, and
// warns with a ResourceWarning. Socket and FileWrapper do the same through this module.
//
// An owner claims its fd when it gets it and releases the claim when it closes it. Only the
// current claim on an fd number may close it at garbage collection, so a number the kernel
// has since handed out again, or one another owner adopted (Socket.fromFd of a Socket's
// fd), is never closed from under its new owner.
//
// Every socket an accept() loop takes passes through here, so a claim is kept small: numbers
// and a constant string, with the warning's text built only when it is needed.
import { native } from './binding.js';

/** One owner's claim on one fd number. Holds no reference to the owner. */
export interface FdClaim {
  readonly fd: number;
  /** The owner's class, as the warning names it: `'Socket'` or `'FileWrapper'`. */
  readonly kind: string;
  /** A socket's family and type (-1 for other owners), for the warning. */
  readonly family: number;
  readonly type: number;
}

/** fd -> the claim of its current owner (a sparse array: fd numbers are small and dense). */
const claims: (FdClaim | undefined)[] = [];

/** `<Socket fd=7 family=2 type=1>`, as Socket's toString() says, or `<FileWrapper fd=8>`. */
function describeOwner({ fd, kind, family, type }: FdClaim): string {
  return family < 0 ? `<${kind} fd=${fd}>` : `<${kind} fd=${fd} family=${family} type=${type}>`;
}

const registry = new FinalizationRegistry<FdClaim>((claim) => {
  if (claims[claim.fd] !== claim) return;
  claims[claim.fd] = undefined;
  native.close(claim.fd);
  process.emitWarning(
    `unclosed ${describeOwner(claim)}: fd ${claim.fd} was closed when its owner was garbage-collected; ` +
      'call close()',
    'ResourceWarning',
  );
});

/**
 * Makes `owner` the one that closes `fd` if it is garbage-collected before
 * {@link releaseFd}. A claim an earlier owner still holds on this number is dropped: that
 * owner closed the fd behind our back, or handed it over.
 */
export function claimFd(owner: object, fd: number, kind: string, family = -1, type = -1): FdClaim {
  const earlier = claims[fd];
  if (earlier !== undefined) registry.unregister(earlier);
  const claim: FdClaim = { fd, kind, family, type };
  claims[fd] = claim;
  registry.register(owner, claim, claim);
  return claim;
}

/** Ends a claim: its owner closed the fd (or gave it away). Releasing twice does nothing. */
export function releaseFd(claim: FdClaim): void {
  if (claims[claim.fd] === claim) claims[claim.fd] = undefined;
  registry.unregister(claim);
}
