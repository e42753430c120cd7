#!/usr/bin/env node
// Kubernetes readiness probe for the broker: GET /readyz with the broker's own credentials and exit 0 only on 200.
// An `httpGet` probe cannot be used because /readyz requires authentication and a probe's headers would have to
// hold the password in the manifest; this reads it from the mounted Secret instead. Plain Node (no tsx), so each
// probe costs one short-lived process.
//
//   BROKERFLOW_PROBE_URL       default http://127.0.0.1:8080/readyz
//   BROKERFLOW_PROBE_USER      the broker.auth.basic username
//   BROKERFLOW_PROBE_PASSWORD_FILE   file holding its password (the mounted Secret key)
//   BROKERFLOW_PROBE_TIMEOUT_MS      default 2500 (keep it below the probe's timeoutSeconds)
'use strict';
const { readFileSync } = require('node:fs');

async function probe() {
  const url = process.env.BROKERFLOW_PROBE_URL || 'http://127.0.0.1:8080/readyz';
  const user = process.env.BROKERFLOW_PROBE_USER;
  const file = process.env.BROKERFLOW_PROBE_PASSWORD_FILE;
  if (!user || !file) {
    process.stderr.write('readyz-probe: set BROKERFLOW_PROBE_USER and BROKERFLOW_PROBE_PASSWORD_FILE\n');
    return 2;
  }
  const password = readFileSync(file, 'utf8').trim();
  const res = await fetch(url, {
    headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` },
    signal: AbortSignal.timeout(Number(process.env.BROKERFLOW_PROBE_TIMEOUT_MS || 2500)),
  });
  const body = await res.text();
  // The body names the failing check (temporal, registry); it never holds a credential.
  if (res.status !== 200) process.stdout.write(`readyz ${res.status}: ${body.slice(0, 500)}\n`);
  return res.status === 200 ? 0 : 1;
}

probe().then(
  (code) => process.exit(code),
  (err) => {
    process.stdout.write(`readyz-probe: ${err && err.name === 'TimeoutError' ? 'no answer in time' : err && err.message}\n`);
    process.exit(1);
  },
);
