// Test helper: start a real ci-sidecar daemon on a short /tmp socket path with a scrubbed environment.

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

const CI_PREFIXES = ['CI_', 'GITHUB_', 'GITLAB_', 'JENKINS_', 'BUILD_', 'SYSTEM_', 'TF_', 'CIRCLE', 'TEAMCITY_',
  'TRAVIS', 'BITBUCKET_', 'RUNNER_', 'ACTIONS_', 'AGENT_', 'CHANGE_', 'GIT_', 'ghprb', 'gitlab'];
const CI_NAMES = new Set(['CI', 'JOB_NAME', 'BUILD_NUMBER', 'BUILD_URL', 'BUILD_ID', 'JOB_URL', 'NOTIFY_SOCKET',
  'LISTEN_FDS', 'LISTEN_PID', 'STATE_DIRECTORY', 'RUNTIME_DIRECTORY', 'CACHE_DIRECTORY', 'CREDENTIALS_DIRECTORY',
  'WATCHDOG_USEC', 'WATCHDOG_PID']);

/** The Python that runs the daemon (the pytest wrapper passes its own). */
export const PYTHON = process.env.CI_SIDECAR_TEST_PYTHON || 'python3';

/** This process's environment without CI/provider variables, with private XDG and state dirs under `dir`. */
export function scrubbedEnv(dir, extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (CI_NAMES.has(k) || CI_PREFIXES.some((p) => k.startsWith(p))) continue;
    env[k] = v;
  }
  for (const name of ['XDG_STATE_HOME', 'XDG_CONFIG_HOME', 'XDG_CACHE_HOME', 'XDG_RUNTIME_DIR']) {
    const d = join(dir, name.toLowerCase());
    mkdirSync(d, { recursive: true, mode: 0o700 });
    env[name] = d;
  }
  env.CI_SIDECAR_STATE_DIR = join(dir, 'state');
  // local run output (ci-sidecar-out) would otherwise land in the client's cwd, i.e. the checkout
  env.CI_SIDECAR_OUTPUT_DIR = join(dir, 'out');
  env.PYTHONUNBUFFERED = '1';
  return { ...env, ...extra };
}

function canConnect(path) {
  return new Promise((resolve) => {
    const s = connect({ path });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** Start `python -m ci_sidecar serve --socket <short path> --debug-methods`; `stop()` ends it. */
export async function startDaemon({ debug = true } = {}) {
  const dir = mkdtempSync('/tmp/csn');
  const path = join(dir, 'd.sock');
  const env = scrubbedEnv(dir);
  // the daemon takes output_dir from the *client's* environment: keep run output out of the checkout
  if (!process.env.CI_SIDECAR_OUTPUT_DIR) {
    const out = mkdtempSync('/tmp/csn');
    process.env.CI_SIDECAR_OUTPUT_DIR = join(out, 'out');
    process.once('exit', () => rmSync(out, { recursive: true, force: true }));
  }
  const args = ['-m', 'ci_sidecar', 'serve', '--socket', path];
  if (debug) args.push('--debug-methods');
  const child = spawn(PYTHON, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  const deadline = Date.now() + 15000;
  while (!(existsSync(path) && await canConnect(path))) {
    if (child.exitCode !== null) throw new Error(`daemon exited with ${child.exitCode}: ${log}`);
    if (Date.now() > deadline) throw new Error(`daemon not ready: ${log}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    path,
    env,
    dir,
    child,
    log: () => log,
    async stop() {
      if (child.exitCode === null) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
        await done;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
