// Rendering a resource's spec template with json-e: JSON-native, no code execution, no string-built YAML.
import jsone from 'json-e';
import type { TemplateContext } from '../../domain/reconcile';
import { ValidationError } from '../errors';

/** A template that cannot be rendered with the given context (missing value, wrong type). Never retried. */
export class TemplateRenderError extends ValidationError {
  constructor(resource: string, message: string) {
    super(`resource "${resource}": template cannot be rendered: ${message}`);
    this.name = 'TemplateRenderError';
  }
}

/** Renders a spec template; the result must be a JSON object. */
export function renderSpec(resource: string, template: Record<string, unknown>, context: TemplateContext): Record<string, unknown> {
  let out: unknown;
  try {
    out = jsone(template, context as unknown as Record<string, unknown>);
  } catch (err) {
    throw new TemplateRenderError(resource, (err as Error).message);
  }
  if (!out || typeof out !== 'object' || Array.isArray(out)) {
    throw new TemplateRenderError(resource, 'the rendered spec is not an object');
  }
  return out as Record<string, unknown>;
}
