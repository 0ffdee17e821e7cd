#!/usr/bin/env node
// Where the instructions of one event go: the per-function difference between two callgrind
// runs of the same server that differ only in how many events it handled, divided by the
// number of extra events.
//
//   node bench/where.mjs <fewer.out> <more.out> <extra-events> [--top 40]
//
// The two files come from bench/instructions.mjs (bench/out/callgrind.<subject>.<rounds>.out;
// extra events = connections x the difference in rounds) or from bench/http/instructions.mjs
// --keep (base.out and full.out; extra events = --requests). Functions are callgrind's, self
// cost only. V8's generated code has no symbols: run the measurement with
// NODE_OPTIONS=--perf-basic-prof and Node writes /tmp/perf-<pid>.map, from which this names
// each piece of JIT code by its JavaScript function ("*" optimized, "^" baseline, "~"
// interpreted), else it shows as an address. A few functions of start-up (detail::sprp, V8's
// compiler) move by a hundred or so from run to run: that is the method's noise.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const USAGE = 'usage: node bench/where.mjs <fewer.out> <more.out> <extra-events> [--top 40]';
const { values, positionals } = parseArgs({
  options: { top: { type: 'string', default: '40' } },
  allowPositionals: true,
});
const [fewer, more, extra] = positionals;
const top = Number(values.top);
if (fewer === undefined || more === undefined || !(Number(extra) > 0) || !(top > 0)) {
  console.error(USAGE);
  process.exit(2);
}

/** The JIT code ranges Node listed for the process that wrote `file`, sorted by address. */
function jitRanges(file) {
  const pid = /^pid: (\d+)/m.exec(readFileSync(file, 'latin1').slice(0, 4096))?.[1];
  const map = `/tmp/perf-${pid}.map`;
  if (pid === undefined || !existsSync(map)) return [];
  return readFileSync(map, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [start, size, ...name] = line.split(' ');
      return { start: parseInt(start, 16), end: parseInt(start, 16) + parseInt(size, 16), name: name.join(' ') };
    })
    .sort((a, b) => a.start - b.start);
}

/** The JavaScript function whose code holds `address`, by binary search. */
function jitName(ranges, address) {
  let low = 0;
  let high = ranges.length - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const range = ranges[middle];
    if (address < range.start) high = middle - 1;
    else if (address >= range.end) low = middle + 1;
    else return `JIT ${range.name.replace(/ file:\/\/\S*\//, ' ')}`;
  }
  return null;
}

/** Self instructions per function in one callgrind file. */
function selfCosts(file) {
  const ranges = jitRanges(file);
  const text = execFileSync('callgrind_annotate', ['--inclusive=no', '--threshold=100', file], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const costs = new Map();
  for (const line of text.split('\n')) {
    const match = /^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*?)(?:\s+\[.*\])?$/.exec(line);
    if (match === null) continue;
    let name = match[2];
    const address = /^\?\?\?:0x([0-9a-f]+)$/.exec(name);
    if (address !== null) name = jitName(ranges, parseInt(address[1], 16)) ?? name;
    costs.set(name, (costs.get(name) ?? 0) + Number(match[1].replaceAll(',', '')));
  }
  return costs;
}

const before = selfCosts(fewer);
const after = selfCosts(more);
const perEvent = new Map();
for (const name of new Set([...before.keys(), ...after.keys()])) {
  if (name === 'PROGRAM TOTALS') continue;
  perEvent.set(name, ((after.get(name) ?? 0) - (before.get(name) ?? 0)) / Number(extra));
}
const total = ((after.get('PROGRAM TOTALS') ?? 0) - (before.get('PROGRAM TOTALS') ?? 0)) / Number(extra);
console.log(`${total.toFixed(0).padStart(8)}  instructions per event, in all`);
const rows = [...perEvent].sort((a, b) => Math.abs(b[1]) - Math.abs(a[1])).slice(0, top);
for (const [name, cost] of rows) console.log(`${cost.toFixed(0).padStart(8)}  ${name.slice(0, 140)}`);
