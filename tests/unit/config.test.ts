import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { configVariables, loadConfig } from '../../src/config/config.js';
import { editDistance } from '../../src/config/near-miss.js';
import { parseTierLimits } from '../../src/config/tier-limits.js';
import { ConfigError } from '../../src/domain/index.js';

describe('loadConfig', () => {
  it('takes documented defaults and says where each value came from', () => {
    const config = loadConfig({});
    assert.equal(config.server.port, 3000);
    assert.equal(config.db.url, undefined);
    assert.equal(config.redis.url, undefined);
    assert.equal(config.server.adminToken, undefined);
    assert.equal(config.runs.queueTimeoutMs, 30_000);
    assert.equal(config.events.streamTtlSeconds, 600);
    assert.equal(config.runs.maxConcurrentAgentRuns, undefined);
    assert.deepEqual(
      [...config.runs.tierLimits],
      [
        ['free', 1],
        ['pro', 5],
        ['enterprise', 25],
      ],
    );
    assert.equal(config.sources.PORT, 'default');
    assert.ok(Object.isFrozen(config));
  });

  it('reads set values and marks them env', () => {
    const config = loadConfig({
      PORT: '8080',
      MAX_CONCURRENT_AGENT_RUNS: '7',
      TIER_LIMITS: 'free:2,bulk:1000',
      DATABASE_URL: 'postgres://u@h/db',
    });
    assert.equal(config.server.port, 8080);
    assert.equal(config.runs.maxConcurrentAgentRuns, 7);
    assert.equal(config.runs.tierLimits.get('bulk'), 1000);
    assert.equal(config.db.url, 'postgres://u@h/db');
    assert.equal(config.sources.MAX_CONCURRENT_AGENT_RUNS, 'env');
  });

  it('treats empty strings as unset', () => {
    assert.equal(loadConfig({ DATABASE_URL: '', PORT: ' ' }).db.url, undefined);
  });

  for (const [name, value] of [
    ['PORT', 'eighty'],
    ['PORT', '70000'],
    ['MAX_CONCURRENT_AGENT_RUNS', '0'],
    ['MAX_CONCURRENT_AGENT_RUNS', '-3'],
    ['RUN_QUEUE_TIMEOUT_MS', '1.5'],
    ['DATABASE_URL', 'mysql://x'],
    ['REDIS_URL', 'not a url'],
    ['REDIS_CLUSTER_NODES', '10.0.0.1'],
    ['REDIS_CLUSTER_NODES', '10.0.0.1:7000,h:0'],
    ['REDIS_CLUSTER_NODES', 'redis://h:7000'],
    ['REDIS_CLUSTER_NODES', ' , '],
    ['LOG_LEVEL', 'loud'],
    ['TIER_LIMITS', 'free=1'],
    ['TIER_LIMITS', 'free:1,free:2'],
    ['INSTANCE_ID', 'has spaces'],
    ['WORKERS', 'abc'],
    ['WORKERS', '0'],
    ['WORKERS', '1000'],
    ['WEB_CONCURRENCY', 'lots'],
    ['DB_PREPARED_STATEMENTS', 'yes'],
  ] as const) {
    it(`stops on ${name}=${JSON.stringify(value)} naming the variable and the value`, () => {
      assert.throws(
        () => loadConfig({ [name]: value }),
        (error: unknown) => error instanceof ConfigError && error.message.includes(name) && error.message.includes(JSON.stringify(value)),
      );
    });
  }

  describe('secrets in messages', () => {
    const messageOf = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (error) {
        if (error instanceof ConfigError) return error.message;
        throw error;
      }
      throw new Error('no ConfigError');
    };

    for (const name of ['ADMIN_TOKEN', 'METRICS_TOKEN']) {
      it(`names ${name} but never shows its value`, () => {
        const message = messageOf({ [name]: 'sekret-token' });
        assert.match(message, new RegExp(`${name} must be at least 16 characters long \\(got a value of 12 characters, not shown\\)`));
        assert.doesNotMatch(message, /sekret/);
      });
    }

    it('shows a bad URL with its password as ***', () => {
      const message = messageOf({ DATABASE_URL: 'mysql://user:secretpw@db:3306/x', REDIS_URL: 'http://:p%40ss@h' });
      assert.match(
        message,
        /DATABASE_URL must be a URL starting with postgres:\/\/ or postgresql:\/\/ \(got "mysql:\/\/user:\*\*\*@db:3306\/x"\)/,
      );
      assert.match(message, /REDIS_URL .*"http:\/\/:\*\*\*@h"/);
      assert.doesNotMatch(message, /secretpw|p%40ss/);
    });

    it('never shows LLM_PROVIDERS, where a key may have been pasted', () => {
      const message = messageOf({ LLM_PROVIDERS: '[{"name":"x","api_key":"sk-SECRET"}]' });
      assert.match(message, /LLM_PROVIDERS /);
      assert.doesNotMatch(message, /sk-SECRET/);
    });
  });

  describe('near misses', () => {
    const misses = (env: Record<string, string>) => loadConfig(env).nearMisses.map(({ name, intended }) => `${name}->${intended}`);

    it('names a variable agentd does not read but likely meant, with the one it meant', () => {
      assert.deepEqual(misses({ RUN_QUEU_MAX: '3', DATABSE_URL: 'postgres://u:p@h/d', log_level: 'debug', AGENTD_PORT: '80' }), [
        'RUN_QUEU_MAX->RUN_QUEUE_MAX',
        'DATABSE_URL->DATABASE_URL',
        'log_level->LOG_LEVEL',
        'AGENTD_PORT->PORT',
      ]);
    });

    it('leaves alone the variables agentd reads and the usual ones of a process', () => {
      const env = {
        PORT: '1',
        LOG_LEVEL: 'info',
        HOME: '/root',
        HOST: '127.0.0.1',
        HOSTNAME: 'box',
        PATH: '/bin',
        PWD: '/',
        NODE_ENV: 'production',
        NODE_OPTIONS: '',
        TERM: 'xterm',
        LANG: 'C',
        USER: 'root',
        TMPDIR: '/tmp',
        AGENTD_WORKER: '',
        // The CLI's own (the client side), often set in the same shell as the server's.
        AGENTD_URL: 'http://127.0.0.1:3000',
        AGENTD_API_KEY: 'key',
        AGENTD_ADMIN_TOKEN: 'token',
        LLM_PROVIDERS: '[{"name":"m","base_url":"http://h/v1","api_key_env":"LLM_PROVIDER","models":["a"],"max_in_flight":1}]',
        LLM_PROVIDER: 'key',
      };
      assert.deepEqual(misses(env), []);
    });
  });

  it('prepares statements unless DB_PREPARED_STATEMENTS=false', () => {
    assert.equal(loadConfig({}).db.preparedStatements, true);
    assert.equal(loadConfig({ DB_PREPARED_STATEMENTS: 'false' }).db.preparedStatements, false);
  });

  it('reports every bad variable at once', () => {
    assert.throws(() => loadConfig({ PORT: 'x', RUN_TIMEOUT_MS: 'y' }), /PORT[\s\S]*RUN_TIMEOUT_MS/);
  });

  it('refuses a default run timeout above the maximum', () => {
    assert.throws(() => loadConfig({ RUN_TIMEOUT_MS: '5000', MAX_RUN_TIMEOUT_MS: '1000' }), /RUN_TIMEOUT_MS/);
  });

  it('refuses a run backlog bound that cannot hold the largest event', () => {
    assert.throws(
      () => loadConfig({ RUN_EVENT_BACKLOG_BYTES: '100000', MAX_EVENT_BYTES: '200000' }),
      (error: unknown) => error instanceof ConfigError && /RUN_EVENT_BACKLOG_BYTES must be at least MAX_EVENT_BYTES/.test(error.message),
    );
    const config = loadConfig({});
    assert.equal(config.runs.eventBacklogBytes, 4 * 1024 * 1024);
    assert.equal(config.events.streamMaxBytes, 8 * 1024 * 1024);
    assert.equal(config.sse.maxListenersPerAccount, 2_500);
  });

  describe('REDIS_CLUSTER_NODES', () => {
    it('takes host:port seeds (IPv6 in brackets), dropping repeats', () => {
      const config = loadConfig({ REDIS_CLUSTER_NODES: ' 10.0.0.1:7000, redis-a.internal:7001,[::1]:7002,10.0.0.1:7000 ' });
      assert.deepEqual(config.redis.clusterNodes, [
        { host: '10.0.0.1', port: 7000 },
        { host: 'redis-a.internal', port: 7001 },
        { host: '::1', port: 7002 },
      ]);
      assert.equal(config.redis.url, undefined);
    });

    it('is exclusive with REDIS_URL: both set stops, naming both', () => {
      assert.throws(
        () => loadConfig({ REDIS_URL: 'redis://h:6379', REDIS_CLUSTER_NODES: 'h:7000' }),
        (error: unknown) =>
          error instanceof ConfigError &&
          error.message.includes('REDIS_URL and REDIS_CLUSTER_NODES are exclusive') &&
          error.message.includes('"h:7000"'),
      );
    });

    it('lets WORKERS fork workers in place of REDIS_URL', () => {
      const config = loadConfig({ DATABASE_URL: 'postgres://u@h/db', REDIS_CLUSTER_NODES: 'h:7000', WORKERS: '2' });
      assert.equal(config.server.workers, 2);
    });
  });

  describe('WORKERS', () => {
    const shared = { DATABASE_URL: 'postgres://u@h/db', REDIS_URL: 'redis://h:6379' };

    it('defaults to 1, and takes a number or auto', () => {
      assert.equal(loadConfig({}).server.workers, 1);
      assert.equal(loadConfig({ ...shared, WORKERS: '4' }).server.workers, 4);
      assert.equal(loadConfig({ ...shared, WORKERS: ' Auto ' }).server.workers, 'auto');
    });

    for (const missing of ['DATABASE_URL', 'REDIS_URL'] as const) {
      it(`refuses WORKERS > 1 or auto without ${missing}, naming WORKERS and its value`, () => {
        for (const value of ['2', 'auto']) {
          assert.throws(
            () => loadConfig({ ...shared, [missing]: '', WORKERS: value }),
            (error: unknown) =>
              error instanceof ConfigError &&
              error.message.includes(`WORKERS needs DATABASE_URL and REDIS_URL`) &&
              error.message.includes(`"${value}"`),
          );
        }
      });
    }

    it('reads WEB_CONCURRENCY when WORKERS is unset; WORKERS wins when both are set', () => {
      const fromAlias = loadConfig({ ...shared, WEB_CONCURRENCY: '3' });
      assert.equal(fromAlias.server.workers, 3);
      assert.equal(fromAlias.sources.WORKERS, 'env');
      assert.equal(loadConfig({ ...shared, WEB_CONCURRENCY: 'auto' }).server.workers, 'auto');
      assert.equal(loadConfig({ ...shared, WORKERS: '2', WEB_CONCURRENCY: '8' }).server.workers, 2);
      assert.equal(loadConfig({ ...shared, WORKERS: '', WEB_CONCURRENCY: '8' }).server.workers, 8);
      // WORKERS set: a WEB_CONCURRENCY it overrides is not even parsed.
      assert.equal(loadConfig({ ...shared, WORKERS: '2', WEB_CONCURRENCY: 'lots' }).server.workers, 2);
      assert.deepEqual(loadConfig({ WEB_CONCURRENCY: '1' }).nearMisses, []);
    });

    it('names WEB_CONCURRENCY when it asks for workers without DATABASE_URL', () => {
      assert.throws(
        () => loadConfig({ REDIS_URL: shared.REDIS_URL, WEB_CONCURRENCY: '4' }),
        (error: unknown) =>
          error instanceof ConfigError && error.message.includes('WEB_CONCURRENCY needs DATABASE_URL') && error.message.includes('"4"'),
      );
    });

    it('gives a forked worker the id <INSTANCE_ID>/<slot> and its share', () => {
      const config = loadConfig({ ...shared, WORKERS: 'auto', INSTANCE_ID: 'vps', AGENTD_WORKER: '3/8' });
      assert.equal(config.instanceId, 'vps/3');
      assert.deepEqual(config.worker, { slot: 3, count: 8 });
      assert.equal(loadConfig({ INSTANCE_ID: 'vps' }).instanceId, 'vps');
      assert.equal(loadConfig({}).worker, null);
    });

    for (const value of ['0/2', '3/2', 'x', '1/1000']) {
      it(`stops on AGENTD_WORKER=${JSON.stringify(value)}`, () => {
        assert.throws(() => loadConfig({ ...shared, WORKERS: '2', AGENTD_WORKER: value }), /AGENTD_WORKER/);
      });
    }
  });

  describe('.env.example', () => {
    const example = readFileSync(new URL('../../.env.example', import.meta.url), 'utf8');
    const documented = [...example.matchAll(/^(#?)\s*([A-Z][A-Z0-9_]+)=(.*)$/gm)].map((m) => ({
      commented: m[1] === '#',
      name: m[2] as string,
      value: m[3] as string,
    }));
    const variables = configVariables().flatMap((entry) => [entry.variable.env, ...entry.variable.aliases]);

    it('lists every variable, and only variables agentd reads', () => {
      const names = new Set(documented.map((d) => d.name));
      assert.deepEqual(
        variables.filter((name) => !names.has(name)),
        [],
      );
      assert.deepEqual(
        [...names].filter((name) => !variables.includes(name)),
        [],
      );
    });

    it('shows each default as the schema has it', () => {
      const shown = Object.fromEntries(documented.filter((d) => !d.commented).map((d) => [d.name, d.value]));
      const { sources: fromExampleSources, ...fromExample } = loadConfig(shown);
      const { sources: defaultSources, ...defaults } = loadConfig({});
      assert.deepEqual(fromExample, defaults);
    });
  });
});

describe('editDistance', () => {
  it('counts insertions, deletions and substitutions', () => {
    assert.equal(editDistance('RUN_QUEUE_MAX', 'RUN_QUEU_MAX'), 1);
    assert.equal(editDistance('DATABASE_URL', 'DATABSE_URL'), 1);
    assert.equal(editDistance('DATABASE_URL', 'DATBAASE_URL'), 2);
    assert.equal(editDistance('HOST', 'HOME'), 2);
    assert.equal(editDistance('', 'ab'), 2);
    assert.equal(editDistance('same', 'same'), 0);
  });
});

describe('parseTierLimits', () => {
  it('parses names and limits, ignoring spaces', () => {
    assert.deepEqual(
      [...parseTierLimits(' free:1 , pro:5 ')],
      [
        ['free', 1],
        ['pro', 5],
      ],
    );
  });
  it('refuses an empty list', () => {
    assert.throws(() => parseTierLimits(' , '));
  });
});
