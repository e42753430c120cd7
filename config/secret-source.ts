// JSON Schemas shared by configuration sections: secret references and etcd connections.

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
