// Rendering a resource's spec template with json-e: JSON-native, no code execution, no string-built YAML.
import jsone from 'json-e';
import { ValidationError } from '../errors';

/** What a template can read: the instance, the binding (for binding resources) and the operation. */
export interface TemplateContext {
  instance: {
    id: string;
    serviceId: string;
    planId: string;
    parameters: Record<string, unknown>;
    context: Record<string, unknown>;
    namespace?: string;
  };
  binding?: { id: string; parameters: Record<string, unknown>; context: Record<string, unknown> };
  operation: { id: string; type: string };
  /**
   * The owner reference of this operation's registry entry (instance, or binding for binding resources) when
   * the registry is on Kubernetes, else null. `ownerReference: {$if: "owner", then: {$eval: "owner"}}` in a
   * Kubernetes resource makes the object garbage-collected with the entry.
   */
  owner?: { apiVersion: string; kind: string; name: string; uid: string } | null;
}

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
