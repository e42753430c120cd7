// Test configurations: a runtime config file pointing at the servers of this test run, written to a temp folder.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { loadRuntimeConfig, type RuntimeConfig, type RuntimeConfigFile } from '../../config/runtime';
import { requireTestEnv } from './env';

/** The broker user and password every test config accepts. */
export const testBrokerUser = { username: 'platform', password: `pw-${randomBytes(6).toString('hex')}` };
/** The codec server's own user (`codecServer.auth`), distinct from the broker's. */
export const testCodecUser = { username: 'operator', password: `codec-${randomBytes(6).toString('hex')}` };
/** The encryption key every test config uses (base64). */
export const testEncryptionKey = randomBytes(32).toString('base64');

/** Writes a config file for this test run (a unique task queue unless given) and loads it. */
export function writeTestConfig(overrides: Partial<RuntimeConfigFile> = {}): { file: string; config: RuntimeConfig; dir: string } {
  const { file, dir } = writeRawTestConfig(overrides);
  return { file, config: loadRuntimeConfig(file), dir };
}

/** The broker section of every test config (the platform's user, any port); `extra` adds or replaces settings. */
export function testBrokerConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { host: '127.0.0.1', port: 0, auth: { basic: [{ username: testBrokerUser.username, password: testBrokerUser.password }] }, ...extra };
}

/** Writes a config file without loading it (for tests of invalid configurations). */
export function writeRawTestConfig(overrides: Record<string, unknown> = {}): { file: string; dir: string } {
  const dir = mkdtempSync(join(requireTestEnv('workDir'), 'cfg-'));
  const taskQueue = `tq-${randomBytes(5).toString('hex')}`;
  const body: Record<string, unknown> = {
    temporal: { address: requireTestEnv('temporalAddress'), namespace: 'default', taskQueue },
    catalog: resolve(__dirname, '..', '..', 'config', 'catalog.example.yaml'),
    resourceSets: resolve(__dirname, '..', '..', 'config', 'resource-sets.example.yaml'),
    drivers: {
      etcd: { endpoints: [requireTestEnv('tenantEtcdEndpoint')], auth: { username: 'root', password: requireTestEnv('tenantEtcdRootPassword') } },
    },
    kubernetes: { kubeconfig: requireTestEnv('kubeconfig') },
    broker: testBrokerConfig(),
    etcd: { endpoints: [requireTestEnv('etcdEndpoint')], prefix: `/bf-${taskQueue}` },
    registry: { backend: 'file', file: { dirs: [join(dir, 'registry')] } },
    encryption: { currentKeyId: 'test-1', keys: [{ id: 'test-1', key: testEncryptionKey }] },
    codecServer: { auth: { basic: [{ username: testCodecUser.username, password: testCodecUser.password }] } },
    ...overrides,
  };
  const file = join(dir, 'brokerflow.yaml');
  writeFileSync(file, stringify(body));
  return { file, dir };
}

/** The Authorization header for {@link testBrokerUser}. */
export function basicAuth(user = testBrokerUser): string {
  return `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}`;
}
