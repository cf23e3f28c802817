// index.d.ts must be what scripts/gen-types.mjs generates from the daemon's rpc.discover today.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

test('committed index.d.ts matches rpc.discover (regenerate with node scripts/gen-types.mjs)', async () => {
  const script = fileURLToPath(new URL('../scripts/gen-types.mjs', import.meta.url));
  const { code, stderr } = await new Promise((resolve) => {
    execFile(process.execPath, [script, '--check'], { timeout: 60000 },
      (err, stdout, stderrText) => resolve({ code: err ? err.code : 0, stderr: stderrText }));
  });
  assert.equal(code, 0, stderr);
});
