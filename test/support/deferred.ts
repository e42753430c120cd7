// A promise with its resolver handed out: what a test uses to hold one side of a race until it lets it go.
// (Node 20 has no Promise.withResolvers.)

export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
