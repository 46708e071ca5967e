// graphile-worker through its public API: `addJobs` in batches, then `run` with `concurrency`
// (its defaults otherwise) and a no-op task; done when the last job's handler returned and
// `stop()` finished the completions in flight. Protocol: protocol.mjs.
import { Logger, makeWorkerUtils, run } from "graphile-worker";
import pg from "pg";
import { args, batches, finish, ready, say, since } from "./protocol.mjs";

const { jobs, batch, workers } = args();
const logger = new Logger(() => (level, message) => {
  if (level === "error") console.error(message);
});
// graphile-worker's own default pool size: concurrency + 2 (at least 10).
const pool = new pg.Pool({ max: Math.max(10, workers + 2) });
pool.on("error", (e) => console.error(e));
const utils = await makeWorkerUtils({ pgPool: pool, logger });
await utils.migrate();

await ready("insert");
let t0 = performance.now();
for (const n of batches(jobs, batch)) {
  await utils.addJobs(Array.from({ length: n }, () => ({ identifier: "noop", payload: {} })));
}
say({ phase: "insert", seconds: since(t0), jobs });

await ready("work");
let done = 0;
let allDone;
const finished = new Promise((resolve) => (allDone = resolve));
t0 = performance.now();
const runner = await run({
  pgPool: pool,
  logger,
  concurrency: workers,
  noHandleSignals: true,
  taskList: {
    noop: async () => {
      done += 1;
      if (done === jobs) allDone();
    },
  },
});
await finished;
await runner.stop();
say({ phase: "work", seconds: since(t0), jobs: done });

const { rows } = await pool.query("SELECT count(*)::int AS n FROM graphile_worker.jobs");
say({ left: rows[0].n });
await utils.release();
await pool.end();
finish();
