// The Temporal Web UI, driven by a real browser (Debian's Chromium through playwright-core), shows a provision
// workflow found by its InstanceId search attribute, with its input decoded by brokerflow's codec server.
//
// This file starts its own Temporal dev server, because the UI's codec endpoint is fixed when the server starts
// (`--ui-codec-endpoint`), and a codec server on a port chosen before that.
//
// How the UI authenticates to the codec server (which never answers without credentials): the UI's codec settings
// have two options. "Pass the user access token" sends the bearer token of the UI's own OIDC login, and only to an
// https endpoint: the dev server has neither a login nor https, so there is no token to pass. "Include cross-origin
// credentials" makes the UI call `fetch(endpoint + '/decode', { credentials: 'include' })`, so the browser sends the
// HTTP credentials it holds for the codec server's origin, and answers its 401 Basic challenge. Two browsers show it:
// one whose challenge Playwright's `httpCredentials` (limited to the codec origin) answers, and one with no
// automation that signed in on the codec server's own page first. The codec server is not weakened: CORS grants
// only the UI's origin, and without that setting every /decode call is refused and the UI shows the input encrypted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startTemporal, type TemporalDevServer } from '../../scripts/lib/temporal';
import { freePort, repoRoot, runInstaller } from '../../scripts/lib/process';
import { buildCodecServer, codecAccess } from '../../client/codec-server';
import { codecFromConfig } from '../../platform/codec';
import { createLogger } from '../../platform/logging';
import { startTestStack, pollLastOperation, type TestStack } from '../support/stack';
import { basicAuth, testCodecUser } from '../support/config';
import { requireTestEnv } from '../support/env';
import { ORG_SPACE } from '../support/osb';

const SERVICE = '6db0d0a4-2b5e-4c1e-9a1f-7f6d2c0e5a11';
const PLAN = '0f3e7c7e-1c1b-4a0e-8a56-1b9c4d1f2a01';
const artifacts = resolve(repoRoot, 'test', 'artifacts');

let temporal: TemporalDevServer;
let codec: FastifyInstance;
let codecUrl: string;
/** What the codec server answered, in order (to tell its refusals from other failures). */
const codecAnswers: Array<{ path: string; status: number }> = [];
let stack: TestStack;
let context: BrowserContext;
let ownDir: string;
const profiles: string[] = [];

/** Debian's Chromium, installed on first use by scripts/install/chromium.sh (the path is its last line). */
let chromiumBin: string | undefined;
function chromiumPath(): string {
  if (chromiumBin) return chromiumBin;
  const out = execFileSync('bash', [join(repoRoot, 'scripts', 'install', 'chromium.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const path = out.trim().split('\n').pop()?.trim();
  if (!path) throw new Error('scripts/install/chromium.sh printed no path');
  chromiumBin = path;
  return path;
}

/** Headless Chromium with a fresh profile, as the Web UI test's browser. */
async function launchBrowser(opts: { httpCredentials?: { username: string; password: string; origin: string } } = {}): Promise<BrowserContext> {
  const userDataDir = mkdtempSync(join(ownDir, 'chromium-profile-'));
  profiles.push(userDataDir);
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath(),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1440, height: 1000 },
    ...opts,
  });
}

before(async () => {
  const workDir = requireTestEnv('workDir');
  const own = mkdtempSync(join(workDir, 'web-ui-'));
  const codecPort = await freePort();
  codecUrl = `http://127.0.0.1:${codecPort}`;
  temporal = await startTemporal({ dataDir: join(own, 'temporal'), logDir: join(own, 'logs'), codecEndpoint: codecUrl });
  stack = await startTestStack({
    overrides: { temporal: { address: temporal.address, namespace: 'default', taskQueue: `tq-web-ui-${randomBytes(4).toString('hex')}` } },
  });
  const payloadCodec = codecFromConfig(stack.config);
  assert.ok(payloadCodec, 'the test configuration has encryption keys');
  codec = await buildCodecServer({
    codec: payloadCodec,
    ...codecAccess(stack.config),
    corsOrigins: [temporal.uiUrl],
    logger: createLogger('codec-server', { level: 'silent' }),
  });
  codec.addHook('onResponse', async (req, reply) => {
    codecAnswers.push({ path: req.url.split('?')[0]!, status: reply.statusCode });
  });
  await codec.listen({ host: '127.0.0.1', port: codecPort });
  ownDir = own;
  context = await launchBrowser({
    // Only the codec server's origin ever gets these credentials.
    httpCredentials: { username: testCodecUser.username, password: testCodecUser.password, origin: codecUrl },
  });
});

/** Waits at most `ms` for a shutdown step, so one stuck close cannot keep the test file alive. */
async function bounded(what: string, p: Promise<unknown> | undefined, ms = 15_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p?.catch(() => undefined), new Promise((r) => (timer = setTimeout(() => r(console.error(`# ${what} did not close within ${ms} ms`)), ms)))]);
  clearTimeout(timer);
}

after(async () => {
  await bounded('the browser', context?.close());
  // Chromium can outlive a close that timed out: end every process started with one of our profiles.
  for (const dir of profiles) spawnSync('pkill', ['-KILL', '-f', `--user-data-dir=${dir}`]);
  await bounded('the broker and worker', stack?.close());
  await bounded('the codec server', codec?.close());
  await bounded('the Temporal server', temporal?.stop());
  for (const dir of profiles) rmSync(dir, { recursive: true, force: true });
}, { timeout: 90_000 });

/** Saves a screenshot under test/artifacts (gitignored) and returns its path. */
async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(artifacts, { recursive: true });
  const path = join(artifacts, `web-ui-${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Sets the UI's codec settings as a user does in its codec dialog: our endpoint, and whether to include
 *  cross-origin credentials (the UI persists exactly these keys in localStorage). */
async function configureCodecInUi(page: Page, includeCredentials: boolean): Promise<void> {
  await page.goto(`${temporal.uiUrl}/namespaces/default/workflows`);
  await page.evaluate(
    ({ endpoint, include }) => {
      // Runs in the page (this project's TypeScript has no DOM types).
      const localStorage = (globalThis as unknown as { localStorage: { setItem(key: string, value: string): void } }).localStorage;
      localStorage.setItem('endpoint', JSON.stringify(endpoint));
      localStorage.setItem('overrideRemoteCodecConfiguration', 'true');
      localStorage.setItem('includeCredentials', JSON.stringify(include));
      localStorage.setItem('passAccessToken', 'false');
    },
    { endpoint: codecUrl, include: includeCredentials },
  );
}

/** Provisions an instance with a recognisable parameter and waits until it succeeded. */
async function provision(): Promise<{ instanceId: string; quota: number }> {
  const instanceId = `ui-${randomUUID()}`;
  const quota = 4000 + Math.floor(Math.random() * 999);
  const put = await stack.osb('PUT', `/v2/service_instances/${instanceId}?accepts_incomplete=true`, { service_id: SERVICE, plan_id: PLAN, ...ORG_SPACE, parameters: { quotaKeys: quota } });
  assert.equal(put.statusCode, 202, put.body);
  const done = await pollLastOperation(stack, `/v2/service_instances/${instanceId}`, put.json().operation as string);
  assert.equal(done.body.state, 'succeeded', JSON.stringify(done));
  return { instanceId, quota };
}

/** Finds the instance's workflow through the UI's list query on InstanceId and opens it; returns the codec
 *  server's answers to the page's /decode calls. */
async function openByInstanceId(page: Page, instanceId: string, listShot?: string): Promise<number[]> {
  const decodeCalls: number[] = [];
  page.on('response', (res) => {
    if (res.url().startsWith(`${codecUrl}/decode`) && res.request().method() === 'POST') decodeCalls.push(res.status());
  });
  await page.goto(`${temporal.uiUrl}/namespaces/default/workflows?query=${encodeURIComponent(`InstanceId="${instanceId}"`)}`);
  const row = page.getByRole('link', { name: `instance/${instanceId}` });
  await row.first().waitFor({ timeout: 30_000 });
  assert.equal(await row.count(), 1, 'the query finds exactly the one provision workflow');
  if (listShot) await screenshot(page, listShot);
  await row.first().click();
  await page.waitForURL(/\/workflows\/instance%2F/, { timeout: 30_000 });
  return decodeCalls;
}

test('the Web UI finds a provision by its InstanceId and shows its input decoded through the codec server', async () => {
  const { instanceId, quota } = await provision();
  // The history holds the input encrypted: without the codec server nobody reads the parameters.
  const history = await stack.client.workflow.getHandle(`instance/${instanceId}`).fetchHistory();
  const startedInput = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  assert.equal(Buffer.from(startedInput?.metadata?.encoding ?? []).toString(), 'binary/encrypted');
  assert.ok(!Buffer.from(startedInput?.data ?? []).toString('latin1').includes(`"quotaKeys":${quota}`));

  const page = await context.newPage();
  try {
    await configureCodecInUi(page, true);
    const decodeCalls = await openByInstanceId(page, instanceId, 'list');
    await page.getByText(`"quotaKeys": ${quota}`).filter({ visible: true }).first().waitFor({ timeout: 30_000 });
    const text = await page.locator('body').innerText();
    assert.ok(text.includes(`"instanceId": "${instanceId}"`), 'the decoded input shows the instance ID');
    assert.ok(text.includes(`"operation": "provision"`), 'the decoded input shows the operation');
    // The provision's steps ran as local activities (workflows/local-first.ts): the timeline names each by its type.
    for (const step of ['recordBegin', 'getCurrentState', 'applyCreateChange', 'recordComplete']) assert.ok(text.includes(step), `the timeline shows the step ${step}`);
    // Their summaries, which name the resource, are on the markers' events.
    await page.getByText('Event History').filter({ visible: true }).first().click();
    await page.getByText('keyspace').filter({ visible: true }).first().waitFor({ timeout: 30_000 });
    assert.ok(!text.includes('Codec Server could not connect'));
    assert.ok(decodeCalls.length > 0 && decodeCalls.every((s) => s === 200), `the codec server decoded for the UI: ${decodeCalls.join(',')}`);
    await screenshot(page, 'provision');
  } catch (err) {
    await screenshot(page, 'failure').catch(() => undefined);
    throw err;
  } finally {
    await page.close();
  }
});

test('without cross-origin credentials the codec server refuses the UI and the input stays encrypted', async () => {
  const { instanceId, quota } = await provision();
  const page = await context.newPage();
  try {
    await configureCodecInUi(page, false);
    const decodeCalls = await openByInstanceId(page, instanceId);
    await page.getByText('Codec Server could not connect').filter({ visible: true }).first().waitFor({ timeout: 30_000 });
    const text = await page.locator('body').innerText();
    assert.ok(!text.includes(`"quotaKeys": ${quota}`), 'the parameters are not shown');
    assert.ok(!text.includes(`"instanceId": "${instanceId}"`), 'the input is not shown decoded');
    assert.ok(decodeCalls.length > 0 && decodeCalls.every((s) => s === 401), `every /decode call was refused: ${decodeCalls.join(',')}`);
    await screenshot(page, 'no-credentials');
  } catch (err) {
    await screenshot(page, 'failure-no-credentials').catch(() => undefined);
    throw err;
  } finally {
    await page.close();
  }
});

test('a browser signed in to the codec server once decodes in the UI without any automation answering for it', async () => {
  const { instanceId, quota } = await provision();
  // No httpCredentials here: the person signs in on the codec server's own page (credentials in the URL stand in
  // for typing them into the browser's prompt), and the browser reuses them for the UI's credentialed calls.
  const browser = await launchBrowser();
  const page = await browser.newPage();
  try {
    const signIn = new URL(codecUrl);
    signIn.username = testCodecUser.username;
    signIn.password = testCodecUser.password;
    const landing = await page.goto(signIn.toString());
    assert.equal(landing?.status(), 404, 'signed in: the codec server answers (it has no page at /)');
    await configureCodecInUi(page, true);
    const decodeCalls = await openByInstanceId(page, instanceId);
    await page.getByText(`"quotaKeys": ${quota}`).filter({ visible: true }).first().waitFor({ timeout: 30_000 });
    assert.ok(decodeCalls.length > 0 && decodeCalls.every((s) => s === 200), `the codec server decoded for the UI: ${decodeCalls.join(',')}`);
    await screenshot(page, 'signed-in');
  } catch (err) {
    await screenshot(page, 'failure-signed-in').catch(() => undefined);
    throw err;
  } finally {
    await browser.close();
  }
});

test('the temporal CLI decodes the same history through the codec server with the codec credential, and not with the platform\'s', async () => {
  const { instanceId, quota } = await provision();
  // Asynchronously: the codec server answering the CLI runs in this process.
  const show = (auth?: string) =>
    new Promise<{ code: number | null; out: string; err: string }>((res) => {
      const args = ['workflow', 'show', '-w', `instance/${instanceId}`, '--address', temporal.address, '--output', 'json', '--codec-endpoint', codecUrl, ...(auth ? ['--codec-auth', auth] : []), ...(auth === basicAuth(testCodecUser) ? [] : ['--command-timeout', '3s'])];
      const child = spawn(runInstaller('temporal'), args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' } });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('close', (code) => res({ code, out, err }));
    });
  const decoded = await show(basicAuth(testCodecUser));
  assert.equal(decoded.code, 0, decoded.err);
  // The CLI prints the payloads as the codec server returned them: plain JSON payloads, base64 in the JSON output.
  type JsonPayload = { metadata: { encoding: string }; data: string };
  const history = JSON.parse(decoded.out) as { events: Array<{ workflowExecutionStartedEventAttributes?: { input: { payloads: JsonPayload[] } } }> };
  const payload = history.events[0]!.workflowExecutionStartedEventAttributes!.input.payloads[0]!;
  assert.equal(Buffer.from(payload.metadata.encoding, 'base64').toString(), 'json/plain');
  const input = JSON.parse(Buffer.from(payload.data, 'base64').toString()) as { instanceId: string; parameters: unknown };
  assert.equal(input.instanceId, instanceId);
  assert.deepEqual(input.parameters, { quotaKeys: quota });
  for (const auth of [undefined, basicAuth()]) {
    const seen = codecAnswers.length;
    const refused = await show(auth);
    assert.notEqual(refused.code, 0, `${auth ? 'with the OSB platform\'s credentials' : 'without credentials'} the codec server refuses the CLI too`);
    // (The CLI retries the refused /decode until its deadline, then reports the deadline.)
    const answers = codecAnswers.slice(seen).filter((a) => a.path === '/decode');
    assert.ok(answers.length > 0 && answers.every((a) => a.status === 401), JSON.stringify(answers));
    assert.ok(!refused.out.includes(`"quotaKeys"`));
  }
});
