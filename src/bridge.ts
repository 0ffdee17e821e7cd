// The JS side of loop()'s thread (native/bridge.cc). The JS thread and the polling thread
// take turns over one reactor, and the reactor must not be touched while the thread waits.
// ThreadSide is the poller's sink in loop(): in the JS turn it passes interest changes
// straight on; while the thread waits it queues them and wakes the thread, and the next JS
// turn applies them before anything else is asked of the reactor. A channel closed by a Node
// timer, a new dispatcher or a send() from a promise so takes effect at once, not after the
// poll timeout.
import type { NativeThreadLoop } from './binding.js';
import type { InterestSink } from './poller.js';

export class ThreadSide implements InterestSink {
  readonly #thread: NativeThreadLoop;
  #inTurn = true;
  /** fd -> mask for changes made while the thread waited; an fd's last change wins. */
  readonly #queued = new Map<number, number>();
  #removedDuringWait = false;

  constructor(thread: NativeThreadLoop) {
    this.#thread = thread;
  }

  setInterest(fd: number, mask: number): number {
    if (this.#inTurn) return this.#thread.setInterest(fd, mask);
    // Only removals happen outside the JS turn (a dispatcher leaving the map); the poller
    // asks for new interest in its own step, in the turn.
    this.#queued.set(fd, mask);
    if (mask === 0) this.#removedDuringWait = true;
    this.#thread.wake();
    return 0;
  }

  setReadyArray(out: Int32Array): void {
    this.#thread.setReadyArray(out);
  }

  interestChanged(): void {
    if (!this.#inTurn) this.#thread.wake();
  }

  /** Ends the JS turn: the thread waits up to timeoutMs (negative: forever). */
  resume(timeoutMs: number): void {
    this.#inTurn = false;
    this.#thread.resume(timeoutMs);
  }

  /**
   * Starts a JS turn (a batch arrived) and applies what was queued meanwhile. Returns whether
   * a channel left during the wait: select() and poll() may then have failed with EBADF for
   * its closed fd, which is no error of the loop's.
   */
  takeTurn(): boolean {
    this.#inTurn = true;
    const removed = this.#removedDuringWait;
    this.#removedDuringWait = false;
    // Nearly always empty. Map.clear() allocates a fresh table even then, every batch.
    if (this.#queued.size === 0) return removed;
    // A removal the reactor refuses is of an fd already closed, which the kernel has dropped.
    for (const [fd, mask] of this.#queued) this.#thread.setInterest(fd, mask);
    this.#queued.clear();
    return removed;
  }
}
