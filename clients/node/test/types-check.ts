// Compiled by `tsc --noEmit` only: proves index.d.ts is valid and that typed calls type-check.
import { Client, RpcError, open, type InitializeResult, type MethodResult, type TestResult, type TestRun } from '../index.js';

async function example(): Promise<void> {
  const c: Client = await open();
  const init: InitializeResult | null = c.initializeResult;
  const status = await c.request('sidecar/status', {});
  const version: string = status.version;
  const slept: number = (await c.request('sidecar/debug/sleep', { seconds: 0.1, workDoneToken: 'x' })).slept;
  // @ts-expect-error seconds must be a number
  await c.request('sidecar/debug/sleep', { seconds: 'soon' });
  const anything: unknown = await c.request('a/method/added/later', { x: 1 });
  const off = c.onNotification((method, params) => void [method, params]);
  off();
  const answers = await c.batch([{ method: 'sidecar/status' }, { method: 'initialized', notification: true }]);
  for (const a of answers) if (a.error) void (a.error.code as number);
  const { run } = await c.joinOrCreateRun('unit');
  const r: MethodResult<'create_test_run'> = run;
  try {
    await c.request('sidecar/status');
  } catch (err) {
    if (err instanceof RpcError) void [err.code, err.message, err.data];
  }
  void [init, version, slept, anything, r];
  await c.close();
}
void example;

// Results: the exported TestResult type is what reportResults takes; wrong statuses and misspelt
// fields are compile errors, not data silently lost.
async function results(c: Client, runId: string): Promise<void> {
  const typed: TestResult[] = [{ name: 'adds', status: 'passed', duration: 0.01, file: 'math.test.js', line: 3 }];
  await c.reportResults(runId, typed);
  await c.reportResults(runId, [{ name: 'divides', status: 'failed', message: 'expected 2, got 3' }]);
  // @ts-expect-error 'pass' is not a status (passed | failed | error | skipped)
  await c.reportResults(runId, [{ name: 'adds', status: 'pass' }]);
  // @ts-expect-error `mesage` is not a field of TestResult
  await c.reportResults(runId, [{ name: 'adds', status: 'failed', mesage: 'typo' }]);
  // @ts-expect-error `duraton` is not a field of TestResult
  const misspelt: TestResult = { name: 'adds', status: 'passed', duraton: 1 };
  // @ts-expect-error a result needs a status
  await c.reportResults(runId, [{ name: 'adds' }]);
  const { run, completed }: { run: TestRun; completed: boolean } = await c.finishRun(runId, 'failure', { wait_s: 5 });
  // @ts-expect-error 'failed' is not a conclusion (success | failure | cancelled | neutral | timed_out)
  await c.finishRun(runId, 'failed');
  void [misspelt, run, completed];
}
void results;
