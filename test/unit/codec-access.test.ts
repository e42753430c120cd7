// Who may use the codec server is configured apart from the broker: `codecServer.auth` holds credentials of its
// own, which may not repeat a broker secret, and `codecServer.namespaces` the namespaces it serves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError } from '../../config/catalog';
import { validateRuntimeConfig } from '../../config/runtime';
import { codecAccess } from '../../client/codec-server';

const catalog = resolve(__dirname, '..', '..', 'config', 'catalog.example.yaml');
const brokerPassword = 'broker-secret-value-1';
const codecPassword = 'codec-secret-value-2';
const config = (codecServer: unknown, extra: Record<string, unknown> = {}, baseDir = process.cwd()) =>
  validateRuntimeConfig(
    { catalog, temporal: { namespace: 'brokerflow' }, broker: { auth: { basic: [{ username: 'platform', password: brokerPassword }] } }, ...(codecServer === undefined ? {} : { codecServer }), ...extra },
    'test config',
    baseDir,
  );
/** Asserts a ConfigError naming `field`, whose message holds no secret value. */
const refuses = (fn: () => unknown, field: string, message: RegExp) =>
  assert.throws(fn, (err: Error) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal((err as ConfigError & { field?: string }).field, field);
    assert.match(err.message, message);
    for (const secret of [brokerPassword, codecPassword]) assert.ok(!err.message.includes(secret), 'the error names the field, not the secret');
    return true;
  });

test('the codec server\'s own credentials are used, for the namespace brokerflow runs in unless others are listed', () => {
  const own = codecAccess(config({ auth: { basic: [{ username: 'operator', password: codecPassword }], bearerTokens: ['codec-token'] } }));
  assert.deepEqual(own.credentials, { basic: [{ username: 'operator', password: codecPassword }], bearerTokens: ['codec-token'] });
  assert.deepEqual(own.namespaces, ['brokerflow'], 'only the namespace whose payloads these keys encrypt');
  assert.deepEqual(codecAccess(config({ auth: { bearerTokens: ['t'] }, namespaces: ['team-a', 'team-b'] })).namespaces, ['team-a', 'team-b']);
});

test('a codec server without credentials of its own refuses to start, naming codecServer.auth: the broker\'s are not taken instead', () => {
  refuses(() => codecAccess(config(undefined)), 'codecServer.auth', /codecServer\.auth: configure at least one basic user or bearer token of the codec server's own/);
  refuses(() => codecAccess(config({ port: 8081, auth: { basic: [] } })), 'codecServer.auth', /does not accept the broker's credentials/);
});

test('a codec secret that is also a broker secret is refused, by value or by reference, naming both fields and neither value', () => {
  refuses(
    () => codecAccess(config({ auth: { basic: [{ username: 'operator', password: brokerPassword }] } })),
    'codecServer.auth.basic[0].password',
    /codecServer\.auth\.basic\[0\]\.password: the same secret as broker\.auth\.basic\[0\]\.password; the codec server needs credentials of its own/,
  );
  refuses(() => codecAccess(config({ auth: { bearerTokens: [codecPassword, brokerPassword] } })), 'codecServer.auth.bearerTokens[1]', /the same secret as broker\.auth\.basic\[0\]\.password/);

  const dir = mkdtempSync(join(tmpdir(), 'codec-access-'));
  try {
    writeFileSync(join(dir, 'broker-password'), brokerPassword);
    const sharedFile = { broker: { auth: { bearerTokens: [{ file: './broker-password' }] } } };
    refuses(
      () => codecAccess(config({ auth: { basic: [{ username: 'operator', password: { file: join(dir, 'broker-password') } }] } }, sharedFile, dir)),
      'codecServer.auth.basic[0].password',
      /the same secret as broker\.auth\.bearerTokens\[0\]/,
    );
    // The broker's secret file is not mounted into the codec server: the same reference is still refused.
    const unmounted = { broker: { auth: { basic: [{ username: 'platform', password: { file: './not-mounted' } }] } } };
    refuses(() => codecAccess(config({ auth: { basic: [{ username: 'operator', password: { file: './not-mounted' } }] } }, unmounted, dir)), 'codecServer.auth.basic[0].password', /the same secret as broker\.auth\.basic\[0\]\.password/);
    writeFileSync(join(dir, 'codec-password'), codecPassword);
    const access = codecAccess(config({ auth: { basic: [{ username: 'operator', password: { file: './codec-password' } }] } }, unmounted, dir));
    assert.equal(access.credentials.basic[0]!.password, codecPassword, 'an unreadable broker secret is compared by reference only');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the codecServer section is checked by the schema, naming the field', () => {
  assert.throws(() => config({ auth: { basic: [{ username: 'operator' }] } }), /codecServer\.auth\.basic\[0\]: missing required field "password"/);
  assert.throws(() => config({ namespaces: [] }), /codecServer\.namespaces: must NOT have fewer than 1 items/);
  assert.throws(() => config({ auth: { users: [] } }), /codecServer\.auth: unknown field "users"/);
});
