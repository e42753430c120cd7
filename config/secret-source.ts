// Shared by configuration sections: secret references (type and schema) and etcd connections. Sections import
// from here rather than from runtime.ts, which assembles them, so no section imports its assembler.

/** A secret given inline (development only), from an environment variable, or from a file. */
export type SecretSource = string | { env: string } | { file: string };

/** A secret reference: inline (development only), `{ env: NAME }` or `{ file: PATH }`. */
export const secretSourceSchema = {
  oneOf: [
    { type: 'string', minLength: 1 },
    { type: 'object', required: ['env'], additionalProperties: false, properties: { env: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$' } } },
    { type: 'object', required: ['file'], additionalProperties: false, properties: { file: { type: 'string', minLength: 1 } } },
  ],
} as const;

/** etcd client URLs. */
export const etcdEndpointsSchema = { type: 'array', minItems: 1, items: { type: 'string', pattern: '^https?://[^\\s/]+$' } } as const;

/** etcd user credentials, the password as a secret reference. */
export const etcdAuthSchema = {
  type: 'object',
  required: ['username', 'password'],
  additionalProperties: false,
  properties: { username: { type: 'string', minLength: 1 }, password: secretSourceSchema },
} as const;
