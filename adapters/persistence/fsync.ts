// Durability primitives for the file backend: a rename is only durable once its directory is synced.
import { open } from 'node:fs/promises';

/** fsyncs a directory so a rename, create or unlink inside it survives a power loss. */
export async function syncDirectory(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
