// The queue-hop peer's BullMQ Worker, in its own process: takes a run's job, marks the row
// running, runs the trivial agent, publishes its events for the front, marks it completed.
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import postgres from 'postgres';

const env = process.env;
const prefix = env.BULL_PREFIX;
const sql = postgres(env.DATABASE_URL, { max: Number(env.DB_MAX ?? 10), onnotice: () => undefined });
const publisher = new Redis(env.REDIS_URL, { maxRetriesPerRequest: null, enableAutoPipelining: true });
const channel = `${prefix}:events`;

let seq = 0;
function publish(runId, type, data) {
  seq += 1;
  return publisher.publish(channel, JSON.stringify({ runId, id: `${Date.now()}-${seq}`, type, data }));
}

const worker = new Worker(
  'runs',
  async (job) => {
    const { runId, input } = job.data;
    await sql`UPDATE runs SET status = 'running', started_at = now() WHERE id = ${runId} AND status = 'queued'`;
    void publish(runId, 'status', { status: 'running' });
    const message = { role: 'assistant', content: input };
    void publish(runId, 'message', message);
    await sql`UPDATE runs SET status = 'completed', finished_at = now(), output = ${sql.json(message)} WHERE id = ${runId} AND status = 'running'`;
    await publish(runId, 'end', { status: 'completed' });
  },
  { connection: new Redis(env.REDIS_URL, { maxRetriesPerRequest: null }), prefix, concurrency: Number(env.WORKER_CONCURRENCY ?? 64) },
);
worker.on('error', (error) => console.error(JSON.stringify({ message: 'worker error', error: String(error) })));
await worker.waitUntilReady();
console.log(JSON.stringify({ message: 'worker ready' }));
process.on('SIGTERM', async () => {
  await worker.close();
  publisher.disconnect();
  await sql.end({ timeout: 2 });
  process.exit(0);
});
