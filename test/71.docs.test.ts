// The API reference (`npm run docs`, typedoc) documents every public name, and the docs build
// fails as soon as one is not: so a public name added without TSDoc fails CI here.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as asyncore from 'asyncore';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ROOT, run } from './helpers.js';

const TYPEDOC = join(ROOT, 'node_modules', 'typedoc', 'bin', 'typedoc');

/** typedoc with an options file (default: the project's typedoc.json); its output without colours. */
async function typedoc(
  args: string[],
  options = join(ROOT, 'typedoc.json'),
): Promise<{ code: number | string; output: string }> {
  const result = await run(process.execPath, [TYPEDOC, '--options', options, ...args], { timeoutMs: 60_000 });
  // eslint-disable-next-line no-control-regex
  return { code: result.code, output: (result.stdout + result.stderr).replace(/\x1b\[[0-9;]*m/g, '') };
}

interface CommentPart {
  text: string;
}

interface Reflection {
  name: string;
  comment?: { summary: CommentPart[] };
  signatures?: { comment?: { summary: CommentPart[] } }[];
}

/** The description typedoc renders for a top-level name: its own, or its first signature's. */
function description(reflection: Reflection): string {
  const summary = reflection.comment?.summary ?? reflection.signatures?.[0]?.comment?.summary ?? [];
  return summary
    .map((part) => part.text)
    .join('')
    .trim();
}

describe('the API docs', () => {
  let workDir = '';
  let build: { code: number | string; output: string } = { code: -1, output: '' };
  let model: { children: Reflection[] } = { children: [] };

  beforeAll(async () => {
    workDir = mkdtempSync(join(tmpdir(), 'asyncore-docs-'));
    // `npm run docs` with the same options and validation, rendering nothing.
    build = await typedoc(['--emit', 'none']);
    // typedoc's JSON model of what would be rendered, kept even if the run above failed, so
    // the next test names exactly the exports that lack a description.
    const jsonPath = join(workDir, 'api.json');
    const json = await typedoc(['--json', jsonPath, '--treatWarningsAsErrors', 'false']);
    expect(json.code, json.output).toBe(0);
    model = JSON.parse(readFileSync(jsonPath, 'utf8')) as { children: Reflection[] };
  }, 120_000);

  afterAll(() => {
    if (workDir !== '') rmSync(workDir, { recursive: true, force: true });
  });

  it('build without a warning: every public name and member carries TSDoc', () => {
    // A failure lists the names that lack documentation, as `npm run docs` prints them.
    expect(build.output.split('\n').filter((line) => /\[(warning|error)\]/.test(line))).toEqual([]);
    expect(build.code).toBe(0);
  });

  it('give every runtime export of the package a description', () => {
    const byName = new Map(model.children.map((reflection) => [reflection.name, reflection]));
    const undescribed = Object.keys(asyncore).filter((name) => {
      const reflection = byName.get(name);
      return reflection === undefined || description(reflection) === '';
    });
    expect(undescribed).toEqual([]);
    expect(Object.keys(asyncore).length).toBeGreaterThan(40);
  });

  it('are built with a configuration that fails on an undocumented export', async () => {
    const source = '/** Documented. */\nexport const documented = 1;\nexport function forgotten(): void {}\n';
    writeFileSync(join(workDir, 'index.ts'), source);
    const tsconfig = { compilerOptions: { strict: true }, files: ['index.ts'] };
    writeFileSync(join(workDir, 'tsconfig.json'), JSON.stringify(tsconfig));
    // The project's options, with only the sources swapped (paths resolve next to this file).
    const options = join(workDir, 'typedoc.json');
    const config = { extends: [join(ROOT, 'typedoc.json')], entryPoints: ['index.ts'], tsconfig: 'tsconfig.json' };
    writeFileSync(options, JSON.stringify(config));
    const result = await typedoc(['--emit', 'none'], options);
    expect(result.output).toMatch(/forgotten .*does not have any documentation/);
    expect(result.output).not.toMatch(/documented .*does not have any documentation/);
    expect(result.code).not.toBe(0);
  }, 90_000);
});
