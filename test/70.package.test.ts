// The package as its users get it. First what `npm pack` puts in the tarball, computed from the
// repository rather than hard-coded. Then the packing step itself (prepack: prebuildify), and its
// tarball installed into an empty project whose PATH has no compiler, make or python3: the
// prebuilt addon must load, through `import`, `require()`, its declarations and its CLIs. Last,
// the same package without prebuilds/, installed where a compiler is: it must build from source.
//
// Decisions the tarball checks encode:
// - Built JS and declarations ship with their source maps and the TypeScript sources the maps
//   point at: no dangling `sourceMappingURL` (bundlers warn about those), stack traces under
//   --enable-source-maps and "go to definition" land in real files, and the package's readers
//   (the README's third audience) get the sources they can read. It costs ~70 KB of tarball.
// - Only what is reachable ships: the declarations of the CLIs are not (no export points at
//   them), and neither is anything tsc never emits from src/ (a stale dist/examples/, say).
// - The native sources and binding.gyp ship beside the prebuilds, because the addon compiles at
//   install where no prebuild fits (another platform, another libc).
import { type ChildProcess, spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, posix } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { ROOT, type RunResult, killAll, run } from './helpers.js';

interface PackageJson {
  version: string;
  license: string;
  main: string;
  types: string;
  exports: Record<string, string | Record<string, string>>;
  bin: Record<string, string>;
}

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson;

/** Runs a command in `cwd` to completion, killing it after `timeoutMs` (a safety net). */
function exec(
  command: string,
  args: string[],
  cwd: string,
  timeoutMs: number,
  env: NodeJS.ProcessEnv = consumerEnv(),
): Promise<RunResult> {
  return run(command, args, { cwd, timeoutMs, env });
}

/**
 * The environment of a user's shell, not of this test run: no npm_* variables from an outer
 * `npm test` (they would point npm at this checkout), and none of the variables that make the
 * package load another build (ASYNCORE_ADDON, the sanitizer job's preload), since the point is
 * that the installed package uses the addon it installed itself. `path` replaces PATH.
 */
function consumerEnv(path?: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(key) || ['ASYNCORE_ADDON', 'LD_PRELOAD', 'ASAN_OPTIONS', 'NODE_OPTIONS'].includes(key)) continue;
    env[key] = value;
  }
  // Offline machines build against the headers of Node's Debian package (toolchain notes).
  if (existsSync('/usr/include/node/node.h')) env['npm_config_nodedir'] = '/usr';
  if (path !== undefined) env['PATH'] = path;
  return env;
}

/** Module names (without .ts) of the TypeScript files directly in `dir`. */
function tsModules(dir: string): string[] {
  return readdirSync(join(ROOT, dir))
    .filter((name) => name.endsWith('.ts') && !name.endsWith('.d.ts'))
    .map((name) => name.slice(0, -'.ts'.length));
}

/** What the tarball must hold, derived from the repository. */
function expectedFiles(): string[] {
  const files = ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'binding.gyp'];
  for (const name of readdirSync(join(ROOT, 'native'))) files.push(`native/${name}`);
  for (const name of readdirSync(join(ROOT, 'docs'))) if (name.endsWith('.md')) files.push(`docs/${name}`);
  // The tour's charts ship beside it, so docs/how-it-works.md shows them from the tarball too.
  for (const name of readdirSync(join(ROOT, 'docs', 'tour'))) {
    if (name.endsWith('.svg')) files.push(`docs/tour/${name}`);
  }
  for (const name of tsModules('src')) {
    files.push(`src/${name}.ts`, `dist/${name}.js`, `dist/${name}.js.map`);
    files.push(`dist/${name}.d.ts`, `dist/${name}.d.ts.map`);
  }
  for (const name of tsModules('src/cli')) {
    files.push(`src/cli/${name}.ts`, `dist/cli/${name}.js`, `dist/cli/${name}.js.map`);
  }
  // A checkout has prebuilds/ only after a `npm pack` or `npm run build:prebuilds` there.
  if (existsSync(join(ROOT, 'prebuilds'))) {
    for (const target of readdirSync(join(ROOT, 'prebuilds'))) {
      for (const name of readdirSync(join(ROOT, 'prebuilds', target))) files.push(`prebuilds/${target}/${name}`);
    }
  }
  return files.sort();
}

/**
 * Paths in the tarball `npm pack` would write now. --ignore-scripts: `prepare` would run tsc,
 * rewriting dist/ while other test files spawn the CLIs from it; `npm test` built dist/ already.
 */
async function packedFiles(): Promise<string[]> {
  const result = await exec('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], ROOT, 60_000);
  expect(result.code, result.stderr).toBe(0);
  const [report] = JSON.parse(result.stdout) as [{ files: { path: string }[] }];
  return report.files.map((f) => f.path).sort();
}

describe('npm pack', () => {
  let packed: string[] = [];
  beforeAll(async () => {
    packed = await packedFiles();
  }, 60_000);

  it('holds exactly the built modules, their maps and sources, the native sources and the docs', () => {
    expect(packed).toEqual(expectedFiles());
  });

  it('leaves out tests, benchmarks, CI, build output, dependencies and generated API docs', () => {
    const unwanted = packed.filter(
      (path) =>
        /^(test|bench|\.ci|build[^/]*|node_modules|examples|coverage|docs\/api)\//.test(path) ||
        path.endsWith('.tsbuildinfo'),
    );
    expect(unwanted).toEqual([]);
  });

  it('holds every file package.json and binding.gyp point at', () => {
    const targets = [pkg.main, pkg.types, ...Object.values(pkg.bin)];
    for (const entry of Object.values(pkg.exports)) {
      targets.push(...(typeof entry === 'string' ? [entry] : Object.values(entry)));
    }
    // binding.gyp is JSON with '#' comment lines.
    const gyp = readFileSync(join(ROOT, 'binding.gyp'), 'utf8').replace(/^\s*#.*$/gm, '');
    const gypText = JSON.stringify(JSON.parse(gyp));
    for (const [, source] of gypText.matchAll(/"(native\/[^"]+)"/g)) targets.push(source as string);
    const missing = targets.map((t) => posix.normalize(t)).filter((t) => !packed.includes(t));
    expect(missing).toEqual([]);
    expect(targets.length).toBeGreaterThan(8);
  });

  it('ships CLIs that start with a node shebang', () => {
    for (const target of Object.values(pkg.bin)) {
      expect(readFileSync(join(ROOT, target), 'utf8').split('\n')[0], target).toBe('#!/usr/bin/env node');
    }
  });

  it('has no source map reference that points outside the tarball', () => {
    const dangling: string[] = [];
    for (const path of packed) {
      const text = readFileSync(join(ROOT, path), 'utf8');
      if (path.endsWith('.js') || path.endsWith('.d.ts')) {
        const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(text)?.[1];
        const target = url === undefined ? undefined : posix.join(posix.dirname(path), url);
        if (target !== undefined && !packed.includes(target)) dangling.push(`${path} -> ${url}`);
      } else if (path.endsWith('.map')) {
        const map = JSON.parse(text) as { sourceRoot?: string; sources: string[] };
        for (const source of map.sources) {
          const target = posix.join(posix.dirname(path), map.sourceRoot ?? '', source);
          if (!packed.includes(target)) dangling.push(`${path} -> ${source}`);
        }
      }
    }
    expect(dangling).toEqual([]);
  });

  it('describes its version in CHANGELOG.md and carries the license package.json names', () => {
    const changelog = readFileSync(join(ROOT, 'CHANGELOG.md'), 'utf8');
    expect(changelog).toMatch(new RegExp(`^## \\[${pkg.version.replaceAll('.', '\\.')}\\]`, 'm'));
    expect(changelog).toMatch(/^### Known limits$/m);
    expect(pkg.license).toBe('MIT');
    const license = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
    expect(license).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} asyncore contributors$/m);
  });
});

// The user's side: npm init, npm install of the tarball (which runs node-gyp), then programs.

// The programs' echo handler, which sends back what it reads.
const ECHO_CLASS = `class Echo extends DispatcherWithSend {
  handleRead() {
    const data = this.recv(1024);
    if (data.length > 0) this.send(data);
  }
}`;

// The socketpair programs' two ends: Echo, and a client that gathers the echo of `message`
// into `echoed`, then closes both ends (`echo` names the Echo end) so that the loop ends.
const SOCKETPAIR_ECHO = `${ECHO_CLASS}

class Client extends DispatcherWithSend {
  handleRead() {
    echoed += this.recv(1024).toString();
    if (echoed.length >= message.length) {
      this.close();
      echo.close();
    }
  }
}`;

const ESM_PROGRAM = `
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { DispatcherWithSend, availableBackends, loop, socketpair } from 'asyncore';

const map = new Map();
const message = 'hello through import, over a socketpair, under loop()';
let echoed = '';

${SOCKETPAIR_ECHO}

const [left, right] = socketpair();
const echo = new Echo(left, map);
const client = new Client(right, map);
client.send(message);
await loop({ map, backend: 'auto', timeout: 5, count: 100 });

// Which package and which compiled addon this process really loaded (Linux: /proc/self/maps).
const entry = fileURLToPath(import.meta.resolve('asyncore'));
const addons = readFileSync('/proc/self/maps', 'utf8')
  .split('\\n')
  .map((line) => line.split(/\\s+/).pop())
  .filter((path) => path.endsWith('.node'));
console.log(JSON.stringify({ echoed, backends: availableBackends(), entry, addons: [...new Set(addons)] }));
`;

const CJS_PROGRAM = `
const { Dispatcher, DispatcherWithSend, closeAll, loopSync } = require('asyncore');

const map = new Map();
const message = 'hello through require(), over loopback TCP, under loopSync()';
let echoed = '';

${ECHO_CLASS}

class Server extends Dispatcher {
  constructor() {
    super(null, map);
    this.createSocket();
    this.setReuseAddr();
    this.bind(['127.0.0.1', 0]);
    this.listen(5);
  }
  handleAccepted(sock) {
    new Echo(sock, map);
  }
}

class Client extends DispatcherWithSend {
  constructor(port) {
    super(null, map);
    this.createSocket();
    this.connect(['127.0.0.1', port]);
  }
  handleConnect() {
    this.send(message);
  }
  handleRead() {
    echoed += this.recv(1024).toString();
    if (echoed.length >= message.length) closeAll(map);
  }
}

const server = new Server();
new Client(server.socket.getsockname()[1]);
loopSync({ map, backend: 'poll', timeout: 5, count: 200 });
console.log(JSON.stringify({ echoed }));
`;

// The README's form of loop() where there is no top-level await: CommonJS, then().
const CJS_LOOP_PROGRAM = `
const { DispatcherWithSend, loop, socketpair } = require('asyncore');

const map = new Map();
const message = 'hello through require(), under loop() and then()';
let echoed = '';

${SOCKETPAIR_ECHO}

const [left, right] = socketpair();
const echo = new Echo(left, map);
new Client(right, map).send(message);
loop({ map, timeout: 5 }).then(
  () => console.log(JSON.stringify({ echoed, left: map.size })),
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);
`;

// Compiled against the installed declarations only (exports' "types" condition, NodeNext).
const TS_CONSUMER = `
import { type Address, Dispatcher, type LoopOptions, SocketError, callLater, loop } from 'asyncore';

class Quiet extends Dispatcher {
  override handleRead(): void {
    const data: Buffer = this.recv(16);
    if (data.length === 0) this.close();
  }
}

const where: Address = ['127.0.0.1', 0];
const options: LoopOptions = { backend: 'epoll', timeout: 0.5, count: 1, map: new Map() };
const pending: Promise<void> = loop(options).unref();
const error: string | undefined = new SocketError('m', 'EAGAIN', 11, 'recv').code;
callLater(1, () => undefined).cancel();
export { Quiet, where, pending, error };
`;

interface EsmReport {
  echoed: string;
  backends: string[];
  /** The file `import 'asyncore'` resolved to. */
  entry: string;
  /** Every .node file mapped into the process. */
  addons: string[];
}

interface PackReport {
  filename: string;
  files: { path: string }[];
}

/** `npm pack --json` in `cwd` into `dest`; scripts run unless `ignoreScripts`. */
async function pack(cwd: string, dest: string, ignoreScripts: boolean): Promise<PackReport> {
  mkdirSync(dest);
  const args = ['pack', '--json', '--pack-destination', dest, ...(ignoreScripts ? ['--ignore-scripts'] : [])];
  const result = await exec('npm', args, cwd, 300_000);
  expect(result.code, result.stderr).toBe(0);
  // The lifecycle scripts' output (make's, tsc's) comes first on stdout; the JSON array last.
  const json = result.stdout.slice(Math.max(0, result.stdout.search(/^\[\s*$/m)));
  const [report] = JSON.parse(json) as [PackReport];
  return { ...report, filename: join(dest, report.filename) };
}

/** `npm init -y` in a new directory, then `npm install` of a tarball there. */
async function installInto(project: string, tarball: string, env: NodeJS.ProcessEnv): Promise<RunResult> {
  mkdirSync(project);
  const init = await exec('npm', ['init', '-y'], project, 30_000, env);
  expect(init.code, init.stderr).toBe(0);
  return exec('npm', ['install', tarball, '--no-audit', '--no-fund'], project, 300_000, env);
}

/** Where `tool` is on this process's PATH. */
function which(tool: string): string {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir !== '' && existsSync(join(dir, tool))) return join(dir, tool);
  }
  throw new Error(`${tool} is not on PATH`);
}

/**
 * A directory of symlinks to node, npm, npx and sh alone: as PATH, it is a machine with Node and
 * nothing to build with. npm needs sh for lifecycle scripts and for `npx`.
 */
function bareBin(dir: string): string {
  mkdirSync(dir);
  symlinkSync(process.execPath, join(dir, 'node'));
  for (const tool of ['npm', 'npx', 'sh']) symlinkSync(which(tool), join(dir, tool));
  return dir;
}

/** The libc tag prebuildify --tag-libc gives a build on this machine. */
const LIBC = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime
  ? 'glibc'
  : 'musl';
const PREBUILD = `prebuilds/${process.platform}-${process.arch}/asyncore.${LIBC}.node`;

/** Runs the ESM program in `project`; returns what it reports. */
async function runEsm(project: string, env: NodeJS.ProcessEnv): Promise<EsmReport> {
  writeFileSync(join(project, 'esm.mjs'), ESM_PROGRAM);
  const result = await exec(process.execPath, ['esm.mjs'], project, 30_000, env);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as EsmReport;
}

// One copy of what the package ships (plus the tsconfig files `prepare` compiles with) is packed
// twice: without scripts, giving a tarball with no prebuilds/ (as where no prebuild matches);
// then as `npm pack` does it, running prepack (prebuildify) and prepare (tsc) in the copy, so
// this checkout's build/ and dist/ stay untouched while other test files use them.
describe('the packing step, and its tarball installed into empty projects', () => {
  let workDir = '';
  let prebuilt: PackReport = { filename: '', files: [] };
  let source: PackReport = { filename: '', files: [] };
  let bare = '';
  let bareEnv: NodeJS.ProcessEnv = {};
  let noCompiler = '';
  let fromSource = '';
  let noCompilerInstall: RunResult = { code: -1, stdout: '', stderr: '' };
  let fromSourceInstall: RunResult = { code: -1, stdout: '', stderr: '' };
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    workDir = mkdtempSync(join(tmpdir(), 'asyncore-package-'));
    const stage = join(workDir, 'stage');
    const shipped = (await packedFiles()).filter((path) => !path.startsWith('prebuilds/'));
    for (const path of [...shipped, 'tsconfig.json', 'tsconfig.build.json']) {
      mkdirSync(dirname(join(stage, path)), { recursive: true });
      cpSync(join(ROOT, path), join(stage, path));
    }
    symlinkSync(join(ROOT, 'node_modules'), join(stage, 'node_modules'));
    bare = bareBin(join(workDir, 'bin'));
    bareEnv = consumerEnv(bare);
    noCompiler = join(workDir, 'no-compiler');
    fromSource = join(workDir, 'from-source');
    // Without scripts first, while the copy has no prebuilds/; then the two compilations (the
    // packing step's and the source install's) overlap.
    source = await pack(stage, join(workDir, 'source'), true);
    [fromSourceInstall, noCompilerInstall] = await Promise.all([
      installInto(fromSource, source.filename, consumerEnv()),
      (async () => {
        prebuilt = await pack(stage, join(workDir, 'prebuilt'), false);
        return installInto(noCompiler, prebuilt.filename, bareEnv);
      })(),
    ]);
  }, 600_000);

  afterEach(() => killAll(children));

  afterAll(() => {
    if (workDir !== '') rmSync(workDir, { recursive: true, force: true });
  });

  describe('npm pack', () => {
    it('runs prebuildify: the tarball carries one N-API binary for this platform, arch and libc', () => {
      const paths = prebuilt.files.map((f) => f.path);
      expect(paths.filter((path) => path.startsWith('prebuilds/'))).toEqual([PREBUILD]);
      // Everything else is what a checkout's tarball holds.
      expect(paths.filter((path) => !path.startsWith('prebuilds/')).sort()).toEqual(
        expectedFiles().filter((path) => !path.startsWith('prebuilds/')),
      );
    });

    it('strips the binary (--strip): an ELF shared object without a symbol table', () => {
      const binary = readFileSync(join(noCompiler, 'node_modules', 'asyncore', PREBUILD));
      expect(binary.subarray(0, 4)).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
      expect(binary.includes('.symtab\0')).toBe(false);
      expect(binary.includes('.dynsym\0')).toBe(true);
    });

    it('packed without scripts, the same files carry no binary at all', () => {
      const paths = source.files.map((f) => f.path);
      expect(paths.filter((path) => path.startsWith('prebuilds/') || path.endsWith('.node'))).toEqual([]);
      expect(paths.length).toBe(prebuilt.files.length - 1);
    });
  });

  describe('installed where PATH has node and npm but no compiler, make or python3', () => {
    it('that PATH finds node, npm and npx, and no cc, c++, gcc, g++, make, python3 or node-gyp', async () => {
      const probe = (tool: string): Promise<RunResult> =>
        exec(join(bare, 'sh'), ['-c', `command -v ${tool}`], workDir, 10_000, bareEnv);
      for (const tool of ['node', 'npm', 'npx']) expect((await probe(tool)).code, tool).toBe(0);
      for (const tool of ['cc', 'c++', 'gcc', 'g++', 'make', 'python3', 'python', 'node-gyp']) {
        const result = await probe(tool);
        expect(result.code, `${tool} found: ${result.stdout}`).not.toBe(0);
        expect(result.stdout).toBe('');
      }
    }, 60_000);

    it('installs from the prebuild, compiling nothing', () => {
      expect(noCompilerInstall.code, noCompilerInstall.stdout + noCompilerInstall.stderr).toBe(0);
      const installed = join(noCompiler, 'node_modules', 'asyncore');
      expect(existsSync(join(installed, PREBUILD))).toBe(true);
      expect(existsSync(join(installed, 'build'))).toBe(false);
      const manifest = JSON.parse(readFileSync(join(noCompiler, 'package.json'), 'utf8')) as PackageJson & {
        dependencies: Record<string, string>;
      };
      expect(Object.keys(manifest.dependencies)).toEqual(['asyncore']);
    });

    it('import: an ES module echoes a message through a Dispatcher under loop(), on the prebuilt addon', async () => {
      const report = await runEsm(noCompiler, bareEnv);
      expect(report.echoed).toBe('hello through import, over a socketpair, under loop()');
      expect(report.backends).toContain('poll');
      // The installed copy, and its prebuild, not the checkout's.
      const installed = realpathSync(join(noCompiler, 'node_modules', 'asyncore'));
      expect(report.entry).toBe(join(installed, 'dist', 'index.js'));
      expect(report.addons).toEqual([join(installed, PREBUILD)]);
    }, 90_000);

    it('require(): a CommonJS module echoes a message over loopback TCP under loopSync()', async () => {
      writeFileSync(join(noCompiler, 'cjs.cjs'), CJS_PROGRAM);
      const result = await exec(process.execPath, ['cjs.cjs'], noCompiler, 30_000, bareEnv);
      expect(result.code, result.stderr).toBe(0);
      const report = JSON.parse(result.stdout) as { echoed: string };
      expect(report.echoed).toBe('hello through require(), over loopback TCP, under loopSync()');
    }, 90_000);

    it('require(): loop() without top-level await, resolved with then() once every channel closed', async () => {
      writeFileSync(join(noCompiler, 'loop.cjs'), CJS_LOOP_PROGRAM);
      const result = await exec(process.execPath, ['loop.cjs'], noCompiler, 30_000, bareEnv);
      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual({
        echoed: 'hello through require(), under loop() and then()',
        left: 0,
      });
    }, 90_000);

    it('its declarations type-check a strict TypeScript consumer', async () => {
      writeFileSync(join(noCompiler, 'consumer.ts'), TS_CONSUMER);
      const tsconfig = {
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          // The package's own .d.ts files are checked too, not skipped.
          skipLibCheck: false,
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules', '@types')],
        },
        files: ['consumer.ts'],
      };
      writeFileSync(join(noCompiler, 'tsconfig.json'), JSON.stringify(tsconfig));
      const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
      const result = await exec(process.execPath, [tsc, '-p', 'tsconfig.json'], noCompiler, 150_000, bareEnv);
      expect(result.stdout + result.stderr).toBe('');
      expect(result.code).toBe(0);
    }, 180_000);

    it('npx runs every CLI of package.json bin: --help prints its usage and exits 0', async () => {
      const names = Object.keys(pkg.bin);
      expect(names).toEqual(['asyncore-echo', 'asyncore-get', 'asyncore-forward', 'asyncore-http']);
      for (const name of names) {
        const result = await exec('npx', ['--no-install', name, '--help'], noCompiler, 30_000, bareEnv);
        expect(result.code, `${name}: ${result.stderr}`).toBe(0);
        expect(result.stdout).toMatch(new RegExp(`^usage: ${name} `));
      }
    }, 180_000);

    it('asyncore-echo from node_modules/.bin serves an echo on port 0, then exits 0 on SIGTERM', async () => {
      const child = spawn(join(noCompiler, 'node_modules', '.bin', 'asyncore-echo'), ['--port', '0'], {
        cwd: noCompiler,
        env: bareEnv,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      const port = await new Promise<number>((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error(`asyncore-echo did not start: ${out}`)), 15_000);
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const match = /listening on .*:(\d+)/.exec(out);
          if (match !== null) {
            clearTimeout(timer);
            resolve(Number(match[1]));
          }
        });
        child.on('exit', (code) => reject(new Error(`asyncore-echo exited with ${String(code)}: ${out}`)));
      });

      const message = 'one echo from the installed CLI';
      const echoed = await new Promise<string>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => socket.write(message));
        let got = '';
        socket.on('data', (d: Buffer) => {
          got += d.toString();
          if (got.length >= message.length) socket.end();
        });
        socket.on('close', () => resolve(got));
        socket.on('error', reject);
        socket.setTimeout(10_000, () => socket.destroy(new Error('no echo within 10 s')));
      });
      expect(echoed).toBe(message);

      const exited = new Promise<number | string>((resolve) =>
        child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)),
      );
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    }, 90_000);
  });

  describe('installed where no prebuild matches', () => {
    it('compiles the native addon with node-gyp at install', () => {
      expect(fromSourceInstall.code, fromSourceInstall.stdout + fromSourceInstall.stderr).toBe(0);
      const installed = join(fromSource, 'node_modules', 'asyncore');
      expect(existsSync(join(installed, 'prebuilds'))).toBe(false);
      expect(existsSync(join(installed, 'build', 'Release', 'asyncore.node'))).toBe(true);
    });

    it('import: the ES module program runs on the addon its install compiled', async () => {
      const report = await runEsm(fromSource, consumerEnv());
      expect(report.echoed).toBe('hello through import, over a socketpair, under loop()');
      const installed = realpathSync(join(fromSource, 'node_modules', 'asyncore'));
      expect(report.entry).toBe(join(installed, 'dist', 'index.js'));
      expect(report.addons).toEqual([join(installed, 'build', 'Release', 'asyncore.node')]);
    }, 90_000);
  });
});
