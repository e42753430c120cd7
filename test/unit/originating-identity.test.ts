// X-Broker-API-Originating-Identity as the broker reads it: `<platform> <base64 of a JSON object>` decoded to the
// platform and its user, and every malformed kind refused with a description that never repeats the value.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_IDENTITY_HEADER_LENGTH, OriginatingIdentityError, parseOriginatingIdentity } from '../../client/broker/identity';

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64');

void describe('originating identity', () => {
  void test('Cloud Foundry names its user by user_id', () => {
    assert.deepEqual(parseOriginatingIdentity(`cloudfoundry ${b64({ user_id: '683ea748-3092-4ff4-b656-39cacc4d5360' })}`), {
      platform: 'cloudfoundry',
      user: '683ea748-3092-4ff4-b656-39cacc4d5360',
    });
  });

  void test('Kubernetes names its user by username; uid, groups and extra are not kept', () => {
    const identity = { username: 'duke', uid: 'c2dde242-5ce4-11e7-988c-000c2946f14f', groups: ['admin', 'dev'], extra: { token: ['s3cr3t-extra'] } };
    const parsed = parseOriginatingIdentity(`kubernetes ${b64(identity)}`);
    assert.deepEqual(parsed, { platform: 'kubernetes', user: 'duke' });
    assert.doesNotMatch(JSON.stringify(parsed), /s3cr3t-extra|admin|c2dde242/);
  });

  void test('another platform: the first of user_id, username, user, else "unknown"', () => {
    assert.deepEqual(parseOriginatingIdentity(`acme ${b64({ username: 'u1', user: 'u2' })}`), { platform: 'acme', user: 'u1' });
    assert.deepEqual(parseOriginatingIdentity(`acme ${b64({ user: 'u2' })}`), { platform: 'acme', user: 'u2' });
    assert.deepEqual(parseOriginatingIdentity(`acme ${b64({ team: 'x' })}`), { platform: 'acme', user: 'unknown' });
  });

  void test('base64 without padding is accepted', () => {
    const value = b64({ user_id: 'ab' }).replace(/=+$/, '');
    assert.deepEqual(parseOriginatingIdentity(`cloudfoundry ${value}`), { platform: 'cloudfoundry', user: 'ab' });
  });

  const secret = 'hunter2-never-echoed';
  const malformed: Array<[string, string, RegExp]> = [
    ['no space', `cloudfoundry${b64({ user_id: secret })}`, /no space/],
    ['empty platform', ` ${b64({ user_id: secret })}`, /platform is empty/],
    ['platform with odd characters', `cloud/foundry ${b64({ user_id: secret })}`, /platform must be/],
    ['empty value', 'cloudfoundry ', /not base64/],
    ['value not base64', `cloudfoundry {"user_id":"${secret}"}`, /not base64/],
    ['two values', `cloudfoundry ${b64({ user_id: secret })} ${b64({})}`, /not base64/],
    ['base64 of something that is not JSON', `cloudfoundry ${b64(`user ${secret}`)}`, /not JSON/],
    ['base64 of bytes that are not UTF-8', `cloudfoundry ${Buffer.from([0xff, 0xfe, 0x7b]).toString('base64')}`, /not JSON/],
    ['a JSON array', `cloudfoundry ${b64([secret])}`, /not a JSON object/],
    ['a JSON string', `cloudfoundry ${b64(JSON.stringify(secret))}`, /not a JSON object/],
    ['JSON null', `cloudfoundry ${b64('null')}`, /not a JSON object/],
    ['Cloud Foundry without user_id', `cloudfoundry ${b64({ username: secret })}`, /needs a non-empty string "user_id"/],
    ['Kubernetes with a username that is not a string', `kubernetes ${b64({ username: 7, extra: { s: [secret] } })}`, /needs a non-empty string "username"/],
    ['a user with control characters', `cloudfoundry ${b64({ user_id: 'a\nb' })}`, /control characters/],
    ['a user too long', `cloudfoundry ${b64({ user_id: 'u'.repeat(257) })}`, /longer than 256/],
    ['too long', `cloudfoundry ${b64({ user_id: 'u', pad: secret.repeat(400) })}`, new RegExp(`longer than ${MAX_IDENTITY_HEADER_LENGTH}`)],
  ];
  for (const [what, header, reason] of malformed) {
    void test(`malformed (${what}) is refused, without repeating the value`, () => {
      assert.throws(
        () => parseOriginatingIdentity(header),
        (err: unknown) => {
          assert.ok(err instanceof OriginatingIdentityError);
          assert.match(err.message, /^X-Broker-API-Originating-Identity is malformed: /);
          assert.match(err.message, reason);
          assert.ok(!err.message.includes(secret), err.message);
          return true;
        },
      );
    });
  }
});
