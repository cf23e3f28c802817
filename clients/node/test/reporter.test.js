// The node:test reporter, end to end: a real `node --test` run streams into a real daemon's run.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Client } from '../index.js';
import { startDaemon } from './daemon.js';

const REPORTER = fileURLToPath(new URL('../reporter.js', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixtures/sample.fixture.js', import.meta.url));
const NEEDED = ['create_test_run', 'report_results', 'complete_test_run', 'get_test_run_status'];

function runNodeTest(extra) {
  // NODE_TEST_CONTEXT would make the inner `node --test` talk to this runner instead of its reporter
  const { NODE_TEST_CONTEXT, ...env } = extra;
  return new Promise((resolve) => {
    execFile(process.execPath, ['--test', `--test-reporter=${REPORTER}`, FIXTURE],
      { env, cwd: fileURLToPath(new URL('.', import.meta.url)), timeout: 60000 },
      (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }));
  });
}

describe('node:test reporter', () => {
  let daemon;
  let client;
  let missing = [];
  before(async () => {
    daemon = await startDaemon();
    client = await Client.connect({ path: daemon.path });
    missing = NEEDED.filter((m) => !client.methods.includes(m));
  });
  after(async () => {
    await client?.close();
    await daemon?.stop();
  });

  test('creates a run, reports every test with its suite and outcome, completes it', async (t) => {
    if (missing.length) return t.skip(`daemon does not serve ${missing.join(', ')} yet`);
    const { code, stdout } = await runNodeTest({ ...daemon.env, CI_SIDECAR_SOCKET: daemon.path, CI_SIDECAR_RUN_NAME: 'fixture' });
    assert.equal(code, 1, 'the test run itself failed (one failing test)');
    // 'parent' only holds its subtests: its "a subtest failed" is not a second failure
    const m = stdout.match(/ci-sidecar: run (\S+) failure: 3 passed, 2 failed, 1 errors, 1 skipped/);
    assert.ok(m, stdout);
    const report = stdout.match(/ci-sidecar: report: (\S+)/);
    assert.ok(report, `the report path is printed at the end: ${stdout}`);
    assert.ok(existsSync(report[1]), report[1]);
    const run = await client.request('get_test_run_status', { test_run_id: m[1] });
    assert.equal(run.name, 'fixture');
    assert.equal(run.status, 'finished');
    assert.equal(run.conclusion, 'failure');
    assert.deepEqual(
      { total: run.counts.total, passed: run.counts.passed, failed: run.counts.failed, errors: run.counts.errors, skipped: run.counts.skipped },
      { total: 7, passed: 3, failed: 2, errors: 1, skipped: 1 });
  });

  test('joins CI_SIDECAR_RUN_ID and leaves it running for its owner', async (t) => {
    if (missing.length) return t.skip(`daemon does not serve ${missing.join(', ')} yet`);
    const run = await client.request('create_test_run', { name: 'owned by exec' });
    const { stdout } = await runNodeTest({ ...daemon.env, CI_SIDECAR_SOCKET: daemon.path, CI_SIDECAR_RUN_ID: run.id });
    assert.match(stdout, new RegExp(`reported 7 results to run ${run.id} \\(joined`));
    const now = await client.request('get_test_run_status', { test_run_id: run.id });
    assert.equal(now.status, 'running');
    assert.equal(now.counts.total, 7);
  });

  test('says so, and fails the command, when no daemon can be reached', async () => {
    const { code, stdout } = await runNodeTest({ ...daemon.env, CI_SIDECAR_SOCKET: '/tmp/no-such-dir-cs/d.sock' });
    assert.match(stdout, /ci-sidecar: results NOT reported \(no ci-sidecar daemon at \/tmp\/no-such-dir-cs\/d\.sock/);
    assert.notEqual(code, 0);
  });
});
