import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { openApiDocument, openApiFile } from '../../client/broker/openapi';

test('docs/openapi.json is the document the broker serves (regenerate with npm run openapi)', () => {
  assert.deepEqual(JSON.parse(readFileSync(openApiFile, 'utf8')), openApiDocument());
});

test('the OpenAPI document describes every OSB route with its status codes', () => {
  const doc = openApiDocument() as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
  const put = doc.paths['/v2/service_instances/{instance_id}']!.put!;
  for (const code of ['200', '201', '202', '400', '401', '409', '412', '422']) assert.ok(code in put.responses, `PUT answers ${code}`);
  assert.ok('410' in doc.paths['/v2/service_instances/{instance_id}']!.delete!.responses);
  assert.equal(Object.keys(doc.paths).filter((p) => p.startsWith('/v2/')).length, 5);
});
