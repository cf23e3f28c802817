// ci-sidecar export-runtime: GitHub sets ACTIONS_RUNTIME_TOKEN and ACTIONS_RESULTS_URL for JavaScript actions
// only; this writes them to $GITHUB_ENV (the file command behind @actions/core's exportVariable) so later
// `run:` steps, and the ci-sidecar daemon they start, can use the Actions artifact service.
// No dependencies on purpose: nothing to install, nothing to bundle.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const os = require('os');

function exportVariable(name, value) {
  const file = process.env.GITHUB_ENV;
  if (!file) {
    throw new Error('GITHUB_ENV is not set: use this action as a step of a GitHub Actions job');
  }
  // the multi-line form with a random delimiter: a value can never end the entry early
  const delimiter = `ghadelimiter_${crypto.randomUUID()}`;
  if (value.includes(delimiter)) {
    throw new Error(`the value of ${name} contains the delimiter`);
  }
  fs.appendFileSync(file, `${name}<<${delimiter}${os.EOL}${value}${os.EOL}${delimiter}${os.EOL}`, {
    encoding: 'utf8'
  });
}

function main() {
  const token = process.env.ACTIONS_RUNTIME_TOKEN || '';
  const resultsUrl = process.env.ACTIONS_RESULTS_URL || '';
  if (!token || !resultsUrl) {
    console.log('::warning::ACTIONS_RUNTIME_TOKEN or ACTIONS_RESULTS_URL is not set for this action; ' +
      'ci-sidecar will not upload GitHub artifacts (configure its S3 backend instead)');
    return;
  }
  console.log(`::add-mask::${token}`); // masked in the log like any secret, should a later step print it
  exportVariable('ACTIONS_RUNTIME_TOKEN', token);
  exportVariable('ACTIONS_RESULTS_URL', resultsUrl);
  const matrix = (process.env.INPUT_MATRIX || '').trim();
  if (matrix && matrix !== 'null' && matrix !== '{}') {
    exportVariable('CI_SIDECAR_MATRIX', matrix);
  }
  const prefix = (process.env.INPUT_PREFIX || '').trim();
  if (prefix) {
    exportVariable('CI_SIDECAR_ARTIFACT_PREFIX', prefix);
  }
  console.log('ci-sidecar: ACTIONS_RUNTIME_TOKEN and ACTIONS_RESULTS_URL exported to the following steps');
}

try {
  main();
} catch (err) {
  console.log(`::error::${err.message}`);
  process.exitCode = 1;
}
