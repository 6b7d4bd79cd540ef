/**
 * Read by the `agentd` CLI, the client side (where agentd is, and who is calling), never by the
 * server; start-up does not take them for misspellings of its own (`AGENTD_ADMIN_TOKEN`). A
 * module of its own, so the CLI reads the names without loading the config schema.
 */
export const CLI_ENV = { url: 'AGENTD_URL', apiKey: 'AGENTD_API_KEY', adminToken: 'AGENTD_ADMIN_TOKEN' } as const;
