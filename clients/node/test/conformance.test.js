// Replay clients/conformance/vectors.json through this client against a real daemon.

import { after, before, describe, test } from 'node:test';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { Client, FrameDecoder, RpcError, encodeFrame } from '../index.js';
import { startDaemon } from './daemon.js';
import { match, resolve } from './shape.js';

const VECTORS = JSON.parse(readFileSync(new URL('../../conformance/vectors.json', import.meta.url), 'utf8'));

/** A bare framed socket for the raw steps. */
async function rawConnection(path, initialize) {
  const sock = connect({ path });
  await new Promise((res, rej) => { sock.once('connect', res); sock.once('error', rej); });
  const decoder = new FrameDecoder();
  const queue = [];
  let waiter = null;
  sock.on('data', (chunk) => {
    queue.push(...decoder.push(chunk));
    if (waiter && queue.length) { const w = waiter; waiter = null; w(); }
  });
  const conn = {
    send: (m) => sock.write(encodeFrame(m)),
    async receive() {
      const deadline = setTimeout(() => { if (waiter) { const w = waiter; waiter = null; w(); } }, 5000);
      if (!queue.length) await new Promise((r) => { waiter = r; });
      clearTimeout(deadline);
      if (!queue.length) throw new Error('no answer on the raw connection');
      return queue.shift();
    },
    close: () => sock.destroy(),
  };
  if (initialize) {
    conn.send({ jsonrpc: '2.0', id: 'init', method: 'initialize', params: { protocolVersion: 1 } });
    const reply = await conn.receive();
    if (!reply.result) throw new Error(`raw initialize failed: ${JSON.stringify(reply)}`);
    conn.send({ jsonrpc: '2.0', method: 'initialized', params: {} });
  }
  return conn;
}

function outcomeOf(promise) {
  return promise.then(
    (result) => ['result', result],
    (err) => {
      if (!(err instanceof RpcError)) throw err;
      return ['error', { code: err.code, message: err.message, data: err.data }];
    },
  );
}

function check(expect, [kind, value], where) {
  const want = 'result' in expect ? 'result' : 'error';
  if (kind !== want) throw new Error(`${where}: expected ${want} ${JSON.stringify(expect[want])}, got ${kind} ${JSON.stringify(value)}`);
  try {
    match(expect[want], value);
  } catch (err) {
    throw new Error(`${where}: ${err.message}`);
  }
}

async function runCall(client, step, saved, where) {
  const notes = [];
  const off = client.onNotification((method, params) => notes.push({ method, params }));
  const started = performance.now();
  let outcome;
  try {
    const controller = new AbortController();
    const params = 'params' in step ? resolve(step.params, saved) : undefined;
    const pending = outcomeOf(client.request(step.call, params, { signal: controller.signal, timeoutMs: 30000 }));
    if ('cancel_after_ms' in step) {
      await new Promise((r) => setTimeout(r, step.cancel_after_ms));
      controller.abort();
    }
    outcome = await pending;
  } finally {
    off();
  }
  const ms = performance.now() - started;
  check(resolve(step.expect, saved), outcome, where);
  if ('expect_notifications' in step) {
    try {
      match(resolve(step.expect_notifications, saved), notes);
    } catch (err) {
      throw new Error(`${where}: notifications: ${err.message}`);
    }
  }
  if ('max_ms' in step && ms > step.max_ms) throw new Error(`${where}: took ${ms.toFixed(0)} ms, bound ${step.max_ms} ms`);
  if ('save' in step) saved[step.save] = outcome[1];
}

async function replay(scenario, path) {
  const init = scenario.initialize !== false;
  const client = await Client.connect({ path, initialize: init, clientName: 'conformance-node' });
  const saved = {};
  let raw = null;
  try {
    for (const [i, step] of scenario.steps.entries()) {
      const where = `${scenario.name} step ${i}`;
      if ('check_initialize' in step) {
        match(step.check_initialize, client.initializeResult);
      } else if ('call' in step) {
        await runCall(client, step, saved, where);
      } else if ('notify' in step) {
        client.notify(step.notify, step.params);
      } else if ('parallel' in step) {
        const started = performance.now();
        await Promise.all(step.parallel.map((sub, j) => runCall(client, sub, saved, `${where}.${j}`)));
        const ms = performance.now() - started;
        if ('max_ms' in step && ms > step.max_ms) throw new Error(`${where}: parallel calls took ${ms.toFixed(0)} ms, bound ${step.max_ms} ms`);
      } else if ('batch' in step) {
        const calls = step.batch.map((el) => ({ ...el, params: 'params' in el ? resolve(el.params, saved) : undefined }));
        const answers = await client.batch(calls);
        if (answers.length !== step.expect.length) throw new Error(`${where}: ${answers.length} answers, expected ${step.expect.length}`);
        answers.forEach((a, j) => {
          const outcome = a.error ? ['error', { code: a.error.code, message: a.error.message, data: a.error.data }] : ['result', a.result];
          check(resolve(step.expect[j], saved), outcome, `${where} [${j}]`);
        });
        if (!answers.length) {
          // nothing may come back: the next request must get its own answer
          await client.request('sidecar/status', undefined, { timeoutMs: 5000 });
        }
      } else if ('raw' in step) {
        raw = raw || await rawConnection(path, init);
        raw.send(step.raw);
        match(resolve(step.expect_raw, saved), await raw.receive(), `${where} raw`);
      } else {
        throw new Error(`${where}: unknown step ${JSON.stringify(step)}`);
      }
    }
  } finally {
    raw?.close();
    await client.close({ timeoutMs: 5000 });
  }
}

describe('conformance vectors', () => {
  let daemon;
  let methods = [];
  before(async () => {
    daemon = await startDaemon();
    const c = await Client.connect({ path: daemon.path });
    methods = c.methods;
    await c.close();
  });
  after(async () => { await daemon?.stop(); });

  for (const scenario of VECTORS.scenarios) {
    test(scenario.name, async (t) => {
      const missing = (scenario.requires || []).filter((m) => !methods.includes(m));
      if (missing.length) {
        t.skip(`daemon does not serve ${missing.join(', ')} yet`);
        return;
      }
      await replay(scenario, daemon.path);
    });
  }
});
