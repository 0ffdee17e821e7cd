import { fileURLToPath } from 'node:url';

import { defineConfig } from 'vitest/config';

// Under AddressSanitizer (.ci/sanitize preloads libasan into every process) everything runs two
// to five times slower; the limits are there to catch a hang, so they grow with it.
const slow = (process.env['LD_PRELOAD'] ?? '').includes('libasan') ? 3 : 1;

export default defineConfig({
  resolve: {
    // Tests import the package by its name, as its users do; the name maps to the sources.
    alias: { asyncore: fileURLToPath(new URL('./src/index.ts', import.meta.url)) },
  },
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 30_000 * slow,
    hookTimeout: 30_000 * slow,
    // Two cores: more parallel files only make timing-sensitive socket tests flaky.
    maxWorkers: 2,
  },
});
