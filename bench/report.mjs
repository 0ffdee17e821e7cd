#!/usr/bin/env node
// The echo benchmark's reporter: reads the figures a run of bench/run.mjs recorded in
// results.json and writes the tables of RESULTS.md (between its generated markers only; the
// hand-written text around them is kept) and the charts beside it. run.mjs calls it at the end
// of a run; run on its own, it redraws a report without measuring anything again.
//
//   node bench/report.mjs                              bench/results.json -> bench/RESULTS.md, bench/charts/
//   node bench/report.mjs --results bench/out/results.json   -> bench/out/RESULTS.md, bench/out/charts/
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as vega from 'vega';
import * as vegaLite from 'vega-lite';

import { parseFlags } from './lib.mjs';
import {
  BASELINE,
  BENCH,
  CEILING,
  DISTURBED,
  LOADGEN_CPU,
  MEMORY,
  ROOT,
  SCENARIOS,
  SELECT_SKIP,
  SERVER_CPU,
  SUBJECTS,
  pointKey,
} from './scenarios.mjs';

const BEGIN = '<!-- BEGIN GENERATED: bench/run.mjs rewrites everything from here to the END marker -->';
const END = '<!-- END GENERATED -->';

// --- tables -----------------------------------------------------------------------------

export const fmtInt = (n) => Math.round(n).toLocaleString('en-US');
const fmtRatio = (r) => (Number.isFinite(r) ? `${r.toFixed(2)}×` : '–');

function fmtBytes(bytesPerS) {
  return `${(bytesPerS / 1e6).toFixed(1)} MB/s`;
}

/**
 * Finds a measurement of a subject at a point, preferring the one made for `scenarioId`
 * (the idle scenario measures its 0-idle point itself, next to the others in time).
 */
function echoLookup(results, scenarioId) {
  const byKey = new Map();
  for (const r of results.echo) {
    const own = `${r.scenario}/${r.subject}/${r.pointKey}`;
    byKey.set(own, r);
    const any = `*/${r.subject}/${r.pointKey}`;
    if (!byKey.has(any)) byKey.set(any, r);
  }
  return (subjectId, point) =>
    byKey.get(`${scenarioId}/${subjectId}/${pointKey(point)}`) ?? byKey.get(`*/${subjectId}/${pointKey(point)}`);
}

/**
 * Round trips per second per subject and point, each followed by its ratio to node:net and
 * its ratio to the C epoll server, both measured in the same run.
 */
function scenarioTable(scenario, results) {
  const get = echoLookup(results, scenario.id);
  const subjects = SUBJECTS.filter((s) => scenario.points.some((p) => get(s.id, p) || skippedAt(results, s.id, p)));
  if (subjects.length === 0) return '';
  const pointName = (p) =>
    `${p.x.toLocaleString('en-US')} ${p.x === 1 ? scenario.short.replace(/s$/, '') : scenario.short}`;
  const header = `| subject | ${scenario.points.map((p) => `${pointName(p)} | vs node:net | vs C`).join(' | ')} |`;
  const rule = `|---|${scenario.points.map(() => '---:|---:|---:').join('|')}|`;
  const ratioTo = (r, reference) => (reference && !reference.error ? r.msgsPerS / reference.msgsPerS : NaN);
  const rows = subjects.map((s) => {
    const cells = scenario.points.map((p) => {
      const r = get(s.id, p);
      if (!r) return `${skippedAt(results, s.id, p) ? 'skipped¹' : ''} | |`;
      if (r.error) return `error: ${r.error.slice(0, 60)} | |`;
      const base = get(BASELINE, p);
      const amount =
        scenario.points[0].size >= 16384 ? `${fmtInt(r.msgsPerS)} (${fmtBytes(r.bytesPerS)})` : fmtInt(r.msgsPerS);
      const disturbed = r.othersCpu > DISTURBED || (base && base.othersCpu > DISTURBED);
      return `${amount}${disturbed ? ' ²' : ''} | ${fmtRatio(ratioTo(r, base))} | ${fmtRatio(ratioTo(r, get(CEILING, p)))}`;
    });
    return `| ${s.label} | ${cells.join(' | ')} |`;
  });
  return [header, rule, ...rows].join('\n');
}

function skippedAt(results, subjectId, point) {
  return results.skipped.some((k) => k.subject === subjectId && pointKey(k.point) === pointKey(point));
}

/**
 * Microseconds of server CPU (all its threads, user + system) per round trip, and node:net's
 * figure divided by it (higher is better). Less sensitive to other work on the machine than
 * round trips per second, because CPU taken by others is not counted.
 */
function cpuTable(scenario, results) {
  const get = echoLookup(results, scenario.id);
  const subjects = SUBJECTS.filter((s) => scenario.points.some((p) => get(s.id, p) && !get(s.id, p).error));
  if (subjects.length === 0) return '';
  const header = `| subject | ${scenario.points.map((p) => `${p.x.toLocaleString('en-US')} ${p.x === 1 ? scenario.short.replace(/s$/, '') : scenario.short}`).join(' | ')} |`;
  const rule = `|---|${scenario.points.map(() => '---:').join('|')}|`;
  const rows = subjects.map((s) => {
    const cells = scenario.points.map((p) => {
      const r = get(s.id, p);
      if (!r) return skippedAt(results, s.id, p) ? 'skipped¹' : '';
      if (r.error) return 'error';
      const base = get(BASELINE, p);
      const ratio = base && !base.error ? base.cpuPerMsgUs / r.cpuPerMsgUs : NaN;
      return `${r.cpuPerMsgUs.toFixed(2)} µs · ${fmtRatio(ratio)}`;
    });
    return `| ${s.label} | ${cells.join(' | ')} |`;
  });
  return [
    "µs of server CPU (user + system, all threads) per round trip · node:net's figure ÷ this one (higher is better). " +
      'CPU that other processes took is not in it, so it holds up better than round trips per second on a busy machine; ' +
      'at 1 connection it includes the cost of waking up for every message.',
    '',
    header,
    rule,
    ...rows,
  ].join('\n');
}

/** Per measurement: how busy the server's core was, how much others took, how long accepts took. */
function detailTable(results) {
  const rows = results.echo
    .filter((r) => !r.error)
    .map((r) => {
      const label = SUBJECTS.find((s) => s.id === r.subject).label;
      const p = r.point;
      return `| ${label} | ${p.conns.toLocaleString('en-US')} | ${p.idle.toLocaleString('en-US')} | ${p.size} | ${r.serverCpu.toFixed(2)} | ${r.othersCpu.toFixed(2)} | ${r.acceptSeconds.toFixed(1)} | ${r.latencyMeanUs.toFixed(0)} | ${fmtInt(r.latencyP99Us)} |`;
    });
  if (rows.length === 0) return '';
  return [
    "<details><summary>server CPU (cores), other processes' CPU, seconds until the server had accepted every connection, round-trip latency</summary>",
    '',
    "| subject | active | idle | bytes | server CPU | others' CPU | accept s | mean RTT µs | p99 RTT µs |",
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    '</details>',
  ].join('\n');
}

function memoryTable(results) {
  if (results.memory.length === 0) return '';
  const base = results.memory.find((m) => m.subject === BASELINE && !m.error);
  const rows = results.memory.map((m) => {
    const s = SUBJECTS.find((x) => x.id === m.subject);
    if (m.error) return `| ${s.label} | error: ${m.error.slice(0, 80)} | | | |`;
    const ratio = base ? m.bytesPerConn / base.bytesPerConn : NaN;
    return `| ${s.label} | ${fmtInt(m.rssBeforeKiB)} | ${fmtInt(m.rssAfterKiB)} | ${fmtInt(m.bytesPerConn)} | ${fmtRatio(ratio)} |`;
  });
  return [
    `| subject | VmRSS before (KiB) | VmRSS with ${results.timing.memoryIdle.toLocaleString('en-US')} idle (KiB) | bytes per idle connection | vs node:net (lower is better) |`,
    '|---|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
}

function bridgeTable(results) {
  const get = echoLookup(results, 'echo64');
  const one = { conns: 1, idle: 0, size: 64 };
  const rows = [];
  for (const backend of ['select', 'poll', 'epoll']) {
    const sync = get(`asyncore-${backend}-sync`, one);
    const thread = get(`asyncore-${backend}-thread`, one);
    if (!sync || !thread || sync.error || thread.error) continue;
    const syncMean = 1e6 / sync.msgsPerS;
    const threadMean = 1e6 / thread.msgsPerS;
    rows.push(
      `| ${backend} | ${sync.latencyP50Us} | ${thread.latencyP50Us} | **${thread.latencyP50Us - sync.latencyP50Us}** | ` +
        `${syncMean.toFixed(1)} → ${threadMean.toFixed(1)} (${(threadMean - syncMean).toFixed(1)}) | ` +
        `${sync.cpuPerMsgUs.toFixed(1)} → ${thread.cpuPerMsgUs.toFixed(1)} (**${(thread.cpuPerMsgUs - sync.cpuPerMsgUs).toFixed(1)}**) |`,
    );
  }
  if (rows.length === 0) return '';
  return [
    '| backend | median RTT µs, sync | median RTT µs, thread | bridge latency µs (thread − sync) | mean RTT µs sync → thread (difference) | server CPU µs per round trip sync → thread (bridge CPU) |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
}

function goals(results) {
  const get = echoLookup(results, 'echo64');
  const getIdle = echoLookup(results, 'idle');
  const at = (conns, idle = 0) => ({ conns, idle, size: 64 });
  const ok = (id, p, lookup = get) => {
    const r = lookup(id, p);
    return r && !r.error ? r : undefined;
  };
  const msgs = (id, p, lookup = get) => ok(id, p, lookup)?.msgsPerS ?? NaN;
  // CPU efficiency as a rate: round trips per server CPU-second (higher is better)
  const eff = (id, p, lookup = get) => 1 / (ok(id, p, lookup)?.cpuPerMsgUs ?? NaN);
  const mem = (id) => results.memory.find((m) => m.subject === id && !m.error)?.bytesPerConn ?? NaN;
  const python = (f, p) => Math.max(f('python-select', p), f('python-poll', p));
  const vs = (id, p, other = BASELINE) => [msgs(id, p) / msgs(other, p), eff(id, p) / eff(other, p)];
  const rows = [
    ['6', 'echo 50 conns, loopSync + epoll vs node:net', ...vs('asyncore-epoll-sync', at(50)), 2.0],
    [
      '6',
      'echo 50 conns, loopSync + epoll vs the faster Python asyncore',
      msgs('asyncore-epoll-sync', at(50)) / python(msgs, at(50)),
      eff('asyncore-epoll-sync', at(50)) / python(eff, at(50)),
      1.3,
    ],
    ['6', 'echo 1 conn, loopSync + epoll vs node:net', ...vs('asyncore-epoll-sync', at(1)), 1.2],
    ['6', 'echo 10,000 conns, loopSync + epoll vs node:net', ...vs('asyncore-epoll-sync', at(10000)), 2.0],
    [
      '6',
      '1 active + 10,000 idle vs 0 idle, loopSync + epoll',
      msgs('asyncore-epoll-sync', at(1, 10000), getIdle) / msgs('asyncore-epoll-sync', at(1), getIdle),
      eff('asyncore-epoll-sync', at(1, 10000), getIdle) / eff('asyncore-epoll-sync', at(1), getIdle),
      0.9,
    ],
    [
      '6',
      'memory per idle conn, loopSync + epoll ÷ node:net',
      mem('asyncore-epoll-sync') / mem(BASELINE),
      NaN,
      1.0,
      'max',
    ],
    [
      '6',
      'memory per idle conn, loop() thread + epoll ÷ node:net',
      mem('asyncore-epoll-thread') / mem(BASELINE),
      NaN,
      1.0,
      'max',
    ],
    ['5', 'echo 50 conns, loop() thread + epoll vs node:net', ...vs('asyncore-epoll-thread', at(50)), 1.2],
    ['5', 'echo 1 conn, loop() thread + epoll vs node:net', ...vs('asyncore-epoll-thread', at(1)), 0.8],
  ];
  const verdict = (ratio, target, kind) =>
    !Number.isFinite(ratio) ? '–' : (kind === 'max' ? ratio <= target : ratio >= target) ? 'yes' : '**no**';
  return [
    'Measured: the ratio of round trips per second (the goal as stated). By CPU: the same ratio computed from ' +
      'round trips per second of server CPU time, which other work on the machine disturbs less.',
    '',
    '| issue | goal | target | measured | met? | by CPU | met? |',
    '|---|---|---:|---:|:---:|---:|:---:|',
    ...rows.map(([issue, what, ratio, cpuRatio, target, kind]) => {
      const bound = `${kind === 'max' ? '≤' : '≥'} ${target.toFixed(1)}×`;
      return `| ${issue} | ${what} | ${bound} | ${fmtRatio(ratio)} | ${verdict(ratio, target, kind)} | ${fmtRatio(cpuRatio)} | ${verdict(cpuRatio, target, kind)} |`;
    }),
  ].join('\n');
}

// --- charts -----------------------------------------------------------------------------

async function renderChart(spec, file) {
  const compiled = vegaLite.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  writeFileSync(file, await view.toSVG());
  await view.finalize();
}

function lineSpec(title, axisTitle, values, order) {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 520,
    height: 320,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'x', type: 'ordinal', sort: order, title: axisTitle, axis: { labelAngle: 0 } },
      y: { field: 'msgs', type: 'quantitative', title: 'round trips per second (median)' },
      color: {
        field: 'subject',
        type: 'nominal',
        sort: SUBJECTS.map((s) => s.label),
        title: 'server',
        scale: { scheme: 'tableau20' },
        legend: { labelLimit: 400 },
      },
    },
  };
}

async function writeCharts(results, chartsDir) {
  mkdirSync(chartsDir, { recursive: true });
  const written = [];
  for (const scenario of SCENARIOS.filter((s) => s.points.length > 1)) {
    const get = echoLookup(results, scenario.id);
    const values = [];
    for (const subject of SUBJECTS) {
      for (const point of scenario.points) {
        const r = get(subject.id, point);
        if (r && !r.error)
          values.push({ subject: subject.label, x: point.x.toLocaleString('en-US'), msgs: Math.round(r.msgsPerS) });
      }
    }
    if (values.length === 0) continue;
    const file = path.join(chartsDir, `${scenario.id}.svg`);
    const order = scenario.points.map((p) => p.x.toLocaleString('en-US'));
    await renderChart(lineSpec(scenario.title, scenario.axis, values, order), file);
    written.push({ title: scenario.title, file });
  }
  const memValues = results.memory
    .filter((m) => !m.error)
    .map((m) => ({ subject: SUBJECTS.find((s) => s.id === m.subject).label, bytes: Math.round(m.bytesPerConn) }));
  if (memValues.length > 0) {
    const file = path.join(chartsDir, 'memory.svg');
    await renderChart(
      {
        $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
        title: MEMORY.title,
        width: 420,
        height: 200,
        data: { values: memValues },
        mark: 'bar',
        encoding: {
          y: { field: 'subject', type: 'nominal', sort: null, title: null, axis: { labelLimit: 400 } },
          x: { field: 'bytes', type: 'quantitative', title: 'bytes of VmRSS per idle connection (median)' },
        },
      },
      file,
    );
    written.push({ title: MEMORY.title, file });
  }
  return written;
}

// --- RESULTS.md -------------------------------------------------------------------------

const HAND_WRITTEN_PLACEHOLDER = `# Echo benchmark results

## Reading these numbers

(Hand-written section: bench/run.mjs keeps everything outside its generated markers.)
`;

function generatedSection(results, charts, outFile) {
  const m = results.machine;
  const rel = (file) => path.relative(path.dirname(outFile), file);
  const parts = [];
  parts.push(
    `## Run of ${m.date.slice(0, 16).replace('T', ' ')} UTC${results.quick ? ' (quick smoke run: not for quoting)' : ''}`,
  );
  parts.push(
    [
      `Command: \`${results.command}\` (package commit ${m.commit}; ${m.builds}).`,
      `Each measurement: a fresh server, the load generator opens its connections, waits until the server accepted all of them, ` +
        `warms up ${results.timing.warmup} s, then measures ${results.timing.runs} consecutive window(s) of ${results.timing.duration} s; the tables show the median window.`,
      'Tables: round trips per second at each point, then its ratio to node:net and its ratio to the C epoll server, ' +
        'both measured in the same run (higher is better).',
      '',
      '| machine | |',
      '|---|---|',
      `| cores (nproc) | ${m.nproc} |`,
      `| CPU | ${m.cpu} |`,
      `| memory | ${m.memory} |`,
      `| kernel | ${m.kernel} |`,
      `| node | ${m.node} |`,
      `| python | ${m.python} |`,
      `| C compiler | ${m.cc} (\`-O2\`) |`,
      `| fd limit (ulimit -n) | ${m.fdLimit} |`,
      `| uptime before | ${m.uptimeBefore} |`,
      `| uptime after | ${results.uptimeAfter} |`,
      `| pinning | server on CPU ${SERVER_CPU}, load generator on CPU ${LOADGEN_CPU} (\`taskset\`): different cores |`,
      `| wall time | ${(results.wallSeconds / 60).toFixed(1)} min |`,
    ].join('\n'),
  );
  const load = Number(/load average: ([\d.]+)/.exec(m.uptimeBefore)?.[1] ?? NaN);
  if (load > 0.5) {
    parts.push(
      `**The machine was not quiet**: the 1-minute load average was ${load} before the run (other work, ` +
        'such as test suites, shares these 2 cores). Treat small differences with suspicion.',
    );
  }
  if (!results.quick) parts.push('### Goals (issues 5 and 6)\n\n' + goals(results));
  for (const scenario of SCENARIOS) {
    const table = scenarioTable(scenario, results);
    if (table) parts.push(`### ${scenario.title}\n\n${table}`);
  }
  if (results.skipped.length > 0) {
    parts.push(`¹ ${SELECT_SKIP}: ${[...new Set(results.skipped.map((k) => k.subject))].join(', ')}.`);
  }
  parts.push(
    `² Disturbed: during this measurement (or its node:net reference) other processes used more than ${DISTURBED} of a core ` +
      'on the two cores (median over the windows; from /proc/stat less the server and the load generator). ' +
      "Every measurement's figures are in results.json.",
  );
  for (const scenario of SCENARIOS.filter((sc) => sc.id !== 'idle')) {
    const table = cpuTable(scenario, results);
    if (table) parts.push(`### Server CPU per round trip: ${scenario.title.replace(/^Echo, /, '')}\n\n${table}`);
  }
  const detail = detailTable(results);
  if (detail) parts.push(`### Server CPU and accept time per measurement\n\n${detail}`);
  const memory = memoryTable(results);
  if (memory) {
    parts.push(
      `### ${MEMORY.title}\n\n` +
        'VmRSS from /proc/PID/status of the server, after it started and settled, and again once it accepted ' +
        `all ${results.timing.memoryIdle.toLocaleString('en-US')} connections (counted in /proc/PID/fd) and 0.5 s passed.\n\n${memory}`,
    );
  }
  const bridge = bridgeTable(results);
  if (bridge) {
    parts.push(
      '### Cost of one bridge round trip (issue 5)\n\n' +
        'With one connection each round trip is one loop iteration: its round-trip time is one iteration of the ' +
        'server plus the load generator, the kernel and the wake-ups, and all of that but the iteration is the ' +
        'same in sync and thread mode. Thread mode adds one hand-off native thread → JS (batch delivery through ' +
        'the thread-safe function) and one JS → native thread (resume), so thread − sync is the cost of one bridge ' +
        'round trip. The bold latency figure uses the median round-trip time (1 µs buckets; robust to other ' +
        'work on the machine), the mean is shown beside it. The last column is the same difference in server ' +
        `CPU time per round trip: the bridge's CPU cost. Both threads of the server share CPU ${SERVER_CPU}, so ` +
        `the figures include the context switches between them.\n\n${bridge}`,
    );
  }
  if (charts.length > 0) parts.push('### Charts\n\n' + charts.map((c) => `![${c.title}](${rel(c.file)})`).join('\n\n'));
  if (results.errors.length > 0) {
    parts.push('### Errors\n\n' + results.errors.map((e) => `- ${e}`).join('\n'));
  }
  return parts.join('\n\n');
}

function writeResults(outFile, section) {
  const existing = existsSync(outFile) ? readFileSync(outFile, 'utf8') : HAND_WRITTEN_PLACEHOLDER;
  const block = `${BEGIN}\n\n${section}\n\n${END}`;
  const begin = existing.indexOf(BEGIN);
  const end = existing.indexOf(END);
  const text =
    begin >= 0 && end > begin
      ? existing.slice(0, begin) + block + existing.slice(end + END.length)
      : `${existing.trimEnd()}\n\n${block}\n`;
  writeFileSync(outFile, text);
}

// --- entry points -----------------------------------------------------------------------

/**
 * Writes the charts (into charts/ beside `outFile`) and the generated section of `outFile`
 * from a run's results, as results.json holds them. Returns how many charts it drew.
 */
export async function writeReport(results, outFile) {
  const charts = await writeCharts(results, path.join(path.dirname(outFile), 'charts'));
  writeResults(outFile, generatedSection(results, charts, outFile));
  return charts.length;
}

const USAGE = `usage: node bench/report.mjs [--results FILE] [--out FILE]

  --results FILE     the figures of a run (default bench/results.json)
  --out FILE         the markdown to write (default RESULTS.md beside the results file);
                     charts go to charts/ beside it
  -h, --help         this text`;

async function main() {
  const values = parseFlags(
    {
      results: { type: 'string', default: path.join(BENCH, 'results.json') },
      out: { type: 'string' },
    },
    USAGE,
  );
  if (values === null) return;
  const resultsFile = path.resolve(values.results);
  const outFile = path.resolve(values.out ?? path.join(path.dirname(resultsFile), 'RESULTS.md'));
  const results = JSON.parse(readFileSync(resultsFile, 'utf8'));
  const charts = await writeReport(results, outFile);
  process.stderr.write(
    `wrote ${path.relative(ROOT, outFile)} and ${charts} chart(s) from ${path.relative(ROOT, resultsFile)}\n`,
  );
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    process.stderr.write(`bench/report.mjs: ${err.stack ?? err}\n`);
    process.exit(1);
  });
}
