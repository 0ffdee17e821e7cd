// What the benchmark scripts share: their flag parsing, waiting for a line of a child's output,
// the median, and what /proc says about a process (its CPU time, resident memory, open
// descriptors) and about the machine (both cores' busy time).
// Linux only, like the benchmarks.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { parseArgs } from 'node:util';

/** The median; of an even count, the mean of the two middle values. */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Clock ticks per second, the unit of the times in /proc/PID/stat and /proc/stat. */
export const TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** CPU seconds a process has used so far, user and system, all its threads. */
export function cpuSeconds(pid) {
  // Fields after the ")" of the command name (which may hold spaces): state is field 3,
  // utime 14, stime 15.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / TICKS, system: Number(fields[12]) / TICKS };
}

/** CPU seconds all processes have used so far: both cores' busy time, from /proc/stat. */
export function machineBusySeconds() {
  // "cpu  user nice system idle iowait irq softirq steal ...", in clock ticks.
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - fields[3] - fields[4]) / TICKS;
}

/** A process's resident memory (VmRSS) in KiB; throws when /proc has no such line. */
export function vmRssKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]);
}

/** How many descriptors a process holds open. */
export function fdCount(pid) {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * CPU seconds a process and its direct children have used so far (a server with worker
 * processes, such as nginx's master and its worker). Children that exited are not counted.
 */
export function cpuSecondsWithChildren(pid) {
  const total = cpuSeconds(pid);
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    const children = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
    for (const child of children === '' ? [] : children.split(/\s+/)) {
      try {
        const own = cpuSeconds(Number(child));
        total.user += own.user;
        total.system += own.system;
      } catch {
        // exited meanwhile
      }
    }
  }
  return total;
}

/**
 * A script's flags: `options` (parseArgs' form) and --help/-h, strictly. An unknown or malformed
 * flag prints the error and `usage` to stderr and exits 2; --help prints `usage` and returns null,
 * so that the script ends there.
 */
export function parseFlags(options, usage) {
  try {
    const { values } = parseArgs({
      options: { ...options, help: { type: 'boolean', short: 'h', default: false } },
      strict: true,
    });
    if (!values.help) return values;
  } catch (err) {
    process.stderr.write(`${err.message}\n\n${usage}\n`);
    process.exit(2);
  }
  process.stdout.write(`${usage}\n`);
  return null;
}

/**
 * A script's flags from their defaults, parsed strictly by parseFlags: a number default makes a
 * flag that comes back as a number (a value that is not one prints the error and `usage` to
 * stderr and exits 2), a string default a string flag, `false` a boolean flag, and `undefined` a
 * string flag without a default. --help prints `usage` and exits 0.
 */
export function flags(defaults, usage) {
  const options = {};
  for (const [name, value] of Object.entries(defaults)) {
    if (typeof value === 'boolean') options[name] = { type: 'boolean', default: value };
    else options[name] = value === undefined ? { type: 'string' } : { type: 'string', default: String(value) };
  }
  const values = parseFlags(options, usage);
  if (values === null) process.exit(0);
  for (const [name, value] of Object.entries(defaults)) {
    if (typeof value !== 'number') continue;
    values[name] = Number(values[name]);
    if (!Number.isFinite(values[name])) {
      process.stderr.write(`--${name} takes a number\n\n${usage}\n`);
      process.exit(2);
    }
  }
  return values;
}

/** Resolves with the first match of `pattern` in a stream's text; rejects after `ms` without one. */
export function waitFor(stream, pattern, what, ms = 20_000) {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`${what}: no ${pattern} in ${text}`)), ms);
    stream.on('data', (chunk) => {
      text += chunk.toString();
      const match = pattern.exec(text);
      if (match !== null) {
        clearTimeout(timer);
        resolve(match);
      }
    });
  });
}
