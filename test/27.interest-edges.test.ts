// Interest bookkeeping at the edges: channels that leave the map while loop()'s native
// thread is waiting must leave the kernel's interest set too, even when another channel
// joins at the same moment (the map's size does not change).
import { DispatcherWithSend, type IterationTrace, type SocketMap, closeAll, loop, socketpair } from 'asyncore';
import { afterEach, describe, expect, it } from 'vitest';

import { BACKENDS } from './helpers.js';

class Quiet extends DispatcherWithSend {
  override handleRead(): void {
    this.recv(64);
  }

  override handleClose(): void {
    this.close();
  }
}

describe('interest bookkeeping', () => {
  const maps: SocketMap[] = [];
  afterEach(() => {
    for (const map of maps.splice(0)) closeAll(map);
  });

  it.each(BACKENDS)('drops a channel closed outside a handler while another joins (%s)', async (backend) => {
    const map: SocketMap = new Map();
    maps.push(map);
    const [a, b] = socketpair();
    const leaving = new Quiet(a, map);
    new Quiet(b, map);
    const leavingFd = leaving.fileno() as number;
    const traces: IterationTrace[] = [];
    let swapped = false;

    setTimeout(() => {
      // A new pair first, so the closed fd number is not handed out again at once.
      const [c, d] = socketpair();
      leaving.close();
      const joining = new Quiet(c, map);
      swapped = true;
      expect(joining.fileno()).not.toBe(leavingFd);
      // A few messages to the joining channel: iterations whose waits start after the swap.
      let sent = 0;
      const ticker = setInterval(() => {
        if (++sent <= 5) {
          d.send('tick');
          return;
        }
        clearInterval(ticker);
        d.close();
        closeAll(map);
      }, 10);
    }, 50);

    await loop({
      map,
      backend,
      timeout: 30,
      trace: (it) => {
        if (swapped) traces.push(it);
      },
    });
    // The first iteration traced after the swap may be the wait that was already under way
    // (its peer's EOF can end it); every wait that started later must not watch the fd.
    expect(traces.length).toBeGreaterThan(1);
    for (const it of traces.slice(1)) {
      expect(it.read).not.toContain(leavingFd);
      expect(it.ready.map((r) => r.fd)).not.toContain(leavingFd);
    }
  });
});
