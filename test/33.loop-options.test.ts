// Loop options are checked before anything runs, as API.md lists: not an object or a field of
// the wrong type -> TypeError (loop() rejects with it); a negative or NaN timeout or count ->
// RangeError; an unknown backend -> Error. poll()/poll2() check their arguments the same way.
import { AF_INET, Dispatcher, type LoopOptions, type SocketMap, loop, loopSync, poll, poll2 } from 'asyncore';
import { afterEach, describe, expect, it } from 'vitest';

import { MODES, type Mode, closeTestMaps, testMap } from './helpers.js';

/** A listener that counts how often the loop asked it readable(): it must never be asked. */
class Watched extends Dispatcher {
  asked = 0;

  override readable(): boolean {
    this.asked++;
    return true;
  }
}

function watchedMap(): { map: SocketMap; watched: Watched } {
  const map = testMap();
  const watched = new Watched(null, map);
  watched.createSocket(AF_INET);
  watched.bind(['127.0.0.1', 0]);
  watched.listen(1);
  return { map, watched };
}

afterEach(closeTestMaps);

/** What running the loop in `mode` with `options` threw or rejected with. */
async function failureOf(mode: Mode, options: unknown): Promise<unknown> {
  try {
    if (mode === 'thread') {
      const running = loop(options as LoopOptions);
      // Rejected, never thrown: the caller's await sees every failure the same way.
      await running;
    } else {
      loopSync(options as LoopOptions);
    }
  } catch (err) {
    return err;
  }
  return undefined;
}

const NOT_OBJECTS: [string, unknown][] = [
  ['a number', 42],
  ['a string', 'select'],
  ['null', null],
  ['true', true],
];

const WRONG_TYPES: [string, Record<string, unknown>][] = [
  ["timeout: 'x'", { timeout: 'x' }],
  ['timeout: null', { timeout: null }],
  ["count: '1'", { count: '1' }],
  ['map: {}', { map: {} }],
  ['map: []', { map: [] }],
  ['trace: 1', { trace: 1 }],
  ['backend: 5', { backend: 5 }],
  ["usePoll: 'yes'", { usePoll: 'yes' }],
  ['usePoll: 1', { usePoll: 1 }],
  ['signal: {}', { signal: {} }],
  ["signal: 'abort'", { signal: 'abort' }],
];

const OUT_OF_RANGE: [string, Record<string, unknown>][] = [
  ['timeout: -1', { timeout: -1 }],
  ['timeout: NaN', { timeout: NaN }],
  ['count: -1', { count: -1 }],
  ['count: NaN', { count: NaN }],
];

describe.each(MODES)('%s loop options', (mode) => {
  it.each(NOT_OBJECTS)('options that are %s: TypeError', async (_name, options) => {
    const { watched } = watchedMap();
    const err = await failureOf(mode, options);
    expect(err).toBeInstanceOf(TypeError);
    expect(watched.asked).toBe(0);
  });

  it.each(WRONG_TYPES)('%s: TypeError naming the field, and nothing runs', async (name, fields) => {
    const { map, watched } = watchedMap();
    const field = name.split(':')[0] as string;
    const err = await failureOf(mode, { map, count: 1, timeout: 0, ...fields });
    expect(err).toBeInstanceOf(TypeError);
    expect((err as Error).message).toContain(field);
    expect(watched.asked).toBe(0);
    expect(map.size).toBe(1);
  });

  it.each(OUT_OF_RANGE)('%s: RangeError, and nothing runs', async (_name, fields) => {
    const { map, watched } = watchedMap();
    const err = await failureOf(mode, { map, count: 1, timeout: 0, ...fields });
    expect(err).toBeInstanceOf(RangeError);
    expect(watched.asked).toBe(0);
  });

  it.each(['kqueue2', 'nope', ''])('backend %j: a plain Error naming what is available', async (backend) => {
    const { map, watched } = watchedMap();
    const err = await failureOf(mode, { map, count: 1, timeout: 0, backend });
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(TypeError);
    expect(err).not.toBeInstanceOf(RangeError);
    expect((err as Error).message).toMatch(/available/);
    expect(watched.asked).toBe(0);
  });

  it('valid options run: timeout 0, Infinity count with a map that empties, usePoll, an AbortSignal', async () => {
    const { map, watched } = watchedMap();
    const signal = new AbortController().signal;
    const fields = { map, timeout: 0, count: 2, usePoll: true, trace: () => undefined, signal };
    expect(await failureOf(mode, fields)).toBeUndefined();
    expect(watched.asked).toBe(2);
    expect(await failureOf(mode, { map, timeout: 0.001, count: 1.5 })).toBeUndefined();
    // Python's `while count > 0: count -= 1`: 1.5 runs two iterations.
    expect(watched.asked).toBe(4);
  });
});

describe.each([
  ['poll', poll],
  ['poll2', poll2],
])('%s() arguments', (_name, once) => {
  const call = once as (timeout?: unknown, map?: unknown) => void;

  it('a timeout that is not a number, or a map that is not a Map: TypeError', () => {
    const { map, watched } = watchedMap();
    expect(() => call('x', map)).toThrow(TypeError);
    expect(() => call(null, map)).toThrow(TypeError);
    expect(() => call(0, {})).toThrow(TypeError);
    expect(() => call(0, [])).toThrow(TypeError);
    expect(watched.asked).toBe(0);
  });

  it('a negative or NaN timeout: RangeError', () => {
    const { map, watched } = watchedMap();
    expect(() => call(-1, map)).toThrow(RangeError);
    expect(() => call(NaN, map)).toThrow(RangeError);
    expect(watched.asked).toBe(0);
  });

  it('valid arguments run one iteration', () => {
    const { map, watched } = watchedMap();
    call(0, map);
    call(undefined, map);
    expect(watched.asked).toBe(2);
  });
});
