// The protocol between a peer's worker script and `oc-bench-peers` (benches/peers/main.rs):
// lines on stdout that start with `@oc ` are JSON for the driver (anything else a library prints
// is passed through); the driver answers `go` on stdin when it has read the server's and this
// process's CPU time, so each phase's CPU is exactly that phase's.
//
// Arguments: --jobs N (no-op jobs to insert and run), --batch N (jobs per insert call),
// --workers N (concurrent claim-and-complete loops), --fetch N (jobs per fetch, where the
// system has a batch fetch). The connection comes from the PG* environment variables.
import readline from "node:readline";

const input = readline.createInterface({ input: process.stdin });
const lines = input[Symbol.asyncIterator]();

/** Stops reading the driver's input, so that the event loop can end. */
export function finish() {
  input.close();
}

export function say(value) {
  process.stdout.write(`@oc ${JSON.stringify(value)}\n`);
}

/** Says the next phase is ready and waits for the driver's `go`. */
export async function ready(phase) {
  say({ ready: phase });
  const { value, done } = await lines.next();
  if (done || value.trim() !== "go") {
    throw new Error(`expected "go" from the driver, got ${done ? "end of input" : JSON.stringify(value)}`);
  }
}

export function args() {
  const out = { jobs: 20000, batch: 1000, workers: 16, fetch: 1 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    const n = Number.parseInt(argv[i + 1] ?? "", 10);
    if (!(key in out) || !Number.isSafeInteger(n) || n < 1 || n > 10_000_000) {
      throw new Error(`bad argument ${argv[i]} ${argv[i + 1] ?? ""}`);
    }
    out[key] = n;
  }
  return out;
}

/** Seconds since `t0` (from `performance.now()`). */
export function since(t0) {
  return (performance.now() - t0) / 1000;
}

export function batches(jobs, batch) {
  const out = [];
  for (let i = 0; i < jobs; i += batch) out.push(Math.min(batch, jobs - i));
  return out;
}
