// Compiled by `tsc --noEmit` only: proves index.d.ts is valid and that typed calls type-check.
import { Client, RpcError, open, type InitializeResult, type MethodResult } from '../index.js';

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
