import { transitionPairs } from '../domain/index.js';
import type { Database } from './database.js';

interface Migration {
  readonly id: number;
  readonly name: string;
  readonly statements: readonly string[];
}

const FINAL = `('completed', 'failed', 'cancelled', 'timed_out', 'interrupted')`;

const transitionRows = transitionPairs()
  .map(([from, to]) => `('${from}', '${to}')`)
  .join(', ');

/**
 * The schema, in order. Applied at start-up inside one transaction under an advisory lock,
 * so instances starting together apply each migration once. Never edit a released entry:
 * add a new one.
 */
const MIGRATIONS: readonly Migration[] = [
  {
    id: 1,
    name: 'accounts, keys, runs, leases',
    statements: [
      `CREATE TABLE accounts (
        id uuid PRIMARY KEY,
        name text NOT NULL,
        tier text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`,
      `CREATE TABLE api_keys (
        prefix text PRIMARY KEY,
        account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        key_hash text NOT NULL UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz
      )`,
      `CREATE INDEX api_keys_account ON api_keys (account_id)`,
      `CREATE TABLE run_transitions (
        from_status text NOT NULL,
        to_status text NOT NULL,
        PRIMARY KEY (from_status, to_status)
      )`,
      `INSERT INTO run_transitions (from_status, to_status) VALUES ${transitionRows}`,
      `CREATE TABLE runs (
        id uuid PRIMARY KEY,
        account_id uuid NOT NULL REFERENCES accounts (id),
        agent text NOT NULL,
        status text NOT NULL CHECK (status IN ('queued', 'running', ${FINAL.slice(1, -1)})),
        session_id text,
        input jsonb,
        model text,
        metadata jsonb,
        timeout_ms integer NOT NULL,
        idempotency_key text,
        instance_id text NOT NULL,
        -- Millisecond precision, so timestamps round-trip through JavaScript and keyset cursors exactly.
        created_at timestamptz NOT NULL DEFAULT date_trunc('milliseconds', clock_timestamp()),
        started_at timestamptz,
        finished_at timestamptz,
        error jsonb,
        output jsonb
      )`,
      `CREATE INDEX runs_account_created ON runs (account_id, created_at DESC, id DESC)`,
      `CREATE INDEX runs_idempotency ON runs (account_id, idempotency_key, created_at DESC) WHERE idempotency_key IS NOT NULL`,
      `CREATE INDEX runs_active_by_instance ON runs (instance_id) WHERE status IN ('queued', 'running')`,
      // One lease per active run: the tier and session limits count these, under a
      // per-account advisory lock. A lease goes when its run reaches a final status.
      `CREATE TABLE run_leases (
        run_id uuid PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
        account_id uuid NOT NULL,
        session_id text,
        instance_id text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`,
      `CREATE INDEX run_leases_account ON run_leases (account_id, session_id)`,
      // Defence in depth: whatever SQL runs, a status change must be in run_transitions,
      // and reaching a final status releases the run's lease in the same statement.
      `CREATE FUNCTION agentd_guard_run_status() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.status = OLD.status THEN
          RETURN NEW;
        END IF;
        IF NOT EXISTS (SELECT 1 FROM run_transitions WHERE from_status = OLD.status AND to_status = NEW.status) THEN
          RAISE EXCEPTION 'run % may not go from % to %', OLD.id, OLD.status, NEW.status USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.status IN ${FINAL} THEN
          DELETE FROM run_leases WHERE run_id = NEW.id;
        END IF;
        RETURN NEW;
      END $$`,
      `CREATE TRIGGER runs_guard_status BEFORE UPDATE OF status ON runs
        FOR EACH ROW EXECUTE FUNCTION agentd_guard_run_status()`,
      // Admission in one round trip: idempotency check, account and session counts, insert.
      // Counts run in their own statements after the lock, so they see rows committed while
      // this transaction waited for it (READ COMMITTED takes a snapshot per statement).
      `CREATE FUNCTION agentd_admit(
        p_id uuid, p_account uuid, p_agent text, p_status text, p_session text, p_input jsonb,
        p_model text, p_metadata jsonb, p_timeout_ms integer, p_idempotency_key text,
        p_instance text, p_tier_limits jsonb, p_session_max integer
      ) RETURNS TABLE (outcome text, run jsonb, limit_value integer, active integer)
      LANGUAGE plpgsql AS $$
      DECLARE
        v_tier text;
        v_limit integer;
        v_active integer;
        v_existing runs;
        v_run runs;
      BEGIN
        PERFORM pg_advisory_xact_lock(7311, hashtext(p_account::text));
        IF p_idempotency_key IS NOT NULL THEN
          SELECT * INTO v_existing FROM runs
            WHERE account_id = p_account AND idempotency_key = p_idempotency_key
              AND created_at > now() - interval '24 hours'
            ORDER BY created_at DESC LIMIT 1;
          IF FOUND THEN
            RETURN QUERY SELECT 'existing'::text, to_jsonb(v_existing), NULL::integer, NULL::integer;
            RETURN;
          END IF;
        END IF;
        SELECT tier INTO v_tier FROM accounts WHERE id = p_account;
        IF NOT FOUND THEN
          RETURN QUERY SELECT 'no_account'::text, NULL::jsonb, NULL::integer, NULL::integer;
          RETURN;
        END IF;
        v_limit := COALESCE((p_tier_limits ->> v_tier)::integer, 0);
        SELECT count(*) INTO v_active FROM run_leases WHERE account_id = p_account;
        IF v_active >= v_limit THEN
          RETURN QUERY SELECT 'account_limit'::text, NULL::jsonb, v_limit, v_active;
          RETURN;
        END IF;
        IF p_session IS NOT NULL THEN
          SELECT count(*) INTO v_active FROM run_leases WHERE account_id = p_account AND session_id = p_session;
          IF v_active >= p_session_max THEN
            RETURN QUERY SELECT 'session_limit'::text, NULL::jsonb, p_session_max, v_active;
            RETURN;
          END IF;
        END IF;
        INSERT INTO runs (id, account_id, agent, status, session_id, input, model, metadata, timeout_ms,
                          idempotency_key, instance_id, started_at)
          VALUES (p_id, p_account, p_agent, p_status, p_session, p_input, p_model, p_metadata, p_timeout_ms,
                  p_idempotency_key, p_instance, CASE WHEN p_status = 'running' THEN date_trunc('milliseconds', clock_timestamp()) END)
          RETURNING * INTO v_run;
        INSERT INTO run_leases (run_id, account_id, session_id, instance_id)
          VALUES (p_id, p_account, p_session, p_instance);
        RETURN QUERY SELECT 'created'::text, to_jsonb(v_run), NULL::integer, NULL::integer;
      END $$`,
    ],
  },
  {
    id: 2,
    name: 'event archive',
    statements: [
      // Every accepted event of every run, written in batches while the run goes and
      // completely at its end: catch-up reads it for what the fast stream no longer holds.
      `CREATE TABLE run_events (
        run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        ms bigint NOT NULL,
        seq integer NOT NULL,
        prev_ms bigint,
        prev_seq integer,
        type text NOT NULL,
        data jsonb,
        PRIMARY KEY (run_id, ms, seq)
      )`,
    ],
  },
  {
    id: 3,
    name: 'batch admission',
    statements: [
      // A batch of admissions in one statement: agentd_admit for each request, so each gets
      // exactly the single-request rules and counts the runs admitted before it in the batch.
      // Requests go in order of their account's lock key, then of arrival: every batch takes
      // its advisory locks in ascending order, so two batches cannot deadlock (ordering by
      // account id alone could, when two accounts' ids hash to the same key).
      `CREATE FUNCTION agentd_admit_many(p_requests jsonb, p_tier_limits jsonb, p_session_max integer)
      RETURNS TABLE (ord integer, outcome text, run jsonb, limit_value integer, active integer)
      LANGUAGE plpgsql AS $$
      DECLARE
        r record;
      BEGIN
        FOR r IN
          SELECT e.n::integer AS n, e.req, (e.req ->> 'account_id')::uuid AS account
          FROM jsonb_array_elements(p_requests) WITH ORDINALITY AS e(req, n)
          ORDER BY hashtext((e.req ->> 'account_id')::uuid::text), account, n
        LOOP
          RETURN QUERY SELECT r.n, a.outcome, a.run, a.limit_value, a.active
            FROM agentd_admit(
              (r.req ->> 'id')::uuid, r.account, r.req ->> 'agent', r.req ->> 'status', r.req ->> 'session_id',
              r.req -> 'input', r.req ->> 'model', r.req -> 'metadata', (r.req ->> 'timeout_ms')::integer,
              r.req ->> 'idempotency_key', r.req ->> 'instance_id', p_tier_limits, p_session_max
            ) AS a;
        END LOOP;
      END $$`,
    ],
  },
  {
    id: 4,
    name: 'idempotency request hash',
    statements: [
      // A hash of the request that created a run with an Idempotency-Key: the same key with
      // another body is refused ('key_reused'). NULL for runs admitted before this migration
      // or by an instance that does not send it; such a run matches any body, as before.
      `ALTER TABLE runs ADD COLUMN request_hash text`,
      `CREATE OR REPLACE FUNCTION agentd_admit(
        p_id uuid, p_account uuid, p_agent text, p_status text, p_session text, p_input jsonb,
        p_model text, p_metadata jsonb, p_timeout_ms integer, p_idempotency_key text,
        p_instance text, p_tier_limits jsonb, p_session_max integer, p_request_hash text
      ) RETURNS TABLE (outcome text, run jsonb, limit_value integer, active integer)
      LANGUAGE plpgsql AS $$
      DECLARE
        v_tier text;
        v_limit integer;
        v_active integer;
        v_existing runs;
        v_run runs;
      BEGIN
        PERFORM pg_advisory_xact_lock(7311, hashtext(p_account::text));
        IF p_idempotency_key IS NOT NULL THEN
          SELECT * INTO v_existing FROM runs
            WHERE account_id = p_account AND idempotency_key = p_idempotency_key
              AND created_at > now() - interval '24 hours'
            ORDER BY created_at DESC LIMIT 1;
          IF FOUND THEN
            IF v_existing.request_hash IS NOT NULL AND p_request_hash IS NOT NULL
               AND v_existing.request_hash <> p_request_hash THEN
              RETURN QUERY SELECT 'key_reused'::text, NULL::jsonb, NULL::integer, NULL::integer;
            ELSE
              RETURN QUERY SELECT 'existing'::text, to_jsonb(v_existing), NULL::integer, NULL::integer;
            END IF;
            RETURN;
          END IF;
        END IF;
        SELECT tier INTO v_tier FROM accounts WHERE id = p_account;
        IF NOT FOUND THEN
          RETURN QUERY SELECT 'no_account'::text, NULL::jsonb, NULL::integer, NULL::integer;
          RETURN;
        END IF;
        v_limit := COALESCE((p_tier_limits ->> v_tier)::integer, 0);
        SELECT count(*) INTO v_active FROM run_leases WHERE account_id = p_account;
        IF v_active >= v_limit THEN
          RETURN QUERY SELECT 'account_limit'::text, NULL::jsonb, v_limit, v_active;
          RETURN;
        END IF;
        IF p_session IS NOT NULL THEN
          SELECT count(*) INTO v_active FROM run_leases WHERE account_id = p_account AND session_id = p_session;
          IF v_active >= p_session_max THEN
            RETURN QUERY SELECT 'session_limit'::text, NULL::jsonb, p_session_max, v_active;
            RETURN;
          END IF;
        END IF;
        INSERT INTO runs (id, account_id, agent, status, session_id, input, model, metadata, timeout_ms,
                          idempotency_key, request_hash, instance_id, started_at)
          VALUES (p_id, p_account, p_agent, p_status, p_session, p_input, p_model, p_metadata, p_timeout_ms,
                  p_idempotency_key, p_request_hash, p_instance,
                  CASE WHEN p_status = 'running' THEN date_trunc('milliseconds', clock_timestamp()) END)
          RETURNING * INTO v_run;
        INSERT INTO run_leases (run_id, account_id, session_id, instance_id)
          VALUES (p_id, p_account, p_session, p_instance);
        RETURN QUERY SELECT 'created'::text, to_jsonb(v_run), NULL::integer, NULL::integer;
      END $$`,
      // The previous signature stays for instances of the previous release during a rolling
      // upgrade: the same rules, without a request hash.
      `CREATE OR REPLACE FUNCTION agentd_admit(
        p_id uuid, p_account uuid, p_agent text, p_status text, p_session text, p_input jsonb,
        p_model text, p_metadata jsonb, p_timeout_ms integer, p_idempotency_key text,
        p_instance text, p_tier_limits jsonb, p_session_max integer
      ) RETURNS TABLE (outcome text, run jsonb, limit_value integer, active integer)
      LANGUAGE sql AS $$
        SELECT * FROM agentd_admit(p_id, p_account, p_agent, p_status, p_session, p_input, p_model, p_metadata,
                                   p_timeout_ms, p_idempotency_key, p_instance, p_tier_limits, p_session_max, NULL::text)
      $$`,
      `CREATE OR REPLACE FUNCTION agentd_admit_many(p_requests jsonb, p_tier_limits jsonb, p_session_max integer)
      RETURNS TABLE (ord integer, outcome text, run jsonb, limit_value integer, active integer)
      LANGUAGE plpgsql AS $$
      DECLARE
        r record;
      BEGIN
        FOR r IN
          SELECT e.n::integer AS n, e.req, (e.req ->> 'account_id')::uuid AS account
          FROM jsonb_array_elements(p_requests) WITH ORDINALITY AS e(req, n)
          ORDER BY hashtext((e.req ->> 'account_id')::uuid::text), account, n
        LOOP
          RETURN QUERY SELECT r.n, a.outcome, a.run, a.limit_value, a.active
            FROM agentd_admit(
              (r.req ->> 'id')::uuid, r.account, r.req ->> 'agent', r.req ->> 'status', r.req ->> 'session_id',
              r.req -> 'input', r.req ->> 'model', r.req -> 'metadata', (r.req ->> 'timeout_ms')::integer,
              r.req ->> 'idempotency_key', r.req ->> 'instance_id', p_tier_limits, p_session_max,
              r.req ->> 'request_hash'
            ) AS a;
        END LOOP;
      END $$`,
    ],
  },
  {
    id: 5,
    name: 'instance liveness, retention indexes',
    statements: [
      // Every instance beats here every INSTANCE_HEARTBEAT_MS (judged by this server's clock);
      // one silent for 3 of its own intervals is dead, and any live instance sweeps its runs.
      `CREATE TABLE instances (
        id text PRIMARY KEY,
        started_at timestamptz NOT NULL DEFAULT now(),
        last_beat_at timestamptz NOT NULL DEFAULT now(),
        beat_interval_ms integer NOT NULL CHECK (beat_interval_ms > 0)
      )`,
      `CREATE INDEX run_leases_instance ON run_leases (instance_id)`,
      // The retention cleanup finds old finished runs and old idempotency keys by these.
      `CREATE INDEX runs_finished ON runs (finished_at) WHERE finished_at IS NOT NULL`,
      `CREATE INDEX runs_idempotency_created ON runs (created_at) WHERE idempotency_key IS NOT NULL`,
    ],
  },
  {
    id: 6,
    name: 'newest runs of every account',
    // The operator's dashboard lists the newest runs across accounts every second.
    statements: [`CREATE INDEX runs_created ON runs (created_at DESC, id DESC)`],
  },
  {
    id: 7,
    name: 'webhook deliveries',
    statements: [
      // Where the run's record goes when it ends; written at admission (agentd_admit_many).
      `ALTER TABLE runs ADD COLUMN webhook_url text`,
      // One delivery per run with a webhook, created by the trigger below in the statement that
      // ends the run. `pending` is due at due_at; a deliverer claims it by moving due_at to the
      // end of its lease (attempts + 1, claimed_by), so a crashed deliverer's claim comes due
      // again, and records the attempt's outcome only if `attempts` is still its own.
      `CREATE TABLE webhook_deliveries (
        run_id uuid PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
        id uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
        url text NOT NULL,
        state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
        attempts integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        due_at timestamptz NOT NULL DEFAULT now(),
        claimed_by text,
        last_status integer,
        last_error text,
        finished_at timestamptz
      )`,
      `CREATE INDEX webhook_deliveries_due ON webhook_deliveries (due_at) WHERE state = 'pending'`,
      // Every path that ends a run (its execution, a cancel of an orphan, the sweeper, a boot's
      // leftovers) goes through an UPDATE of status: each ending enqueues exactly one delivery.
      `CREATE FUNCTION agentd_enqueue_webhook() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO webhook_deliveries (run_id, url) VALUES (NEW.id, NEW.webhook_url) ON CONFLICT (run_id) DO NOTHING;
        RETURN NULL;
      END $$`,
      `CREATE TRIGGER runs_enqueue_webhook AFTER UPDATE OF status ON runs
        FOR EACH ROW WHEN (NEW.webhook_url IS NOT NULL AND NEW.status IN ${FINAL} AND OLD.status NOT IN ${FINAL})
        EXECUTE FUNCTION agentd_enqueue_webhook()`,
      // Admission as before, and a created run's `webhook` (when the request has one) recorded
      // in the same statement; a run found by its Idempotency-Key comes with its delivery (as
      // WEBHOOK_DELIVERY_COLUMN shows it). Instances of the previous release send no webhook.
      `CREATE OR REPLACE FUNCTION agentd_admit_many(p_requests jsonb, p_tier_limits jsonb, p_session_max integer)
      RETURNS TABLE (ord integer, outcome text, run jsonb, limit_value integer, active integer)
      LANGUAGE plpgsql AS $$
      DECLARE
        r record;
        a record;
      BEGIN
        FOR r IN
          SELECT e.n::integer AS n, e.req, (e.req ->> 'account_id')::uuid AS account
          FROM jsonb_array_elements(p_requests) WITH ORDINALITY AS e(req, n)
          ORDER BY hashtext((e.req ->> 'account_id')::uuid::text), account, n
        LOOP
          SELECT * INTO a FROM agentd_admit(
            (r.req ->> 'id')::uuid, r.account, r.req ->> 'agent', r.req ->> 'status', r.req ->> 'session_id',
            r.req -> 'input', r.req ->> 'model', r.req -> 'metadata', (r.req ->> 'timeout_ms')::integer,
            r.req ->> 'idempotency_key', r.req ->> 'instance_id', p_tier_limits, p_session_max,
            r.req ->> 'request_hash'
          );
          ord := r.n;
          outcome := a.outcome;
          run := a.run;
          limit_value := a.limit_value;
          active := a.active;
          IF a.outcome = 'created' AND r.req ->> 'webhook' IS NOT NULL THEN
            UPDATE runs SET webhook_url = r.req ->> 'webhook' WHERE runs.id = (r.req ->> 'id')::uuid;
            run := a.run || jsonb_build_object('webhook_url', r.req ->> 'webhook');
          ELSIF a.outcome = 'existing' AND a.run ->> 'webhook_url' IS NOT NULL THEN
            run := a.run || jsonb_build_object('webhook_delivery', (
              SELECT jsonb_build_object('state', d.state, 'attempts', d.attempts, 'last_status', d.last_status, 'last_error', d.last_error)
              FROM webhook_deliveries d WHERE d.run_id = (a.run ->> 'id')::uuid));
          END IF;
          RETURN NEXT;
        END LOOP;
      END $$`,
    ],
  },
  {
    id: 8,
    name: 'event archive in chunks',
    statements: [
      // The archive as one row per run per archiver batch (a chunk) instead of one per event:
      // the database spends a tuple, an index entry and a statement's share on each row, which
      // per event was a quarter of the server's CPU in the fan-out. `events` holds a line per
      // event (event-chunk-text.ts) with its JSON text as written; `event_bytes` sums their
      // `eventBytes` for page bounds. Overlapping chunks may exist (a dead writer's tail
      // archived by another instance); readers take each event once.
      `CREATE TABLE run_event_chunks (
        run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        first_ms bigint NOT NULL,
        first_seq integer NOT NULL,
        last_ms bigint NOT NULL,
        last_seq integer NOT NULL,
        event_count integer NOT NULL CHECK (event_count > 0),
        event_bytes integer NOT NULL,
        ended boolean NOT NULL,
        events text NOT NULL,
        PRIMARY KEY (run_id, first_ms, first_seq)
      )`,
      // A resume of a finished run asks for its end: one entry per run.
      `CREATE INDEX run_event_chunks_ended ON run_event_chunks (run_id) WHERE ended`,
      // Each archived event as a chunk of one, its jsonb text as its JSON text (one line: jsonb
      // escapes line breaks); 128 is EVENT_OVERHEAD_BYTES.
      `INSERT INTO run_event_chunks (run_id, first_ms, first_seq, last_ms, last_seq, event_count, event_bytes, ended, events)
        SELECT run_id, ms, seq, ms, seq, 1, length(coalesce(data::text, 'null')) + 128, type = 'end',
               ms || ' ' || seq || ' ' || CASE WHEN prev_ms IS NULL THEN '- -' ELSE prev_ms || ' ' || prev_seq END
                  || ' ' || type || ' ' || coalesce(data::text, 'null') || chr(10)
        FROM run_events`,
      `DROP TABLE run_events`,
    ],
  },
];

/** Applies every migration the database has not seen yet. */
export async function migrate(db: Database): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(7311, 0)`);
    await tx.query(`CREATE TABLE IF NOT EXISTS agentd_migrations (
      id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const rows = await tx.query<{ id: number }>(`SELECT id FROM agentd_migrations`);
    const applied = new Set(rows.map((r) => Number(r.id)));
    for (const migration of MIGRATIONS) {
      if (applied.has(migration.id)) continue;
      for (const statement of migration.statements) await tx.query(statement);
      await tx.query(`INSERT INTO agentd_migrations (id, name) VALUES ($1, $2)`, [migration.id, migration.name]);
    }
  });
}
