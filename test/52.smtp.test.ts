// examples/smtp-sink.ts, the AsyncChat SMTP sink, with python3's smtplib as the client: three
// messages (dot-stuffed lines included) land in files holding exactly their bodies, and
// commands out of sequence get 5xx replies. Once under loop() (this process keeps running
// while python talks), once under loopSync() with python started before the loop blocks.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { type SocketMap, closeAll, loop, loopSync } from 'asyncore';
import { afterEach, describe, expect, it } from 'vitest';

import { startSmtpSink } from '../examples/smtp-sink.js';
import { BEST_BACKEND, ROOT, run, waitExit } from './helpers.js';

// The messages, as Python builds them; they end with CRLF, so each file must equal its message.
const MESSAGES_PY = String.raw`
big = b"".join(b"line %d of a long message\r\n" % i for i in range(8000))
MESSAGES = [
    b"Subject: one\r\n\r\nHello there.\r\n",
    b"Subject: two\r\n\r\n.starts with a dot\r\n..two dots\r\n.\r\nlast line\r\n",
    b"Subject: three\r\n\r\n" + big + b".\r\n",
]
`;

const CLIENT_PY = `
import json, smtplib, sys
${MESSAGES_PY}
port = int(sys.argv[1])
codes = {}
with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
    codes["rcpt_before_mail"] = smtp.docmd("RCPT", "TO:<x@example.org>")[0]
    codes["mail_before_helo"] = smtp.docmd("MAIL", "FROM:<a@example.org>")[0]
    codes["ehlo"] = smtp.ehlo("client.example.org")[0]
    codes["data_before_rcpt"] = (smtp.docmd("MAIL", "FROM:<a@example.org>")[0], smtp.docmd("DATA")[0])
    codes["rset"] = smtp.rset()[0]
    codes["unknown"] = smtp.docmd("BOGUS")[0]
    codes["noop"] = smtp.noop()[0]
    for message in MESSAGES:
        smtp.sendmail("a@example.org", ["b@example.org", "c@example.org"], message)
print(json.dumps(codes))
`;

const EXPECTED_CODES = {
  rcpt_before_mail: 503,
  mail_before_helo: 503,
  ehlo: 250,
  data_before_rcpt: [250, 503],
  rset: 250,
  unknown: 500,
  noop: 250,
};

/** The messages as python3 builds them, so the test compares against the same bytes. */
async function expectedMessages(): Promise<Buffer[]> {
  const dump = `${MESSAGES_PY}\nimport sys\nsys.stdout.write("\\n".join(m.hex() for m in MESSAGES))`;
  const result = await run('python3', ['-c', dump]);
  expect(result.code).toBe(0);
  return result.stdout.split('\n').map((hex) => Buffer.from(hex, 'hex'));
}

function filesIn(dir: string): Buffer[] {
  return readdirSync(dir)
    .sort((a, b) => Number(/\d+/.exec(a)?.[0]) - Number(/\d+/.exec(b)?.[0]))
    .map((name) => readFileSync(join(dir, name)));
}

describe('the SMTP sink example with smtplib', () => {
  let map: SocketMap = new Map();
  const dirs: string[] = [];
  afterEach(() => {
    closeAll(map);
    map = new Map();
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  function outputDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'asyncore-smtp-'));
    dirs.push(dir);
    return join(dir, 'mail');
  }

  it('stores three messages, dot-unstuffed, under loop()', async () => {
    const dir = outputDir();
    const sink = startSmtpSink({ dir, port: 0, map });
    const running = loop({ map, backend: BEST_BACKEND, timeout: 30 });
    const client = await run('python3', ['-c', CLIENT_PY, String(sink.address[1])]);
    expect(client.stderr).toBe('');
    expect(client.code).toBe(0);
    expect(JSON.parse(client.stdout)).toEqual(EXPECTED_CODES);
    closeAll(map);
    await running;
    const expected = await expectedMessages();
    expect(sink.messages).toHaveLength(3);
    expect(filesIn(dir)).toEqual(expected);
    expect(filesIn(dir)[1]?.toString()).toBe(
      'Subject: two\r\n\r\n.starts with a dot\r\n..two dots\r\n.\r\nlast line\r\n',
    );
  });

  it('stores three messages under loopSync(), python started before the loop blocks', async () => {
    const dir = outputDir();
    const sink = startSmtpSink({ dir, port: 0, map });
    const child = spawn('python3', ['-c', CLIENT_PY, String(sink.address[1])], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      // The listener is up before python starts, so its connect waits in the backlog.
      const deadline = Date.now() + 20_000;
      while (sink.closedSessions === 0 && Date.now() < deadline) {
        loopSync({ map, backend: 'select', timeout: 0.1, count: 1 });
      }
      expect(sink.closedSessions).toBe(1);
      expect(await waitExit(child)).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
    expect(stderr).toBe('');
    expect(JSON.parse(stdout)).toEqual(EXPECTED_CODES);
    expect(filesIn(dir)).toEqual(await expectedMessages());
  });

  it('numbers files past the ones an earlier run left in the directory', () => {
    const dir = outputDir();
    const first = startSmtpSink({ dir, port: 0, map });
    first.store(Buffer.from('earlier\r\n'));
    first.close();
    const second = startSmtpSink({ dir, port: 0, map });
    const name = second.store(Buffer.from('later\r\n'));
    expect(name).toBe('message-2.eml');
    expect(filesIn(dir).map(String)).toEqual(['earlier\r\n', 'later\r\n']);
  });
});

// The example as its users run it: compiled by `tsc -p tsconfig.examples.json` (npm test does
// that first) and started with node, stopped by a signal.
describe('the SMTP sink example as a program', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`listens, stores what smtplib sends, and exits 0 on ${signal}`, async () => {
      const dir = join(mkdtempSync(join(tmpdir(), 'asyncore-smtp-cli-')), 'mail');
      dirs.push(dirname(dir));
      const program = join(ROOT, 'dist', 'examples', 'smtp-sink.js');
      const child = spawn(process.execPath, [program, '--dir', dir, '--port', '0'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      try {
        let output = '';
        child.stderr.on('data', (d: Buffer) => (output += d.toString()));
        const port = await new Promise<number>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no listening line: ${output}`)), 10_000);
          child.stdout.on('data', (d: Buffer) => {
            output += d.toString();
            const m = /listening on [^\n]*:(\d+)\n/.exec(output);
            if (m !== null) {
              clearTimeout(timer);
              resolve(Number(m[1]));
            }
          });
        });
        expect(output).toContain(`writing messages to ${dir}`);
        const client = await run('python3', ['-c', CLIENT_PY, String(port)]);
        expect(client.stderr).toBe('');
        expect(JSON.parse(client.stdout)).toEqual(EXPECTED_CODES);
        child.kill(signal);
        expect(await waitExit(child)).toBe(0);
        expect(filesIn(dir)).toEqual(await expectedMessages());
      } finally {
        child.kill('SIGKILL');
      }
    });
  }

  it('exits 2 with its usage when --dir is missing', async () => {
    const result = await run(process.execPath, [join(ROOT, 'dist', 'examples', 'smtp-sink.js')]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('usage: smtp-sink --dir OUT');
  });
});
