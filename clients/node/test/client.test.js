// Behaviour of the Node client against a real daemon: transports, errors, concurrency, lifecycle.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Client, ConnectionLost, DaemonNotFound, RpcError, defaultSocketPath, open } from '../index.js';
import { PYTHON, scrubbedEnv, startDaemon } from './daemon.js';
import { mkdtempSync, rmSync } from 'node:fs';

describe('socket client', () => {
  let daemon;
  before(async () => { daemon = await startDaemon(); });
  after(async () => { await daemon?.stop(); });

  test('sends the client environment: CI detection uses it, not the daemon\'s', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, { GITHUB_ACTIONS: 'true', CI: 'true', GITHUB_REPOSITORY: 'octo/widgets', GITHUB_SHA: 'a'.repeat(40) });
    try {
      const c = await Client.connect({ path: daemon.path });
      assert.equal(c.initializeResult.ci.provider, 'github');
      assert.equal(c.initializeResult.ci.repository, 'octo/widgets');
      await c.close();
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    }
    const local = await Client.connect({ path: daemon.path });
    assert.equal(local.initializeResult.ci.provider, 'local');
    await local.close();
  });

  test('errors are RpcError with code, message and data', async () => {
    const c = await Client.connect({ path: daemon.path });
    await assert.rejects(c.request('sidecar/debug/sleep', { seconds: 'x' }), (err) => {
      assert.ok(err instanceof RpcError);
      assert.equal(err.code, -32602);
      assert.equal(err.data.path, '$.seconds');
      assert.match(err.message, /seconds/);
      return true;
    });
    await c.close();
  });

  test('many concurrent requests on one connection', async () => {
    const c = await Client.connect({ path: daemon.path });
    const started = performance.now();
    const results = await Promise.all(Array.from({ length: 8 }, () => c.request('sidecar/debug/sleep', { seconds: 0.4 })));
    assert.equal(results.length, 8);
    assert.ok(performance.now() - started < 2000, 'requests were serialized');
    await c.close();
  });

  test('progress notifications reach the callback, and unsubscribe works', async () => {
    const c = await Client.connect({ path: daemon.path });
    const kinds = [];
    const off = c.onNotification((method, params) => { if (method === '$/progress') kinds.push(params.value.kind); });
    await c.request('sidecar/debug/sleep', { seconds: 0.1, workDoneToken: 7 });
    off();
    await c.request('sidecar/debug/sleep', { seconds: 0.1, workDoneToken: 8 });
    assert.equal(kinds[0], 'begin');
    assert.equal(kinds.at(-1), 'end');
    assert.equal(kinds.filter((k) => k === 'begin').length, 1);
    await c.close();
  });

  test('close returns the delivery summary and later requests fail clearly', async () => {
    const c = await Client.connect({ path: daemon.path });
    const summary = await c.close();
    assert.deepEqual(Object.keys(summary).sort().slice(0, 2), ['failed', 'pending']);
    await assert.rejects(c.request('sidecar/status'), ConnectionLost);
  });

  test('runId comes from CI_SIDECAR_RUN_ID', async () => {
    process.env.CI_SIDECAR_RUN_ID = 'run-from-exec';
    try {
      const c = await Client.connect({ path: daemon.path });
      assert.equal(c.runId, 'run-from-exec');
      await c.close();
    } finally {
      delete process.env.CI_SIDECAR_RUN_ID;
    }
  });

  test('open() uses CI_SIDECAR_SOCKET', async () => {
    process.env.CI_SIDECAR_SOCKET = daemon.path;
    try {
      assert.equal(defaultSocketPath(), daemon.path);
      const c = await open();
      assert.equal((await c.request('sidecar/status')).transport, 'socket');
      await c.close();
    } finally {
      delete process.env.CI_SIDECAR_SOCKET;
    }
  });
});

describe('missing or dying daemon', () => {
  test('connect to a path where nobody listens: DaemonNotFound naming the path', async () => {
    await assert.rejects(Client.connect({ path: '/tmp/no-such-dir-cs/d.sock' }), (err) => {
      assert.ok(err instanceof DaemonNotFound);
      assert.match(err.message, /no-such-dir-cs\/d\.sock/);
      return true;
    });
  });

  test('spawn of a missing command: DaemonNotFound', async () => {
    await assert.rejects(Client.spawn({ argv: ['ci-sidecar-not-installed-xyz', 'serve', '--stdio'] }), DaemonNotFound);
  });

  test('stdio daemon: works, and dying mid-request rejects pending calls with ConnectionLost', async () => {
    const dir = mkdtempSync('/tmp/csn');
    try {
      const c = await Client.spawn({
        argv: [PYTHON, '-m', 'ci_sidecar', 'serve', '--stdio', '--debug-methods'],
        env: scrubbedEnv(dir),
        stderr: 'ignore',
      });
      assert.equal((await c.request('sidecar/status')).transport, 'stdio');
      const pending = c.request('sidecar/debug/sleep', { seconds: 30 });
      setTimeout(() => c._child.kill('SIGKILL'), 100);
      await assert.rejects(pending, (err) => {
        assert.ok(err instanceof ConnectionLost, String(err));
        return true;
      });
      await assert.rejects(c.request('sidecar/status'), ConnectionLost);
      await c.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('stdio daemon exits 0 after close', async () => {
    const dir = mkdtempSync('/tmp/csn');
    try {
      const c = await Client.spawn({
        argv: [PYTHON, '-m', 'ci_sidecar', 'serve', '--stdio'], env: scrubbedEnv(dir), stderr: 'ignore',
      });
      await c.close();
      assert.equal(c.exitCode, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
