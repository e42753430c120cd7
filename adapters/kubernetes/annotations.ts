// Which Kubernetes annotations become registry metadata: an allowlist of `*/*` (everything), exact keys,
// `prefix/*` (every name under a prefix) and `*/name` (a name under any prefix). Wildcards only match keys
// in `prefix/name` form; a key without a prefix matches only itself or `*/*`.
import { ValidationError } from '../errors';

const part = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;

/** A validated annotation allowlist. */
export class AnnotationAllowlist {
  private readonly all: boolean;
  private readonly exact = new Set<string>();
  private readonly prefixes = new Set<string>();
  private readonly names = new Set<string>();

  /** Parses the entries once (e.g. at start-up); a malformed entry is a ValidationError naming it. */
  constructor(readonly entries: readonly string[]) {
    if (!Array.isArray(entries)) throw new ValidationError('the annotation allowlist must be a list', 'annotations');
    let all = false;
    for (const entry of entries) {
      if (typeof entry !== 'string') throw new ValidationError('annotation allowlist entries must be strings', 'annotations');
      const bad = () => new ValidationError(`annotation allowlist entry ${JSON.stringify(entry)} is not "*/*", "key", "prefix/name", "prefix/*" or "*/name"`, 'annotations');
      const pieces = entry.split('/');
      if (entry === '*/*') all = true;
      else if (pieces.length === 1) {
        if (!part.test(entry)) throw bad();
        this.exact.add(entry);
      } else if (pieces.length === 2) {
        const [prefix, name] = pieces as [string, string];
        if (prefix === '*' && part.test(name)) this.names.add(name);
        else if (name === '*' && part.test(prefix)) this.prefixes.add(prefix);
        else if (part.test(prefix) && part.test(name)) this.exact.add(entry);
        else throw bad();
      } else throw bad();
    }
    this.all = all;
  }

  /** Whether an annotation key is allowed. */
  allows(key: string): boolean {
    if (this.all || this.exact.has(key)) return true;
    const pieces = key.split('/');
    if (pieces.length !== 2) return false;
    return this.prefixes.has(pieces[0]!) || this.names.has(pieces[1]!);
  }

  /** The allowed subset of `annotations` (a new object). */
  filter(annotations: Record<string, string> | undefined): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(annotations ?? {})) if (this.allows(k)) out[k] = v;
    return out;
  }
}
