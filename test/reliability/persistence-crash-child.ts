// Child process of persistence-crash.test.ts: writes entries through the file backend in a loop until it is
// killed. Prints `ready` once initialized, starts writing on `go` (stdin), and reports each write as
// `begin <key> <seq>` before and `ack <key> <seq>` after the put resolved (stdout to a pipe is synchronous).
// Only the file backend's modules: the package index would also load the S3, etcd and Kubernetes clients.
import { FilePersistenceProvider } from '../../adapters/persistence/file';
import { MachineId } from '../../adapters/persistence/machine-id';

const [dir, machineId, seqBaseText, keysText] = process.argv.slice(2);
const KEYS = Number(keysText);
/** Concurrent writers; the parent's key count is a multiple of it. */
export const LANES = 3;

/** The payload of a write: large enough that a torn write would show, derived from the sequence number. */
export function payloadOf(seq: number): string {
  return `${seq}:`.repeat(Math.ceil(8192 / (String(seq).length + 1)));
}

async function lane(provider: FilePersistenceProvider, instance: string, lane: number, seqBase: number): Promise<never> {
  // Each key belongs to one lane, so writes to a key are sequential and at most one is in flight.
  const keysPerLane = KEYS / LANES;
  for (let i = 0; ; i++) {
    const seq = seqBase + i * LANES + lane;
    const key = `e${lane + LANES * (i % keysPerLane)}`;
    process.stdout.write(`begin ${key} ${seq}\n`);
    await provider.putObject(instance, { apiVersion: 'v1', kind: 'CrashEntry', metadata: { name: key }, seq, payload: payloadOf(seq) });
    process.stdout.write(`ack ${key} ${seq}\n`);
  }
}

async function main(): Promise<void> {
  const provider = new FilePersistenceProvider({ directories: [dir!], lockTimeoutMs: 5_000 });
  await provider.initialize(new MachineId(machineId!));
  const instance = provider.replicas()[0]!;
  process.stdout.write('ready\n');
  process.stdin.once('data', () => {
    for (let l = 0; l < LANES; l++) {
      lane(provider, instance, l, Number(seqBaseText)).catch((err: Error) => {
        process.stderr.write(`write failed: ${err.name}: ${err.message}\n`);
        process.exit(2);
      });
    }
  });
}

if (require.main === module) void main();
