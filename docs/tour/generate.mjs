// Generates docs/how-it-works.md and its charts (docs/tour/*.svg) from real runs of the package:
// the CLIs as programs, the library's `trace` option, strace, and Python 3.11's asyncore.
//
//   npm run build:ts && node docs/tour/generate.mjs            # the full tour (a few minutes)
//   node docs/tour/generate.mjs --short --out /tmp/tour         # small counts, a scratch directory
//
// Nothing in the document is typed by hand where a run can produce it: trace lines are captured
// from `asyncore-echo --trace`, system-call counts from `strace -c -f`, the FD_SETSIZE error
// from a real RangeError, timings from clients that check every byte, and source links from
// searching the sources for anchor text (so line numbers follow the code). The short mode is
// what test/73.tour.test.ts runs: it checks that every section and chart is still produced.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import * as vega from 'vega';
import * as vegaLite from 'vega-lite';

const TOUR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(TOUR, '..', '..');
const ECHO_CLI = path.join(ROOT, 'dist', 'cli', 'echo.js');

const { values: flags } = parseArgs({
  options: {
    short: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const SHORT = flags.short;
const OUT = path.resolve(flags.out ?? path.join(ROOT, 'docs'));
const CHARTS = path.join(OUT, 'tour');

// Counts: the full tour, and the short mode the test runs (small, same code paths).
const COUNTS = SHORT
  ? {
      strace: 300,
      idlePoints: [0, 20],
      idleBigPoints: [60],
      idleMessages: 100,
      idleBigMessages: 50,
      idleRounds: 1,
      warmup: 10,
      bridgeMessages: 200,
      timelineIdle: 50,
      timelineMessages: 30,
    }
  : {
      strace: 10_000,
      idlePoints: [0, 100, 250, 500, 900],
      idleBigPoints: [2000, 5000],
      idleMessages: 2000,
      idleBigMessages: 100,
      idleRounds: 10,
      warmup: 300,
      bridgeMessages: 5000,
      timelineIdle: 1000,
      timelineMessages: 200,
    };
const TIMELINE_ITERATIONS = 40;

const log = (message) => process.stderr.write(`tour: ${message}\n`);

// --- running programs ---------------------------------------------------------------------

/** Runs a program to its end; resolves with its output and exit code (bounded by `ms`). */
function run(command, args, ms = 180_000) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`${command} ${args.join(' ')} exited ${code ?? signal}: ${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** Starts a server that prints "listening on HOST:PORT"; resolves once it has. */
function startServer(command, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const server = { child, port: 0, stdout: '', stderr: '', exited: null };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not start: ${server.stderr}`));
    }, 15_000);
    child.stderr.on('data', (d) => (server.stderr += d));
    child.stdout.on('data', (d) => {
      server.stdout += d;
      const m = /listening on [^\n]*:(\d+)/.exec(server.stdout);
      if (m !== null && server.port === 0) {
        clearTimeout(timer);
        server.port = Number(m[1]);
        resolve(server);
      }
    });
    server.exited = new Promise((res) => child.on('close', (code, signal) => res(code ?? signal)));
    void server.exited.then((status) => {
      clearTimeout(timer);
      if (server.port === 0) reject(new Error(`${command} ${args.join(' ')} exited ${status}: ${server.stderr}`));
    });
    child.on('error', reject);
  });
}

/** SIGTERM, then the exit (SIGKILL if it does not come within 10 s). */
async function stopServer(server) {
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 10_000);
  const status = await server.exited;
  clearTimeout(timer);
  return status;
}

/** docs/tour/client.py: `idle` silent connections, then `messages` echoed round trips. */
async function client(port, { idle = 0, messages, size = 64, warmup = 0, rounds = 1 }) {
  const { stdout } = await run('python3', [
    path.join(TOUR, 'client.py'),
    String(port),
    '--idle',
    String(idle),
    '--messages',
    String(messages),
    '--size',
    String(size),
    '--warmup',
    String(warmup),
    '--rounds',
    String(rounds),
  ]);
  return JSON.parse(stdout);
}

/** The package's echo CLI, as `asyncore-echo` runs it. */
const echoServer = (backend, mode = 'sync', extra = []) =>
  startServer(process.execPath, [ECHO_CLI, '--backend', backend, '--mode', mode, '--port', '0', ...extra]);

/** Python 3.11's asyncore with the same echo handler: the benchmarks' Python peer. */
const pythonServer = (usePoll) =>
  startServer('python3', [
    '-W',
    'ignore',
    path.join(ROOT, 'bench', 'peers', 'py-echo.py'),
    '--port',
    '0',
    '--backend',
    usePoll ? 'poll' : 'select',
  ]);

/** Counts the system calls of every thread of `pid` while `work()` runs (strace -c -f -p). */
async function straceCount(pid, work) {
  const file = path.join(CHARTS, `.strace-${pid}.txt`);
  const strace = spawn('strace', ['-c', '-f', '-p', String(pid), '-o', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`strace did not attach: ${stderr}`)), 10_000);
    strace.stderr.on('data', (d) => {
      stderr += d;
      if (/attached/.test(stderr)) {
        clearTimeout(timer);
        resolve();
      }
    });
    strace.on('error', reject);
  });
  const result = await work();
  const exited = new Promise((resolve) => strace.on('close', resolve));
  strace.kill('SIGINT');
  await exited;
  const counts = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?([a-z_0-9]+)\s*$/.exec(line);
    if (m !== null && m[2] !== 'total') counts[m[2]] = Number(m[1]);
  }
  rmSync(file, { force: true });
  return { counts, result };
}

async function record(backend, idle, messages) {
  const { stdout } = await run(process.execPath, [
    path.join(TOUR, 'record.mjs'),
    '--backend',
    backend,
    '--idle',
    String(idle),
    '--messages',
    String(messages),
  ]);
  return JSON.parse(stdout);
}

// --- charts -------------------------------------------------------------------------------

const charts = [];

async function chart(name, spec) {
  const compiled = vegaLite.compile({ $schema: 'https://vega.github.io/schema/vega-lite/v5.json', ...spec }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const file = path.join(CHARTS, `${name}.svg`);
  writeFileSync(file, await view.toSVG());
  await view.finalize();
  charts.push(file);
  return `tour/${name}.svg`;
}

// --- source anchors -----------------------------------------------------------------------

/** A link to the first line of `file` (from the root) that contains `text`; throws if none does. */
function source(file, text, label = text) {
  const lines = readFileSync(path.join(ROOT, file), 'utf8').split('\n');
  const index = lines.findIndex((line) => line.includes(text));
  if (index < 0) throw new Error(`anchor not found: ${JSON.stringify(text)} in ${file}`);
  return `[\`${label}\`](../${file}#L${index + 1}) (${file}:${index + 1})`;
}

// --- formatting ---------------------------------------------------------------------------

const fmt = (n, digits = 0) =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const set = (fds) => `{${fds.join(', ')}}`;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const EVENTS = [
  [1, 'IN'],
  [2, 'PRI'],
  [4, 'OUT'],
  [8, 'ERR'],
  [16, 'HUP'],
  [32, 'NVAL'],
];
const events = (bits) =>
  EVENTS.filter(([bit]) => bits & bit)
    .map(([, name]) => name)
    .join('|');
const reproduce = (...commands) => `> Reproduce: ${commands.map((c) => `\`${c}\``).join(', then ')}`;

// --- the sections -------------------------------------------------------------------------

async function sectionSelectTrace() {
  log('1. one echo client under select, traced');
  const server = await echoServer('select', 'sync', ['--trace']);
  const answer = await client(server.port, { messages: 3 });
  await stopServer(server);
  const traceLines = server.stderr.trimEnd();
  const recorded = await record('select', 0, 3);
  const { listenerFd, busyFd } = recorded;
  const rows = recorded.traces.map(
    (t) =>
      `| ${t.iteration} | ${set(t.read)} | ${set(t.write)} | ${set(t.except)} | ` +
      `${t.ready.map((r) => `${r.fd}: ${events(r.events)}`).join(', ') || '(timeout)'} | ${fmt(t.waitMs, 3)} | ${fmt(t.dispatchMs, 3)} |`,
  );
  return `## 1. One echo client under \`select()\`

A readiness loop does three things per iteration, as Python's \`asyncore.loop()\` does:

1. **ask** every dispatcher \`readable()\` and \`writable()\`, and build three sets of fds: those
   to watch for reading, for writing, and for exceptional conditions;
2. **wait**: one system call, \`select(nfds, read, write, except, timeout)\`, that sleeps until at
   least one fd in the sets is ready (or the timeout passes), and overwrites the three sets with
   the fds that are;
3. **dispatch**: for each ready fd, call its dispatcher's \`handleRead()\` / \`handleWrite()\` /
   \`handleExpt()\` (for a listening socket, readable means *a connection is waiting*:
   \`handleAccept()\`).

Here is \`asyncore-echo\` doing exactly that, with \`--trace\` printing one line per iteration on
stderr, while a Python client (\`docs/tour/client.py\`) connects, sends ${answer.messages} messages of
64 bytes one at a time (each waits for its echo), and closes:

\`\`\`console
$ node dist/cli/echo.js --backend select --port 0 --trace
${server.stdout.trim()}
${traceLines}
\`\`\`

${reproduce('node dist/cli/echo.js --backend select --port 0 --trace', 'python3 docs/tour/client.py PORT --messages 3')}

Besides the listener and the connection, the CLI watches one more fd for reading: the pipe
through which SIGINT and SIGTERM arrive, so that Ctrl-C can stop a loop that is blocked inside
\`select()\`. Its last iteration is that pipe becoming readable: the tour stopping the server
with SIGTERM.

The same exchange in a second run, recorded with the library's \`trace\` option (\`loopSync({ backend: 'select', trace })\`,
\`docs/tour/record.mjs\`: README's 20-line echo server), laid out as the three sets. fd ${listenerFd}
is the listening socket, fd ${busyFd} the client's connection:

| iteration | read set | write set | except set | \`select()\` answered | waited (ms) | dispatch (ms) |
|---|---|---|---|---|---|---|
${rows.join('\n')}

${reproduce('node docs/tour/record.mjs --backend select --messages 3')}

How to read it:

- The first wait holds only the listener: there is nothing else to watch. \`select()\` answers
  "fd ${listenerFd} readable" when the client connects; dispatching it runs \`handleAccept()\`, which
  creates the connection's dispatcher, and from the next iteration fd ${busyFd} is in the read set.
- Each message is one iteration: fd ${busyFd} becomes readable, \`handleRead()\` calls \`recv()\` and
  \`send()\`s the bytes back. The **write set stays empty**: \`DispatcherWithSend\` is \`writable()\`
  only while it has unsent bytes (\`outBuffer\`), and a 64-byte echo always fits in the socket's
  send buffer at once. Asking for writability when there is nothing to write would make
  \`select()\` return immediately, every time: a busy loop.
- The except set repeats the read set: Python's \`asyncore.poll()\` puts every readable *or*
  writable fd in it, to catch out-of-band data (\`handleExpt()\`); the package does the same.
- The last iteration is the client closing: the fd is readable, \`recv()\` returns 0 bytes (end of
  file), and the dispatcher's \`handleClose()\` closes it.
- "waited" is the time inside \`select()\`: long for the first (waiting for the client to start),
  tiny afterwards (the next message is already there or arrives within microseconds).
`;
}

const STRACE_CONFIGS = [
  { label: 'select', backend: 'select', mode: 'sync' },
  { label: 'poll', backend: 'poll', mode: 'sync' },
  { label: 'epoll', backend: 'epoll', mode: 'sync' },
  { label: 'epoll, loop() thread', backend: 'epoll', mode: 'thread' },
];

async function sectionStrace() {
  log('2. system calls per 10,000 messages (strace -c -f)');
  const results = [];
  for (const config of STRACE_CONFIGS) {
    const server = await echoServer(config.backend, config.mode);
    const { counts } = await straceCount(server.child.pid, () => client(server.port, { messages: COUNTS.strace }));
    await stopServer(server);
    results.push({ ...config, counts });
  }
  const scale = 10_000 / COUNTS.strace;
  // Every system call that at least one configuration makes once per 100 messages or more.
  const names = [...new Set(results.flatMap((r) => Object.keys(r.counts)))]
    .filter((name) => results.some((r) => (r.counts[name] ?? 0) * scale >= 100))
    .sort(
      (a, b) => Math.max(...results.map((r) => r.counts[b] ?? 0)) - Math.max(...results.map((r) => r.counts[a] ?? 0)),
    );
  const total = (r) => Object.values(r.counts).reduce((a, b) => a + b, 0);
  const rows = names.map(
    (name) => `| \`${name}\` | ${results.map((r) => fmt((r.counts[name] ?? 0) * scale)).join(' | ')} |`,
  );
  rows.push(`| **all system calls** | ${results.map((r) => `**${fmt(total(r) * scale)}**`).join(' | ')} |`);
  const values = results.flatMap((r) =>
    names.map((name) => ({ config: r.label, syscall: name, calls: Math.round((r.counts[name] ?? 0) * scale) })),
  );
  const svg = await chart('syscalls', {
    title: `System calls of the echo server per 10,000 messages (one client)`,
    width: 460,
    height: 180,
    data: { values },
    mark: 'bar',
    encoding: {
      y: { field: 'config', type: 'nominal', sort: STRACE_CONFIGS.map((c) => c.label), title: null },
      x: { field: 'calls', type: 'quantitative', title: 'system calls (all threads)', stack: 'zero' },
      color: { field: 'syscall', type: 'nominal', sort: names, scale: { scheme: 'tableau10' } },
    },
  });
  const perMessage = (r, name) => fmt(((r.counts[name] ?? 0) * scale) / 10_000, 2);
  // The wait's name as strace shows it: glibc implements select() with pselect6 and may use ppoll.
  const waitCall = (r, candidates) =>
    candidates.reduce((best, name) => ((r.counts[name] ?? 0) > (r.counts[best] ?? 0) ? name : best));
  const [sel, pol, ep, th] = results;
  const waits = [
    [sel, waitCall(sel, ['select', 'pselect6'])],
    [pol, waitCall(pol, ['poll', 'ppoll'])],
    [ep, waitCall(ep, ['epoll_wait', 'epoll_pwait'])],
  ];
  return `## 2. The same through \`poll()\` and \`epoll\`: system calls per 10,000 messages

\`select()\` is one of three ways the package waits. \`poll()\` takes an array of
\`{ fd, events }\` instead of three bitmaps; \`epoll\` keeps the interest set *inside the kernel*
(\`epoll_ctl\` adds, changes or removes one fd) so each wait (\`epoll_wait\`) passes nothing in
and gets only the ready fds back. What does one echo client cost in system calls on each?
\`strace -c -f\` counts every system call of every thread of the server while the client sends
${fmt(COUNTS.strace)} messages (scaled to 10,000${scale === 1 ? '' : ` from ${fmt(COUNTS.strace)}`}; connect and close included):

| system call | ${results.map((r) => r.label).join(' | ')} |
|---|${results.map(() => '---:').join('|')}|
${rows.join('\n')}

![System calls per 10,000 messages](${svg})

${reproduce(
  'node dist/cli/echo.js --backend BACKEND [--mode thread] --port 0',
  'strace -c -f -p SERVER_PID -o counts.txt',
  `python3 docs/tour/client.py PORT --messages ${COUNTS.strace}`,
  'Ctrl-C strace',
)}

What the table says:

- Per message, every backend makes one wait (${waits.map(([r, name]) => `\`${name}\`: ${perMessage(r, name)}`).join(', ')}
  per message), one \`recvfrom\` (${perMessage(ep, 'recvfrom')}) and one \`sendto\` (${perMessage(ep, 'sendto')}) (Node's libuv is not involved:
  the package calls \`recv(2)\` and \`send(2)\` itself, and glibc implements them as
  \`recvfrom\`/\`sendto\`; \`select()\` shows up as \`pselect6\`). That is the least any readiness
  loop can do.
- \`epoll_ctl\` is not per message: the whole epoll run made ${fmt(ep.counts.epoll_ctl ?? 0)} of them (unscaled),
  when the connection arrived and when it left, because the package keeps each fd's interest mask and tells the kernel only about changes
  (${source('native/reactor.cc', 'int Reactor::SetInterest(', 'Reactor::SetInterest')}). \`select()\` and \`poll()\` have no such call: they pass
  the whole interest set on every wait instead, which is why they are O(watched fds) per wait
  (section 4).
- \`loop()\` runs the same waits on a native thread; the extra calls in its column
  (\`futex\`, \`write\` / \`read\` of an eventfd, the \`epoll_pwait\` of Node's own loop) are the thread
  bridge handing each batch to JavaScript and back (section 5): ${fmt(((total(th) - total(ep)) * scale) / 10_000, 1)} more
  system calls per message than \`loopSync\` on the same backend.
`;
}

async function sectionFdSetsize() {
  log('3. FD_SETSIZE');
  const { stdout } = await run(process.execPath, [path.join(TOUR, 'fd-setsize.mjs')]);
  const result = JSON.parse(stdout);
  const lines = Object.entries(result.backends).map(
    ([backend, r]) =>
      `${backend.padEnd(6)} ${r.ok ? `watched fd ${result.fd}, accepted ${r.accepted} connection` : `threw ${r.error}`}`,
  );
  return `## 3. Why \`select()\` stops at FD_SETSIZE, and what the package does

\`select()\` takes its sets as \`fd_set\`s: fixed bitmaps of \`FD_SETSIZE\` bits (1024 on Linux),
bit *n* for fd *n*. There is no bit for fd 1024: \`FD_SET(1024, &set)\` writes past the end of
the bitmap, into whatever memory follows it. C does not check; a fortified glibc aborts the
process, an unfortified one corrupts memory silently. A server that reaches 1,024 open files
(connections, log files, pipes) therefore cannot use \`select()\` at all, whatever the number of
*watched* fds: the limit is on the fd's **number**.

The package checks before it touches a set: the select backend refuses the fd
(${source('native/backend_select.cc', 'if (fd >= FD_SETSIZE) return -ERANGE;', 'fd >= FD_SETSIZE')}), and the loop turns that
into a \`RangeError\` that names the fd and the way out
(${source('src/backends.ts', 'is beyond what', 'RangeError')}). From a real run
(\`docs/tour/fd-setsize.mjs\` opens sockets until one gets fd ${result.fd}, listens on it, has python3
connect, and runs one iteration with each backend):

\`\`\`console
$ node docs/tour/fd-setsize.mjs
${lines.join('\n')}
\`\`\`

${reproduce('node docs/tour/fd-setsize.mjs')}

\`poll()\` and \`epoll\` have no such limit (an array of \`pollfd\`, a kernel-side set): the same
listener on fd ${result.fd} accepts its connection. Python 3.11's \`select.select()\` refuses the
same fd number too, with a less helpful message:

\`\`\`console
${result.python}
\`\`\`

Python's \`asyncore.loop()\` uses \`select\` unless told \`use_poll=True\`; so does the package
(\`backend: 'select'\` is the default, as in Python), which is why the error suggests the others.
`;
}

async function sectionIdle() {
  log('4. the cost of idle connections');
  const subjects = [
    { label: 'asyncore select', start: () => echoServer('select'), select: true },
    { label: 'asyncore poll', start: () => echoServer('poll') },
    { label: 'asyncore epoll', start: () => echoServer('epoll') },
    { label: 'Python 3.11 asyncore select', start: () => pythonServer(false), select: true },
    { label: 'Python 3.11 asyncore poll', start: () => pythonServer(true) },
  ];
  const values = [];
  for (const subject of subjects) {
    const server = await subject.start();
    const points = subject.select ? COUNTS.idlePoints : [...COUNTS.idlePoints, ...COUNTS.idleBigPoints];
    for (const idle of points) {
      const messages = idle > 1000 ? COUNTS.idleBigMessages : COUNTS.idleMessages;
      const warmup = Math.min(COUNTS.warmup, messages);
      const r = await client(server.port, { idle, messages, warmup, rounds: COUNTS.idleRounds });
      values.push({ subject: subject.label, idle, us: Math.round(r.usPerRoundTrip * 10) / 10 });
    }
    await stopServer(server);
  }
  const svg = await chart('idle-cost', {
    title: 'One busy connection beside idle ones: time per round trip',
    width: 520,
    height: 320,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'idle', type: 'quantitative', title: 'idle connections (open, silent)' },
      y: { field: 'us', type: 'quantitative', title: 'µs per round trip (log scale)', scale: { type: 'log' } },
      color: {
        field: 'subject',
        type: 'nominal',
        sort: subjects.map((s) => s.label),
        title: 'server',
        legend: { labelLimit: 300 },
      },
    },
  });
  const idles = [...new Set(values.map((v) => v.idle))].sort((a, b) => a - b);
  const cell = (label, idle) => {
    const v = values.find((x) => x.subject === label && x.idle === idle);
    return v === undefined ? '–' : fmt(v.us, 1);
  };
  const rows = subjects.map((s) => `| ${s.label} | ${idles.map((i) => cell(s.label, i)).join(' | ')} |`);
  const maxSmall = Math.max(...COUNTS.idlePoints);
  return `## 4. The cost of idle connections, per backend

A chat server or a proxy holds many connections that are quiet most of the time. Does an idle
connection cost anything? Here one client opens *N* idle connections (each proves it was
accepted with a one-byte echo, then stays silent), then runs round trips on one more
connection: ${fmt(COUNTS.idleMessages)} of them (${fmt(COUNTS.idleBigMessages)} above 1,000 idle) in ${COUNTS.idleRounds} timed round${COUNTS.idleRounds > 1 ? 's' : ''}, after up to
${fmt(COUNTS.warmup)} untimed ones, and reports the time per round trip of the fastest round (the
machine is shared: other work delays some rounds, and the least disturbed one is the closest to
the cost of the loop itself). Each round trip is one
loop iteration of the server, so the curve is the iteration cost as the idle set grows (plus a
constant: the client's own Python and the loopback). The y axis is logarithmic: the costs span
several orders of magnitude.

![Time per round trip against idle connections](${svg})

| µs per round trip at N idle | ${idles.map((i) => fmt(i)).join(' | ')} |
|---|${idles.map(() => '---:').join('|')}|
${rows.join('\n')}

${reproduce(
  'node dist/cli/echo.js --backend BACKEND --port 0',
  `python3 docs/tour/client.py PORT --idle N --messages ${COUNTS.idleMessages} --warmup ${COUNTS.warmup} --rounds ${COUNTS.idleRounds}`,
)}; Python's server: \`python3 -W ignore bench/peers/py-echo.py --port 0 --backend select|poll\`. \`select\` is measured up to ${fmt(maxSmall)} idle
connections only: near 1,000 the server's fds pass 1,024 (section 3).

Why the curves differ:

- **select** passes three bitmaps up to the highest fd on every wait; the kernel checks every
  bit, and the loop scans the answer bit by bit. Cost grows with the highest fd number.
- **poll** passes the array of every watched \`pollfd\` on every wait; the kernel polls each one.
  Cost grows with the number of watched fds.
- **epoll** keeps the set in the kernel; a wait costs the number of *ready* fds. An idle
  connection costs nothing per iteration: the line stays flat, up to the noise of a shared
  machine.
- **Python's asyncore** pays all of the above *and* calls \`readable()\` and \`writable()\` on every
  dispatcher in Python, every iteration (\`poll2\` even builds a new \`select.poll()\` object each
  time). The package asks its built-in predicates only when their state changes (README,
  "Overriding \`readable()\` and \`writable()\`"), so the JavaScript side of an iteration is O(ready),
  and what remains is the kernel's part, which is the backend's choice.
`;
}

async function sectionBridge(stracedThread) {
  log('5. loopSync vs loop()');
  const perMode = {};
  for (const mode of ['sync', 'thread']) {
    const server = await echoServer('epoll', mode);
    const options = { messages: COUNTS.bridgeMessages, warmup: COUNTS.warmup, rounds: COUNTS.idleRounds };
    perMode[mode] = (await client(server.port, options)).usPerRoundTrip;
    await stopServer(server);
  }
  const added = perMode.thread - perMode.sync;
  return `## 5. \`loopSync()\` vs \`loop()\`: the thread bridge

\`loopSync()\` is Python's \`asyncore.loop()\`: the wait blocks the calling thread, so nothing else
in Node runs (no timers, no promises, no \`node:net\`) until the map is empty. \`loop()\` moves the
one blocking step, the wait, to a native thread, and keeps the other two (asking the
predicates, dispatching) on the JavaScript thread, so handlers still run one at a time with
Python's semantics while Node's own loop keeps running.

\`\`\`
  JavaScript thread                          polling thread (native/bridge.cc)
  -----------------                          ---------------------------------
  updateInterest(): setInterest(fd, mask)
     for each fd whose mask changed
  resume(timeoutMs)          ─────────────▶  reactor.Poll(timeoutMs)   (select/poll/epoll_wait)
                                             result, waitMs, woken
  onBatch(result, waitMs, woken)  ◀────────  tsfn.NonBlockingCall()     (one per wait)
    ready fds already in the Int32Array
  dispatch handlers, run due timers
  (repeat)                                   parked on a condition variable
\`\`\`

What crosses per iteration: one \`resume(timeoutMs)\` (a mutex and a condition variable:
${source('native/bridge.cc', 'core->turn = LoopCore::Turn::kPolling;', 'Resume')}), one thread-safe function call back
(${source('native/bridge.cc', 'batches.NonBlockingCall(nullptr)', 'NonBlockingCall')}: libuv wakes Node's loop through its own eventfd),
three numbers (\`result\`, \`waitMs\`, \`woken\`), and the ready list as \`[fd, events]\` pairs, copied
on the JavaScript thread just before \`onBatch\` runs into one \`Int32Array\` registered once
(${source('native/bridge.cc', 'std::nullptr_t*) {', 'DeliverBatch')}). Interest changes
cross the other way as \`setInterest(fd, mask)\` calls, only for fds whose mask changed. The two
threads take turns (\`LoopCore::Turn\`), so the reactor is never touched by both at once and
needs no lock of its own. Interest that changes while the thread waits (a Node timer calls
\`send()\`) wakes it through the reactor's eventfd (${source('native/reactor.cc', 'void Reactor::Wake()', 'Reactor::Wake')}).

What it costs, measured: one client, ${fmt(COUNTS.bridgeMessages)} round trips on \`epoll\` (after ${fmt(COUNTS.warmup)} untimed ones) in ${COUNTS.idleRounds} timed round${COUNTS.idleRounds > 1 ? 's' : ''}, the fastest round (as in section 4):

| mode | µs per round trip |
|---|---:|
| \`loopSync()\` (\`--mode sync\`) | ${fmt(perMode.sync, 1)} |
| \`loop()\` (\`--mode thread\`) | ${fmt(perMode.thread, 1)} |
| the bridge, per iteration | ${fmt(added, 1)} |

${reproduce('node dist/cli/echo.js --backend epoll --mode sync|thread --port 0', `python3 docs/tour/client.py PORT --messages ${COUNTS.bridgeMessages} --warmup ${COUNTS.warmup} --rounds ${COUNTS.idleRounds}`)}

In system calls (section 2), the thread costs ${stracedThread} per message more than \`loopSync()\`: the
hand-over wakes a sleeping thread twice per iteration (futex), and Node's own loop must wake up
(its \`epoll_pwait\` and eventfd) to run the batch. That cost is paid once per iteration,
however many fds are ready, so it matters most for one ping-pong connection like this one and
is spread thin when each wait returns many ready fds. The benchmark (\`bench/RESULTS.md\`, "asyncore sync" and "asyncore thread" rows)
measures the same difference at 1 and 50 connections.
`;
}

function sectionBytePath() {
  log('6. the path of one byte');
  const steps = [
    [
      'The kernel queues the bytes on the socket and marks the fd readable. The waiting thread is inside `epoll_wait` (or `select`, `poll`), in the backend:',
      source('native/backend_epoll.cc', '::epoll_wait(', 'epoll_wait'),
      'which turns each `epoll_event` into a `ReadyEvent { fd, events }` with poll(2) bits',
      source('native/backend_epoll.cc', 'out[i] = ReadyEvent{', 'ReadyEvent'),
    ],
    [
      'The reactor collects the batch, and drops its own wake-up fd from it:',
      source('native/reactor.cc', 'int Reactor::Poll(', 'Reactor::Poll'),
    ],
    [
      "Under `loopSync()`, the N-API wrapper copies the batch into the loop's `Int32Array` as `[fd, events]` pairs (under `loop()`, `DeliverBatch` in bridge.cc does the same after the hand-over):",
      source('native/reactor_wrap.cc', 'Napi::Value Poll(const Napi::CallbackInfo& info)', 'ReactorWrap::Poll'),
    ],
    [
      'In TypeScript, one iteration is ask, wait, dispatch:',
      source('src/loop.ts', 'function iterateSync(', 'iterateSync'),
      "and the poller looks up each ready fd's dispatcher in the map before any handler runs (a handler may close another fd, and a new socket may reuse its number)",
      source('src/poller.ts', 'dispatch(count: number, map: SocketMap): void', 'Poller.dispatch'),
    ],
    [
      "poll-style backends route each fd's events as Python's `readwrite()` does (select: a read pass, a write pass, an except pass):",
      source('src/readwrite.ts', 'export function readwrite(', 'readwrite'),
      'POLLIN goes to',
      source('src/readwrite.ts', 'else obj.handleReadEvent();', 'handleReadEvent()'),
    ],
    [
      'The dispatcher decides what readability means: an accept on a listener, a finished connect, or data:',
      source('src/dispatcher.ts', 'handleReadEvent(): void {', 'Dispatcher.handleReadEvent'),
    ],
    [
      'Your `handleRead()` runs and calls `this.recv(n)`, which turns EOF and disconnect errors into `handleClose()`:',
      source('src/dispatcher.ts', 'recv(n: number): Buffer {', 'Dispatcher.recv'),
    ],
    [
      'The socket receives straight into the free end of a shared slab, and the `Buffer` it returns is a view of exactly the bytes that arrived (what is larger than the room left goes through a scratch buffer and is copied):',
      source('src/socket.ts', 'recv(n: number, flags = 0): Buffer {', 'Socket.recv'),
      source('src/socket.ts', 'function receive(fd: number, size: number, flags: number): Buffer {', 'receive'),
    ],
    [
      'Into native code once more, for the system call itself:',
      source('native/socket.cc', 'return RetryOnEintr([&] { return ::recv(fd, buffer, length, flags); });', 'recv(2)'),
      'and the bytes are in a `Buffer` in your handler.',
    ],
  ];
  return `## 6. The path of one byte, from the kernel to \`handleRead()\`

File by file, for the epoll backend under \`loopSync()\` (the links point at the lines; they are
found by searching the sources when this page is generated, so they follow the code):

${steps.map((parts, i) => `${i + 1}. ${parts.join(' ')}`).join('\n')}

Sending is the same path backwards, without the wait: \`send()\` calls \`send(2)\` at once, and
only what the kernel does not take is queued (\`DispatcherWithSend.outBuffer\`), which makes the
dispatcher \`writable()\` until it drains.

${reproduce('node docs/tour/generate.mjs')} (the links are regenerated)
`;
}

async function sectionTimeline() {
  log('7. timelines of one recorded trace');
  const backends = ['select', 'epoll'];
  const values = [];
  const ready = [];
  const summary = [];
  for (const backend of backends) {
    const r = await record(backend, COUNTS.timelineIdle, COUNTS.timelineMessages);
    const traces = r.traces.filter((t) => t.ready.some((x) => x.fd === r.busyFd)).slice(0, TIMELINE_ITERATIONS);
    let t = 0;
    for (const it of traces) {
      values.push({ backend, phase: 'waiting', start: t, end: t + it.waitMs, iteration: it.iteration });
      t += it.waitMs;
      values.push({ backend, phase: 'dispatching', start: t, end: t + it.dispatchMs, iteration: it.iteration });
      t += it.dispatchMs;
      ready.push({
        backend,
        iteration: ready.filter((x) => x.backend === backend).length,
        ready: it.ready.length,
        watched: it.read.length,
      });
    }
    const all = r.traces.filter((x) => x.ready.some((y) => y.fd === r.busyFd));
    summary.push({
      backend,
      watched: median(all.map((x) => x.read.length)),
      wait: median(all.map((x) => x.waitMs)),
      dispatch: median(all.map((x) => x.dispatchMs)),
      ready: median(all.map((x) => x.ready.length)),
      n: all.length,
    });
  }
  const shown = Math.min(...backends.map((b) => ready.filter((x) => x.backend === b).length));
  const svg = await chart('timeline', {
    title: `${shown} iterations of one busy connection beside ${fmt(COUNTS.timelineIdle)} idle ones`,
    vconcat: [
      {
        width: 640,
        height: 60,
        data: { values },
        mark: 'bar',
        encoding: {
          row: { field: 'backend', type: 'nominal', sort: backends, title: null },
          x: { field: 'start', type: 'quantitative', title: 'time since the first iteration shown (ms)' },
          x2: { field: 'end' },
          color: {
            field: 'phase',
            type: 'nominal',
            sort: ['waiting', 'dispatching'],
            scale: { range: ['#9ecae9', '#e45756'] },
            title: null,
          },
        },
      },
      {
        width: 640,
        height: 60,
        data: { values: ready },
        mark: 'bar',
        encoding: {
          row: { field: 'backend', type: 'nominal', sort: backends, title: null },
          x: {
            field: 'iteration',
            type: 'ordinal',
            title: 'iteration',
            axis: { labelAngle: 0, values: [0, 10, 20, 30] },
          },
          y: { field: 'ready', type: 'quantitative', title: 'ready fds', scale: { domainMin: 0 } },
        },
      },
    ],
  });
  const [sel, ep] = summary;
  const rows = summary.map(
    (s) =>
      `| ${s.backend} | ${fmt(s.watched)} | ${fmt(s.ready)} | ${fmt(s.wait * 1000)} | ${fmt(s.dispatch * 1000)} | ${fmt(s.n)} |`,
  );
  return `## 7. A timeline of one recorded trace: 1 busy connection beside ${fmt(COUNTS.timelineIdle)} idle ones

The trace of section 1 has timestamps; drawn over time, it shows where an iteration's time
goes. Here \`docs/tour/record.mjs\` runs README's echo server under \`loopSync()\` with the \`trace\`
option while the client opens ${fmt(COUNTS.timelineIdle)} idle connections and then sends ${fmt(COUNTS.timelineMessages)} messages on one more.
The picture shows ${shown} consecutive iterations in which the busy connection was ready: blue is
time inside the wait (\`select()\` / \`epoll_wait()\`), red is time dispatching (\`handleRead()\`,
\`recv\`, \`send\`, the loop's own bookkeeping), and below, how many fds each wait reported ready.

![Timeline: waiting vs dispatching, select vs epoll](${svg})

Medians over the ${summary.map((s) => `${fmt(s.n)} ${s.backend}`).join(' and ')} iterations with the busy connection ready:

| backend | fds watched for reading | ready fds | waiting (µs) | dispatching (µs) | iterations |
|---|---:|---:|---:|---:|---:|
${rows.join('\n')}

${reproduce(`node docs/tour/record.mjs --backend select|epoll --idle ${COUNTS.timelineIdle} --messages ${COUNTS.timelineMessages}`)}

Both backends watch the same ${fmt(sel.watched)} fds and report ${fmt(sel.ready)} ready fd per iteration (medians):
the work to do is the same. The wait is where they differ: here select's median wait was
${fmt(sel.wait * 1000)} µs and epoll's ${fmt(ep.wait * 1000)} µs, and the median dispatch ${fmt(sel.dispatch * 1000)} µs and ${fmt(ep.dispatch * 1000)} µs.
A wait includes the time until the client's next message arrives, which is the same for both;
what select adds is its own work: it hands the kernel three bitmaps covering every fd up to the
highest, the kernel checks each of those fds (and, if none is ready, registers on each one's
wait queue before sleeping and checks them all again on waking), and the backend then scans the
returned bitmaps fd by fd. \`epoll_wait()\` finds the ready fd on a list the kernel keeps and
copies out one event. Nothing in dispatching grows with the idle connections: the JavaScript side
does not visit idle dispatchers at all. The same
recording is what \`asyncore-echo --trace\` prints, one line per iteration.
`;
}

// --- the document ---------------------------------------------------------------------------

async function main() {
  mkdirSync(CHARTS, { recursive: true });
  for (const name of readdirSync(CHARTS)) if (name.endsWith('.svg') && !SHORT) rmSync(path.join(CHARTS, name));
  const started = Date.now();
  const sections = [];
  sections.push(await sectionSelectTrace());
  const strace = await sectionStrace();
  sections.push(strace);
  sections.push(await sectionFdSetsize());
  sections.push(await sectionIdle());
  const extra = /(\d[\d.,]*) more\s+system calls per message/.exec(strace)?.[1] ?? '?';
  sections.push(await sectionBridge(`${extra} system calls`));
  sections.push(sectionBytePath());
  sections.push(await sectionTimeline());
  const seconds = Math.round((Date.now() - started) / 1000);
  const commit = await run('git', ['rev-parse', '--short', 'HEAD']).then(
    (r) => r.stdout.trim(),
    () => 'unknown',
  );
  const document = `<!-- Generated by docs/tour/generate.mjs from real runs; edit the generator, not this file. -->
# How it works: readiness polling, from real runs

This is a guided tour of what happens inside a readiness loop, for readers who know sockets
(\`socket\`, \`bind\`, \`listen\`, \`accept\`, \`recv\`, \`send\`) but not how one thread serves many
of them. Every trace, count, chart and error below comes from running this package (and Python
3.11's \`asyncore\`, for comparison) on the machine that generated the page; each figure says the
command that reproduces it. Regenerate the whole page with:

\`\`\`sh
npm run build:ts && node docs/tour/generate.mjs
\`\`\`

(${SHORT ? 'short mode: small counts, for the test suite' : 'full run'}, ${seconds} s, on ${cpus().length} CPUs with load
${loadavg()
  .map((l) => l.toFixed(2))
  .join(
    ' / ',
  )}, package commit ${commit}, Node ${process.version}. Absolute times vary from machine to machine and run to
run; the shapes do not. The machine was shared with other work, so expect some noise.)

Contents: 1. one echo client under \`select()\` · 2. \`poll()\` and \`epoll\`: system calls ·
3. FD_SETSIZE · 4. the cost of idle connections · 5. \`loopSync()\` vs \`loop()\` · 6. the path of
one byte · 7. a timeline of one trace.

${sections.join('\n')}`;
  writeFileSync(path.join(OUT, 'how-it-works.md'), document);
  log(`wrote ${path.join(OUT, 'how-it-works.md')} and ${charts.length} charts in ${seconds} s`);
}

await main();
