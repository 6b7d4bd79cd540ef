import { type RequestHandler, Router } from 'express';
import { openApiDocument } from '../openapi/openapi-document.js';
import type { ApiSchemaSettings } from '../openapi/api-operations.js';

/**
 * GET /openapi.json: the OpenAPI document, public, behind CORS like the API (a browser tool
 * on an allowed origin may read it). Built at the first request (it takes tens of ms, which
 * start-up need not pay) and kept as text.
 */
export function openApiRouter(deps: { settings: ApiSchemaSettings; cors: RequestHandler }): Router {
  const router = Router();
  let text: string | undefined;
  router.use('/openapi.json', deps.cors);
  router.get('/openapi.json', (_req, res) => {
    text ??= JSON.stringify(openApiDocument(deps.settings));
    res.type('application/json').send(text);
  });
  return router;
}
