// A reporter for Node's built-in test runner that streams every test result into a ci-sidecar run:
//
//   node --test --test-reporter=spec --test-reporter-destination=stdout \
//               --test-reporter=ci-sidecar-client/reporter --test-reporter-destination=stderr
//
// It joins the run in CI_SIDECAR_RUN_ID (set by `ci-sidecar exec`; the owner completes it) or creates
// one named $CI_SIDECAR_RUN_NAME (default "node --test") and completes it when the tests end. It talks
// to $CI_SIDECAR_SOCKET when set, else spawns `ci-sidecar serve --stdio`.

import { join, relative } from 'node:path';
import { open } from './index.js';

const FLUSH_EVERY = 50;
const FLUSH_MS = 100;
const MAX_TEXT = 64 * 1024;

function clip(text) {
  if (typeof text !== 'string') return undefined;
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}\n… (${text.length - MAX_TEXT} more characters)` : text;
}

/** The assertion behind Node's ERR_TEST_FAILURE wrapper. */
function failureOf(error) {
  if (!error) return { message: undefined, details: undefined };
  const cause = error.code === 'ERR_TEST_FAILURE' && error.cause ? error.cause : error;
  const message = cause instanceof Error ? cause.message : String(cause);
  const details = cause instanceof Error ? cause.stack : undefined;
  return { message: clip(message), details: clip(details) };
}

/** Turns runner events into TestResult objects (docs/protocol.md "Test runs"), tracking suite nesting per file. */
export class ResultMapper {
  constructor(cwd = process.cwd()) {
    this.cwd = cwd;
    this.stacks = new Map(); // file -> [name at nesting 0, 1, ...]
    this.parents = new Map(); // file -> [whether the open test at nesting 0, 1, ... has started a subtest]
    this.reportedFiles = new Set();
  }

  /** The TestResult for an event, or null when the event is not a test's outcome. */
  map(event) {
    const { type, data } = event;
    if (type === 'test:start') {
      const stack = this.stacks.get(data.file) || [];
      stack.length = data.nesting;
      stack[data.nesting] = data.name;
      this.stacks.set(data.file, stack);
      const parents = this.parents.get(data.file) || [];
      parents.length = data.nesting;
      if (data.nesting > 0) parents[data.nesting - 1] = true;
      parents[data.nesting] = false;
      this.parents.set(data.file, parents);
      return null;
    }
    if (type !== 'test:pass' && type !== 'test:fail') return null;
    const file = data.file ? relative(this.cwd, data.file) || data.file : undefined;
    if (data.details?.type === 'suite') return null;
    // a test that ran subtests is a container: its subtests are the tests, and a failure that only
    // says "a subtest failed" is theirs, not a second one; a container failing on its own still counts
    const container = Boolean((this.parents.get(data.file) || [])[data.nesting]);
    const failureType = data.details?.error?.failureType;
    if (failureType === 'subtestsFailed' || (container && type === 'test:pass')) return null;
    if (data.file && data.name === data.file) {
      // the file itself: only worth a result when it failed without running any test (e.g. a syntax error)
      if (type === 'test:pass' || this.reportedFiles.has(data.file)) return null;
      const { message, details } = failureOf(data.details?.error);
      return { name: file, suite: file, file, status: 'error', message, details };
    }
    if (data.file) this.reportedFiles.add(data.file);
    const stack = (this.stacks.get(data.file) || []).slice(0, data.nesting);
    const result = {
      name: data.name,
      suite: [file, ...stack].filter(Boolean).join(' > ') || undefined,
      classname: stack.join(' > ') || undefined,
      file,
      line: data.line,
      status: 'passed',
      duration: typeof data.details?.duration_ms === 'number' ? data.details.duration_ms / 1000 : undefined,
    };
    if (data.skip !== undefined || data.todo !== undefined) {
      result.status = 'skipped';
      const why = data.skip ?? data.todo;
      if (typeof why === 'string') result.message = why;
    } else if (type === 'test:fail') {
      const err = data.details?.error;
      const cause = err?.code === 'ERR_TEST_FAILURE' ? err.cause : err;
      // an assertion is a failure; anything else thrown (TypeError, timeouts) is an error
      result.status = cause?.code === 'ERR_ASSERTION' || cause?.name === 'AssertionError' ? 'failed' : 'error';
      Object.assign(result, failureOf(err));
    }
    for (const k of Object.keys(result)) if (result[k] === undefined) delete result[k];
    return result;
  }
}

/** The reporter: an async generator over the runner's events (Node's custom reporter interface). */
export default async function* ciSidecarReporter(source) {
  const mapper = new ResultMapper();
  let client = null;
  let runId = null;
  let joined = false;
  let failure = null;
  let buffer = [];
  let timer = null;
  const inFlight = [];
  const counts = { sent: 0 };

  const start = async () => {
    client = await open({ clientName: 'ci-sidecar-node-test-reporter' });
    const got = await client.joinOrCreateRun(process.env.CI_SIDECAR_RUN_NAME || 'node --test');
    runId = got.run.id;
    joined = got.joined;
  };
  const starting = start().catch((err) => { failure = err; });

  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (!buffer.length) return;
    const batch = buffer;
    buffer = [];
    // requests on one run apply in arrival order, so they can be pipelined
    inFlight.push(starting.then(() => {
      if (failure) return;
      return client.reportResults(runId, batch).then(() => { counts.sent += batch.length; });
    }).catch((err) => { failure = failure || err; }));
  };

  for await (const event of source) {
    const result = mapper.map(event);
    if (!result) continue;
    buffer.push(result);
    if (buffer.length >= FLUSH_EVERY) flush();
    else if (!timer) timer = setTimeout(flush, FLUSH_MS);
  }
  flush();
  await starting;
  await Promise.all(inFlight);
  if (failure) {
    yield `ci-sidecar: results NOT reported (${failure.message})\n`;
    process.exitCode = process.exitCode || 1;
    await client?.close().catch(() => {});
    return;
  }
  try {
    if (joined) {
      yield `ci-sidecar: reported ${counts.sent} results to run ${runId} (joined; its owner completes it)\n`;
    } else {
      // waits for the run's delivery, so the report exists when its path is printed
      const { run } = await client.finishRun(runId);
      const c = run.counts || {};
      yield `ci-sidecar: run ${runId} ${run.conclusion}: ${c.passed ?? 0} passed, ${c.failed ?? 0} failed, ` +
        `${c.errors ?? 0} errors, ${c.skipped ?? 0} skipped\n`;
      if (run.output_dir) yield `ci-sidecar: report: ${join(run.output_dir, 'report.html')}\n`;
      const undelivered = (run.delivery?.pending ?? 0) + (run.delivery?.failed ?? 0);
      if (undelivered) yield `ci-sidecar: ${undelivered} provider writes undelivered ${run.delivery.last_error ?? ''}\n`;
    }
  } catch (err) {
    yield `ci-sidecar: could not complete run ${runId} (${err.message})\n`;
    process.exitCode = process.exitCode || 1;
  } finally {
    await client.close().catch(() => {});
  }
}
