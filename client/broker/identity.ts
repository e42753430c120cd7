// X-Broker-API-Originating-Identity: `<platform> <base64 of a JSON object>` (OSB v2.17, "Originating Identity").
// A malformed value is refused before anything is read or changed; a valid one becomes the platform and the user
// that the audit trail records. Nothing else of the object (`extra`, groups, ...) is kept or logged, and an error
// never repeats the value (docs/design/contracts/osb-api.md#originating-identity).
import type { RequestOrigin } from '../../domain/audit';

/** The longest header value accepted (characters). */
export const MAX_IDENTITY_HEADER_LENGTH = 4096;
/** The longest user name kept. */
export const MAX_IDENTITY_USER_LENGTH = 256;

const PLATFORM = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Why a header value is malformed; the message is the OSB error description and never holds the value. */
export class OriginatingIdentityError extends Error {
  constructor(reason: string) {
    super(`X-Broker-API-Originating-Identity is malformed: ${reason}`);
    this.name = 'OriginatingIdentityError';
  }
}

/**
 * Which property of the identity object names the user: `user_id` for Cloud Foundry and `username` for Kubernetes
 * (both required there); on any other platform the first of `user_id`, `username`, `user` that is a non-empty
 * string, or "unknown" when there is none.
 */
const USER_PROPERTY: Record<string, string> = { cloudfoundry: 'user_id', kubernetes: 'username' };
const OTHER_PLATFORM_USER_PROPERTIES = ['user_id', 'username', 'user'];

/** Decodes a header value to the platform and its user, or throws {@link OriginatingIdentityError}. */
export function parseOriginatingIdentity(header: string): RequestOrigin {
  if (header.length > MAX_IDENTITY_HEADER_LENGTH) throw new OriginatingIdentityError(`longer than ${MAX_IDENTITY_HEADER_LENGTH} characters`);
  const space = header.indexOf(' ');
  if (space < 0) throw new OriginatingIdentityError('expected "<platform> <base64-encoded JSON object>", found no space');
  const platform = header.slice(0, space);
  const value = header.slice(space + 1);
  if (platform === '') throw new OriginatingIdentityError('the platform is empty');
  if (!PLATFORM.test(platform)) throw new OriginatingIdentityError('the platform must be 1-64 letters, digits, ".", "_" or "-"');
  if (value === '' || !BASE64.test(value)) throw new OriginatingIdentityError('the value after the platform is not base64');
  let properties: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(value, 'base64'));
    properties = JSON.parse(text);
  } catch {
    throw new OriginatingIdentityError('the decoded value is not JSON');
  }
  if (typeof properties !== 'object' || properties === null || Array.isArray(properties)) {
    throw new OriginatingIdentityError('the decoded value is not a JSON object');
  }
  return { platform, user: userOf(platform, properties as Record<string, unknown>) };
}

function userOf(platform: string, properties: Record<string, unknown>): string {
  const required = USER_PROPERTY[platform];
  const candidates = required ? [required] : OTHER_PLATFORM_USER_PROPERTIES;
  const found = candidates.map((k) => properties[k]).find((v): v is string => typeof v === 'string' && v !== '');
  if (found === undefined) {
    if (required) throw new OriginatingIdentityError(`a ${platform} identity needs a non-empty string "${required}"`);
    return 'unknown';
  }
  if (found.length > MAX_IDENTITY_USER_LENGTH) throw new OriginatingIdentityError(`the user is longer than ${MAX_IDENTITY_USER_LENGTH} characters`);
  if (CONTROL.test(found)) throw new OriginatingIdentityError('the user holds control characters');
  return found;
}
