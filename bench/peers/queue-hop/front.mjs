// The queue-hop peer's HTTP front: authenticate by API key hash, admit the run row into its
// own Postgres database, enqueue on BullMQ; the BullMQ Worker (worker.mjs, its own process)
// runs the job and publishes its events, which /v1/runs/stream relays as SSE.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import express from 'express';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { SCHEMA } from './schema.mjs';

const env = process.env;
const port = Number(env.PORT ?? 0);
const prefix = env.BULL_PREFIX;
const tierLimits = JSON.parse(env.TIER_LIMITS_JSON ?? '{"free":1,"pro":5,"enterprise":25}');
const sql = postgres(env.DATABASE_URL, { max: Number(env.DB_MAX ?? 20), onnotice: () => undefined });
for (const statement of SCHEMA) await sql.unsafe(statement);

const redisOptions = { maxRetriesPerRequest: null, enableAutoPipelining: true };
const queue = new Queue('runs', { connection: new Redis(env.REDIS_URL, redisOptions), prefix });
const subscriber = new Redis(env.REDIS_URL, redisOptions);
const streams = new Map(); // run id -> listener
await subscriber.subscribe(`${prefix}:events`);
subscriber.on('message', (_channel, message) => {
  const event = JSON.parse(message);
  streams.get(event.runId)?.(event);
});

const hash = (key) => createHash('sha256').update(key).digest('hex');
const cache = new Map(); // key hash -> { account, expiresAt } (2 s, like agentd's)
async function authenticate(req) {
  const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (match === null) return null;
  const keyHash = hash(match[1]);
  const cached = cache.get(keyHash);
  if (cached !== undefined && cached.expiresAt > Date.now()) return cached.account;
  const rows = await sql`SELECT a.id, a.tier FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.key_hash = ${keyHash}`;
  const account = rows[0] ?? null;
  if (account !== null) cache.set(keyHash, { account, expiresAt: Date.now() + 2_000 });
  return account;
}

async function admit(account, body) {
  const id = randomUUID();
  const [row] = await sql`SELECT * FROM peer_admit(${id}, ${account.id}, ${body.agent}, ${sql.json(body.input ?? null)},
    ${body.timeout_ms ?? 900000}, ${'queue-hop'}, ${sql.json(tierLimits)})`;
  return row.outcome === 'created' ? { id } : { error: { code: 'account_concurrency_limit', limit: row.limit_value, active: row.active } };
}

const app = express();
app.use(express.json());
app.post('/admin/accounts', async (req, res) => {
  const id = randomUUID();
  const apiKey = randomBytes(32).toString('base64url');
  await sql.begin(async (tx) => {
    await tx`INSERT INTO accounts (id, name, tier) VALUES (${id}, ${req.body.name}, ${req.body.tier})`;
    await tx`INSERT INTO api_keys (key_hash, account_id) VALUES (${hash(apiKey)}, ${id})`;
  });
  res.status(201).json({ id, api_key: apiKey });
});

app.post('/v1/runs', async (req, res) => {
  const account = await authenticate(req);
  if (account === null) return res.status(401).json({ error: { code: 'unauthorized' } });
  const admitted = await admit(account, req.body);
  if (admitted.error) return res.status(429).json(admitted);
  await queue.add('run', { runId: admitted.id, agent: req.body.agent, input: req.body.input ?? null }, { jobId: admitted.id, removeOnComplete: true, removeOnFail: true });
  res.status(202).json({ id: admitted.id, status: 'queued', agent: req.body.agent });
});

app.post('/v1/runs/stream', async (req, res) => {
  const account = await authenticate(req);
  if (account === null) return res.status(401).json({ error: { code: 'unauthorized' } });
  const admitted = await admit(account, req.body);
  if (admitted.error) return res.status(429).json(admitted);
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-run-id': admitted.id });
  res.flushHeaders();
  streams.set(admitted.id, (event) => {
    res.write(`id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`);
    if (event.type === 'end') {
      streams.delete(admitted.id);
      res.end();
    }
  });
  res.on('close', () => streams.delete(admitted.id));
  await queue.add('run', { runId: admitted.id, agent: req.body.agent, input: req.body.input ?? null }, { jobId: admitted.id, removeOnComplete: true, removeOnFail: true });
});

const server = app.listen(port, '127.0.0.1', () => {
  console.log(JSON.stringify({ message: 'listening', url: `http://127.0.0.1:${server.address().port}` }));
});
process.on('SIGTERM', async () => {
  server.close();
  server.closeAllConnections();
  await queue.close();
  subscriber.disconnect();
  await sql.end({ timeout: 2 });
  process.exit(0);
});
