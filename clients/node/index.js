// Zero-dependency Node.js client for the ci-sidecar daemon: JSON-RPC 2.0 with LSP framing over a Unix
// socket or a spawned daemon's stdio. One reader routes answers to the waiting promises, so any number
// of requests may be in flight on one connection.

import { spawn as spawnProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';

/** Protocol version this client speaks. */
export const PROTOCOL_VERSION = 1;
const MAX_HEADER = 8 * 1024;
const CLIENT_VERSION = '0.1.0';

/** A JSON-RPC error answer: `code`, `message` and `data` exactly as the daemon sent them. */
export class RpcError extends Error {
  constructor(code, message, data) {
    super(message);
    this.name = 'RpcError';
    /** JSON-RPC error code (e.g. -32602, -31001). */
    this.code = code;
    this.data = data === undefined ? null : data;
  }
}

/** The daemon went away (exited, crashed, closed the socket) before answering. */
export class ConnectionLost extends Error {
  constructor(message) {
    super(message);
    this.name = 'ConnectionLost';
  }
}

/** No daemon listens at the socket path, or the ci-sidecar command is not installed. */
export class DaemonNotFound extends Error {
  constructor(message) {
    super(message);
    this.name = 'DaemonNotFound';
  }
}

/** `$CI_SIDECAR_SOCKET`, else the daemon's default (`$XDG_RUNTIME_DIR/ci-sidecar/ci-sidecar.sock`). */
export function defaultSocketPath(env = process.env) {
  if (env.CI_SIDECAR_SOCKET) return env.CI_SIDECAR_SOCKET;
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime && existsSync(runtime) && statSync(runtime).isDirectory()) {
    return join(runtime, 'ci-sidecar', 'ci-sidecar.sock');
  }
  return join('/tmp', `runtime-${process.getuid()}`, 'ci-sidecar', 'ci-sidecar.sock');
}

/** Encode one message as an LSP frame. */
export function encodeFrame(message) {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  return Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`, 'ascii'), body]);
}

/** Incremental LSP frame parser: `push(chunk)` returns the complete bodies (as parsed JSON) so far. */
export class FrameDecoder {
  constructor() {
    this.buf = Buffer.alloc(0);
  }

  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out = [];
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (this.buf.length > MAX_HEADER) throw new ConnectionLost('header too large');
        return out;
      }
      let length = null;
      for (const line of this.buf.subarray(0, end).toString('ascii').split('\r\n')) {
        const colon = line.indexOf(':');
        if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === 'content-length') {
          length = Number.parseInt(line.slice(colon + 1).trim(), 10);
        }
      }
      if (length === null || Number.isNaN(length)) throw new ConnectionLost('frame without Content-Length');
      if (this.buf.length < end + 4 + length) return out;
      const body = this.buf.subarray(end + 4, end + 4 + length);
      this.buf = this.buf.subarray(end + 4 + length);
      out.push(JSON.parse(body.toString('utf8')));
    }
  }
}

function plainEnv(env) {
  const out = {};
  for (const [k, v] of Object.entries(env)) if (typeof v === 'string') out[k] = v;
  return out;
}

/** A session with the daemon. Create it with `Client.connect()` or `Client.spawn()`; end it with `close()`. */
export class Client {
  /** @internal use connect() or spawn() */
  constructor(readable, writable, { child = null, closer = () => {} } = {}) {
    this._in = readable;
    this._out = writable;
    this._child = child;
    this._closer = closer;
    this._nextId = 1;
    this._pending = new Map();
    this._listeners = new Set();
    this._lost = null;
    this._closed = false;
    this._decoder = new FrameDecoder();
    /** Answer of `initialize` (null when created with `initialize: false`). */
    this.initializeResult = null;
    /** The run to join: `ci-sidecar exec` sets CI_SIDECAR_RUN_ID for the commands it wraps. */
    this.runId = process.env.CI_SIDECAR_RUN_ID || null;
    readable.on('data', (chunk) => this._onData(chunk));
    readable.on('end', () => this._onEnd(new ConnectionLost('the daemon closed the connection')));
    readable.on('error', (err) => this._onEnd(new ConnectionLost(`connection error: ${err.message}`)));
    writable.on('error', (err) => this._onEnd(new ConnectionLost(`cannot send to the daemon: ${err.message}`)));
  }

  /**
   * Connect to a running daemon's Unix socket (default: `$CI_SIDECAR_SOCKET`) and initialize.
   * Rejects with DaemonNotFound when nobody listens there.
   */
  static async connect(options = {}) {
    const path = options.path || defaultSocketPath();
    const sock = await new Promise((resolve, reject) => {
      const s = netConnect({ path });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new DaemonNotFound(`no answer from a ci-sidecar daemon at ${path} within ${options.timeoutMs ?? 5000} ms`));
      }, options.timeoutMs ?? 5000);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(new DaemonNotFound(
          `no ci-sidecar daemon at ${path} (${err.code || err.message}); start one with \`ci-sidecar serve --socket ${path}\``));
      });
    });
    const client = new Client(sock, sock, { closer: () => sock.destroy() });
    await client._start(options);
    return client;
  }

  /** Start `ci-sidecar serve --stdio` (or `options.argv`) and talk over its stdin/stdout. */
  static async spawn(options = {}) {
    const argv = options.argv || ['ci-sidecar', 'serve', '--stdio'];
    const child = spawnProcess(argv[0], argv.slice(1), {
      stdio: ['pipe', 'pipe', options.stderr ?? 'inherit'],
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
    await new Promise((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => reject(err.code === 'ENOENT'
        ? new DaemonNotFound(`cannot start ${argv[0]}: command not found (install ci-sidecar from a checkout: 'pip install .' in a venv, or 'pipx install .')`)
        : err));
    });
    const client = new Client(child.stdout, child.stdin, { child, closer: () => child.stdin.destroy() });
    child.on('exit', (code, signal) => {
      client._onEnd(new ConnectionLost(`the daemon exited with ${signal ? `signal ${signal}` : `code ${code}`}`));
    });
    await client._start(options);
    return client;
  }

  async _start(options) {
    if (options.initialize === false) return;
    const params = {
      protocolVersion: PROTOCOL_VERSION,
      clientInfo: { name: options.clientName || 'ci-sidecar-client-node', version: CLIENT_VERSION },
      processId: process.pid,
      cwd: process.cwd(),
      env: plainEnv(process.env),
    };
    if (options.config) params.config = options.config;
    try {
      this.initializeResult = await this.request('initialize', params);
    } catch (err) {
      this._destroy();
      throw err;
    }
    this.notify('initialized', {});
  }

  /** Methods the daemon serves (from the `initialize` answer). */
  get methods() {
    return this.initializeResult?.capabilities?.methods ?? [];
  }

  /** Call `callback(method, params)` for every server notification; returns a function that unsubscribes. */
  onNotification(callback) {
    this._listeners.add(callback);
    return () => this._listeners.delete(callback);
  }

  _write(message) {
    if (this._lost) throw this._lost;
    this._out.write(encodeFrame(message));
  }

  /**
   * Send a request and resolve with its result; a JSON-RPC error rejects with RpcError.
   * `options.signal` (an AbortSignal) cancels it with `$/cancelRequest`: the promise then settles with the
   * daemon's answer (RpcError -32800 unless the request had already finished).
   */
  request(method, params, options = {}) {
    if (this._lost) return Promise.reject(this._lost);
    const id = this._nextId++;
    const message = { jsonrpc: '2.0', id, method };
    if (params !== undefined && params !== null) message.params = params;
    return new Promise((resolve, reject) => {
      const entry = { resolve, reject, cleanup: () => {} };
      this._pending.set(id, entry);
      const { signal, timeoutMs } = options;
      let timer = null;
      const onAbort = () => {
        if (this._pending.has(id) && !this._lost) this.notify('$/cancelRequest', { id });
      };
      if (signal) {
        if (signal.aborted) queueMicrotask(onAbort);
        else signal.addEventListener('abort', onAbort, { once: true });
      }
      if (timeoutMs) {
        timer = setTimeout(() => {
          if (!this._pending.delete(id)) return;
          onAbort();
          entry.cleanup();
          reject(new Error(`${method}: no answer within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      entry.cleanup = () => {
        if (timer) clearTimeout(timer);
        if (signal) signal.removeEventListener('abort', onAbort);
      };
      try {
        this._write(message);
      } catch (err) {
        this._pending.delete(id);
        entry.cleanup();
        reject(err);
      }
    });
  }

  /** Send a notification (no answer). */
  notify(method, params) {
    const message = { jsonrpc: '2.0', method };
    if (params !== undefined && params !== null) message.params = params;
    this._write(message);
  }

  /**
   * Send one JSON-RPC batch. `calls` is a list of `{method, params?, notification?}`; resolves with one
   * `{result}` or `{error: RpcError}` per request element, in the order of `calls` (notifications get none).
   */
  async batch(calls) {
    if (this._lost) throw this._lost;
    const message = [];
    const waits = [];
    for (const call of calls) {
      const m = { jsonrpc: '2.0', method: call.method };
      if (call.params !== undefined && call.params !== null) m.params = call.params;
      if (!call.notification) {
        m.id = this._nextId++;
        waits.push(new Promise((resolve) => {
          this._pending.set(m.id, {
            resolve: (result) => resolve({ result }),
            reject: (error) => resolve({ error }),
            cleanup: () => {},
          });
        }));
      }
      message.push(m);
    }
    this._write(message);
    const out = await Promise.all(waits);
    const lost = out.find((o) => o.error instanceof ConnectionLost);
    if (lost) throw lost.error;
    return out;
  }

  _onData(chunk) {
    let messages;
    try {
      messages = this._decoder.push(chunk);
    } catch (err) {
      this._onEnd(err instanceof ConnectionLost ? err : new ConnectionLost(`bad frame from the daemon: ${err.message}`));
      this._destroy();
      return;
    }
    for (const msg of messages) {
      for (const item of Array.isArray(msg) ? msg : [msg]) this._dispatch(item);
    }
  }

  _dispatch(item) {
    if (item === null || typeof item !== 'object') return;
    if ('method' in item && !('id' in item)) {
      for (const cb of [...this._listeners]) {
        try {
          cb(item.method, item.params);
        } catch {
          // a listener's bug must not break the connection
        }
      }
      return;
    }
    const entry = this._pending.get(item.id);
    if (!entry) {
      if (item.id === null && item.error) {
        // an error about the connection itself (framing, refused peer)
        const e = item.error;
        this._lost = new RpcError(e.code, e.message ?? '', e.data);
      }
      return;
    }
    this._pending.delete(item.id);
    entry.cleanup();
    if (item.error) entry.reject(new RpcError(item.error.code, item.error.message ?? '', item.error.data));
    else entry.resolve(item.result === undefined ? null : item.result);
  }

  _onEnd(error) {
    if (!this._lost) this._lost = this._closed ? new ConnectionLost('the client is closed') : error;
    const pending = [...this._pending.values()];
    this._pending.clear();
    for (const entry of pending) {
      entry.cleanup();
      entry.reject(this._lost instanceof ConnectionLost ? this._lost : new ConnectionLost(this._lost.message));
    }
  }

  _destroy() {
    this._closed = true;
    try {
      this._closer();
    } catch {
      // already gone
    }
  }

  /** `shutdown` (flushing this session's writes), then `exit`; resolves with the delivery summary. */
  async close({ timeoutMs = 30000 } = {}) {
    if (this._closed) return null;
    let summary = null;
    try {
      if (!this._lost) {
        summary = await this.request('shutdown', undefined, { timeoutMs });
        this.notify('exit');
      }
    } catch {
      // the session is over either way
    }
    this._closed = true;
    if (this._child) {
      const child = this._child;
      if (child.exitCode === null && child.signalCode === null) {
        await new Promise((resolve) => {
          const timer = setTimeout(() => {
            child.kill('SIGKILL');
            resolve();
          }, 10000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.stdin.end();
        });
      }
    } else {
      await new Promise((resolve) => {
        if (this._in.destroyed || this._in.readableEnded) return resolve();
        const timer = setTimeout(resolve, 2000);
        this._in.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        this._out.end();
      });
    }
    this._destroy();
    this._onEnd(new ConnectionLost('the client is closed'));
    return summary;
  }

  /** Exit code of a spawned daemon once it exited (null while it runs, or for a socket). */
  get exitCode() {
    return this._child ? this._child.exitCode : null;
  }

  // --- run helpers (docs/protocol.md "Test runs" and "Artifacts") ---------------------------------------

  /** Join `CI_SIDECAR_RUN_ID` when set (`joined: true`), else create a run named `name`. */
  async joinOrCreateRun(name, params = {}) {
    if (this.runId) {
      const run = await this.request('get_test_run_status', { test_run_id: this.runId });
      return { run, joined: true };
    }
    const run = await this.createTestRun({ name, ...params });
    return { run, joined: false };
  }

  /** `create_test_run`. */
  createTestRun(params) {
    return this.request('create_test_run', params);
  }

  /** `report_results` for one run. */
  reportResults(testRunId, results) {
    return this.request('report_results', { test_run_id: testRunId, results });
  }

  /**
   * `complete_test_run` (without a conclusion the daemon derives it from the results). A run this client
   * joined belongs to its owner: use `finishRun`, which leaves it.
   */
  completeTestRun(testRunId, conclusion, params = {}) {
    const p = { test_run_id: testRunId, ...params };
    if (conclusion) p.conclusion = conclusion;
    return this.request('complete_test_run', p);
  }

  /**
   * Complete the run unless it is the run this client joined (`CI_SIDECAR_RUN_ID`, set by `ci-sidecar exec`):
   * that run belongs to its owner, who completes it, so it is left running and returned as it is.
   * Completing waits for the run's delivery (`wait: true`). Resolves with `{ run, completed }`.
   */
  async finishRun(testRunId, conclusion, params = {}) {
    if (this.runId && testRunId === this.runId) {
      return { run: await this.request('get_test_run_status', { test_run_id: testRunId }), completed: false };
    }
    return { run: await this.completeTestRun(testRunId, conclusion, { wait: true, ...params }), completed: true };
  }

  /** `upload_artifact` of a file (daemon-side path) or of `content` (a Buffer or string, sent as base64). */
  uploadArtifact(testRunId, { path, content, ...rest }) {
    const p = { test_run_id: testRunId, ...rest };
    if (content !== undefined) p.content_base64 = Buffer.from(content).toString('base64');
    else p.path = path;
    return this.request('upload_artifact', p);
  }

  /** `get_artifact_url`. */
  getArtifactUrl(testRunId, name) {
    return this.request('get_artifact_url', { test_run_id: testRunId, name });
  }
}

/** Connect to `$CI_SIDECAR_SOCKET` (or `options.path`) when set, else spawn `ci-sidecar serve --stdio`. */
export async function open(options = {}) {
  if (options.path || process.env.CI_SIDECAR_SOCKET) return Client.connect(options);
  return Client.spawn(options);
}
