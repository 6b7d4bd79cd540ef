// The queue-hop peer's tables: the same run row as agentd's, and an admission that does the
// same work (per-account advisory lock, count of active runs against the tier, insert).
export const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS accounts (id uuid PRIMARY KEY, name text NOT NULL, tier text NOT NULL,
     created_at timestamptz NOT NULL DEFAULT now())`,
  `CREATE TABLE IF NOT EXISTS api_keys (key_hash text PRIMARY KEY, account_id uuid NOT NULL REFERENCES accounts (id))`,
  `CREATE TABLE IF NOT EXISTS runs (
     id uuid PRIMARY KEY, account_id uuid NOT NULL REFERENCES accounts (id), agent text NOT NULL,
     status text NOT NULL, session_id text, input jsonb, model text, metadata jsonb, timeout_ms integer NOT NULL,
     idempotency_key text, instance_id text NOT NULL,
     created_at timestamptz NOT NULL DEFAULT date_trunc('milliseconds', clock_timestamp()),
     started_at timestamptz, finished_at timestamptz, error jsonb, output jsonb)`,
  `CREATE INDEX IF NOT EXISTS runs_account_created ON runs (account_id, created_at DESC, id DESC)`,
  `CREATE INDEX IF NOT EXISTS runs_active ON runs (account_id) WHERE status IN ('queued', 'running')`,
  `CREATE OR REPLACE FUNCTION peer_admit(p_id uuid, p_account uuid, p_agent text, p_input jsonb, p_timeout_ms integer,
       p_instance text, p_tier_limits jsonb)
     RETURNS TABLE (outcome text, limit_value integer, active integer) LANGUAGE plpgsql AS $$
     DECLARE v_tier text; v_limit integer; v_active integer;
     BEGIN
       PERFORM pg_advisory_xact_lock(7312, hashtext(p_account::text));
       SELECT tier INTO v_tier FROM accounts WHERE id = p_account;
       v_limit := COALESCE((p_tier_limits ->> v_tier)::integer, 0);
       SELECT count(*) INTO v_active FROM runs WHERE account_id = p_account AND status IN ('queued', 'running');
       IF v_active >= v_limit THEN
         RETURN QUERY SELECT 'account_limit'::text, v_limit, v_active;
         RETURN;
       END IF;
       INSERT INTO runs (id, account_id, agent, status, input, timeout_ms, instance_id)
         VALUES (p_id, p_account, p_agent, 'queued', p_input, p_timeout_ms, p_instance);
       RETURN QUERY SELECT 'created'::text, NULL::integer, NULL::integer;
     END $$`,
];
