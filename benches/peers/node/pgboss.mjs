// pg-boss through its public API: `insert` in batches, then `--workers` loops of `fetch`
// (`--fetch` jobs at a time) and `complete` of what was fetched, until a fetch finds nothing.
// Protocol: protocol.mjs.
import pg from "pg";
import { PgBoss } from "pg-boss";
import { args, batches, finish, ready, say, since } from "./protocol.mjs";

const { jobs, batch, workers, fetch } = args();
const env = process.env;
const boss = new PgBoss({
  host: env.PGHOST,
  port: Number(env.PGPORT),
  user: env.PGUSER,
  database: env.PGDATABASE,
  max: workers + 2,
});
boss.on("error", (e) => console.error(e));
await boss.start();
await boss.createQueue("noop");

await ready("insert");
let t0 = performance.now();
for (const n of batches(jobs, batch)) {
  await boss.insert("noop", Array.from({ length: n }, () => ({ data: {} })));
}
say({ phase: "insert", seconds: since(t0), jobs });

await ready("work");
let done = 0;
async function loop() {
  for (;;) {
    const got = await boss.fetch("noop", { batchSize: fetch });
    if (got.length === 0) return;
    await boss.complete("noop", got.map((j) => j.id));
    done += got.length;
  }
}
t0 = performance.now();
await Promise.all(Array.from({ length: workers }, loop));
say({ phase: "work", seconds: since(t0), jobs: done });

const client = new pg.Client();
await client.connect();
const { rows } = await client.query(
  "SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'noop' AND state <> 'completed'",
);
say({ left: rows[0].n });
await client.end();
await boss.stop({ graceful: false, wait: true });
finish();
