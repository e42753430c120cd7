// The JSON Schema of a secret reference: inline (development only), `{ env: NAME }` or `{ file: PATH }`.
export const secretSourceSchema = {
  oneOf: [
    { type: 'string', minLength: 1 },
    { type: 'object', required: ['env'], additionalProperties: false, properties: { env: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$' } } },
    { type: 'object', required: ['file'], additionalProperties: false, properties: { file: { type: 'string', minLength: 1 } } },
  ],
} as const;
