import { Router } from 'express';
import type { AgentRegistry } from '../../runtime/agent-registry.js';

export function agentsRouter(agents: AgentRegistry): Router {
  const router = Router();
  const described = { agents: agents.describe() };
  router.get('/v1/agents', (_req, res) => {
    res.json(described);
  });
  return router;
}
