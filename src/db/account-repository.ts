import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Database, Queryable, Row } from './database.js';

export interface Account {
  readonly id: string;
  readonly name: string;
  readonly tier: string;
  readonly createdAt: Date;
}

export interface AccountWithKeys extends Account {
  readonly keys: ReadonlyArray<{ readonly prefix: string; readonly createdAt: Date; readonly revokedAt: Date | null }>;
}

export interface IssuedKey {
  /** The secret: shown once, never stored. */
  readonly apiKey: string;
  readonly prefix: string;
}

const KEY_BYTES = 32;
export const KEY_PREFIX_LENGTH = 8;
/** Draws of a fresh key before giving up; a second draw is already vanishingly rare. */
const MAX_KEY_DRAWS = 4;

/** SHA-256 of an API key, hex: what the database stores and looks keys up by. */
export function hashApiKey(apiKey: string): string {
  return createHash('sha256').update(apiKey).digest('hex');
}

function toAccount(row: Row): Account {
  return { id: String(row.id), name: String(row.name), tier: String(row.tier), createdAt: row.created_at as Date };
}

/** The `accounts` and `api_keys` tables. */
export class AccountRepository {
  constructor(private readonly db: Database) {}

  /** Creates an account with its first key, in one transaction. */
  async create(name: string, tier: string): Promise<{ account: Account; key: IssuedKey }> {
    return this.db.transaction(async (tx) => {
      const rows = await tx.query(`INSERT INTO accounts (id, name, tier) VALUES ($1, $2, $3) RETURNING *`, [randomUUID(), name, tier]);
      const account = toAccount(rows[0] as Row);
      return { account, key: await this.insertKey(tx, account.id) };
    });
  }

  async get(id: string): Promise<AccountWithKeys | null> {
    const rows = await this.db.query(`SELECT * FROM accounts WHERE id = $1`, [id]);
    if (rows[0] === undefined) return null;
    const keys = await this.db.query(
      `SELECT prefix, created_at, revoked_at FROM api_keys WHERE account_id = $1 ORDER BY created_at, prefix`,
      [id],
    );
    return {
      ...toAccount(rows[0]),
      keys: keys.map((k) => ({
        prefix: String(k.prefix),
        createdAt: k.created_at as Date,
        revokedAt: (k.revoked_at as Date | null) ?? null,
      })),
    };
  }

  async setTier(id: string, tier: string): Promise<Account | null> {
    const rows = await this.db.query(`UPDATE accounts SET tier = $2 WHERE id = $1 RETURNING *`, [id, tier]);
    return rows[0] === undefined ? null : toAccount(rows[0]);
  }

  /** Issues another key for the account; null when the account does not exist. */
  async issueKey(accountId: string): Promise<IssuedKey | null> {
    const rows = await this.db.query(`SELECT id FROM accounts WHERE id = $1`, [accountId]);
    if (rows[0] === undefined) return null;
    return this.insertKey(this.db, accountId);
  }

  /** Revokes the key with this prefix; returns its account id, or null when no active key has it. */
  async revokeKey(prefix: string): Promise<string | null> {
    const rows = await this.db.query(
      `UPDATE api_keys SET revoked_at = now() WHERE prefix = $1 AND revoked_at IS NULL RETURNING account_id`,
      [prefix],
    );
    return rows[0] === undefined ? null : String(rows[0].account_id);
  }

  /** The account an active key belongs to, found by the key's hash. */
  async findByKeyHash(keyHash: string): Promise<Account | null> {
    const rows = await this.db.query(
      `SELECT a.* FROM api_keys k JOIN accounts a ON a.id = k.account_id
       WHERE k.key_hash = $1 AND k.revoked_at IS NULL`,
      [keyHash],
    );
    return rows[0] === undefined ? null : toAccount(rows[0]);
  }

  private async insertKey(q: Queryable, accountId: string): Promise<IssuedKey> {
    // A prefix names the key for revocation, so it must be unique: on the rare collision of
    // its 48 bits, draw again. ON CONFLICT rather than catching the unique violation: `q` may be
    // a transaction (create), which a failed statement would abort, failing the retry too.
    for (let attempt = 0; attempt < MAX_KEY_DRAWS; attempt += 1) {
      const apiKey = randomBytes(KEY_BYTES).toString('base64url');
      const prefix = apiKey.slice(0, KEY_PREFIX_LENGTH);
      const rows = await q.query(
        `INSERT INTO api_keys (prefix, account_id, key_hash) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING prefix`,
        [prefix, accountId, hashApiKey(apiKey)],
      );
      if (rows.length === 1) return { apiKey, prefix };
    }
    throw new Error(`could not draw an unused API key prefix in ${MAX_KEY_DRAWS} attempts`);
  }
}
