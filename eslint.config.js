// eslint for the TypeScript sources, tests, examples and the JavaScript benchmarks.
//
// TypeScript gets typescript-eslint's strictTypeChecked set: the code is a socket library
// whose hot path passes raw numbers around, so the rules that catch unsafe `any`, floating
// promises, unnecessary conditions and template literals with non-strings are the ones worth
// having. Type information comes from tsconfig.json (the project service finds it), which maps
// 'asyncore' to src/ as vitest does, so tests are checked against the sources.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

// Node's globals for the .mjs benchmarks (the `globals` package would be one more dependency
// for a dozen names).
const nodeGlobals = Object.fromEntries(
  [
    'AbortController',
    'AbortSignal',
    'Buffer',
    'URL',
    'TextDecoder',
    'TextEncoder',
    'clearImmediate',
    'clearInterval',
    'clearTimeout',
    'console',
    'performance',
    'process',
    'queueMicrotask',
    'setImmediate',
    'setInterval',
    'setTimeout',
    'structuredClone',
  ].map((name) => [name, 'readonly']),
);

export default defineConfig(
  {
    ignores: ['dist/', 'build/', 'prebuilds/', 'coverage/', 'node_modules/', 'bench/out/', 'docs/api/'],
  },
  // A disable comment that no longer suppresses anything is an error, so none outlives its reason.
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.strictTypeChecked],
    languageOptions: {
      parserOptions: {
        projectService: {
          // Config files live outside tsconfig.json's include list.
          allowDefaultProject: ['vitest.config.ts'],
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // Numbers in templates are how this code formats errnos, ports and sizes; anything else
      // (objects, undefined, unions with null) is still reported.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      // `(resolve) => sock.once('close', () => resolve())` and `expect(() => sock.close())` are
      // the idiom for callbacks whose result nobody reads, and `return this.#reply('250 OK')`
      // ends a void command handler; a void used as a value anywhere else is still reported.
      '@typescript-eslint/no-confusing-void-expression': [
        'error',
        { ignoreArrowShorthand: true, ignoreVoidReturningFunctions: true },
      ],
      // tsc's noUnusedParameters already accepts a leading underscore for a parameter an
      // override must declare but does not use (Python's handle_accepted(sock, addr)).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // Node 20 defines globalThis.Buffer and globalThis.performance as accessors, so every use
    // of the global is a getter call the JIT cannot fold away (callgrind saw one per receive);
    // the package imports them from node:buffer and node:perf_hooks instead.
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-globals': [
        'error',
        { name: 'Buffer', message: "import { Buffer } from 'node:buffer' (the global is an accessor)" },
        { name: 'performance', message: "import { performance } from 'node:perf_hooks' (the global is an accessor)" },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    extends: [js.configs.recommended],
    languageOptions: { ecmaVersion: 2022, sourceType: 'module', globals: nodeGlobals },
  },
  {
    files: ['**/*.cjs'],
    extends: [js.configs.recommended],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'commonjs',
      globals: {
        ...nodeGlobals,
        require: 'readonly',
        module: 'writable',
        exports: 'writable',
        __dirname: 'readonly',
        __filename: 'readonly',
      },
    },
  },
);
