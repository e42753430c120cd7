// The OSB error body `{error?, description}` and the typed errors routes throw to produce it.

/** The machine-readable error codes OSB v2.17 defines. */
export type OsbErrorCode = 'AsyncRequired' | 'ConcurrencyError' | 'RequiresApp' | 'MaintenanceInfoConflict';

/** An error a route throws to answer with an OSB error body and a status code. */
export class OsbError extends Error {
  constructor(
    readonly statusCode: number,
    description: string,
    readonly osbCode?: OsbErrorCode,
    /** Fields the OSB spec adds to some failures (e.g. `instance_usable`). */
    readonly extra?: Record<string, unknown>,
  ) {
    super(description);
    this.name = 'OsbError';
  }

  body(): Record<string, unknown> {
    return { ...(this.osbCode ? { error: this.osbCode } : {}), description: this.message, ...(this.extra ?? {}) };
  }
}

export const badRequest = (description: string) => new OsbError(400, description);
export const unauthorized = () => new OsbError(401, 'authentication required: send valid HTTP Basic credentials or a bearer token');
export const notFound = (description: string) => new OsbError(404, description);
export const conflict = (description: string) => new OsbError(409, description);
export const gone = (description: string) => new OsbError(410, description);
export const preconditionFailed = (description: string) => new OsbError(412, description);
export const unprocessable = (code: OsbErrorCode, description: string) => new OsbError(422, description, code);
