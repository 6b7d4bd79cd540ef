import { z } from 'zod';
import {
  type CreateDocumentOptions,
  createDocument,
  type oas31,
  type ZodOpenApiOperationObject,
  type ZodOpenApiPathsObject,
  type ZodOpenApiResponseObject,
} from 'zod-openapi';
import { API_ERRORS, type ApiErrorCode, byStatus, carriesRetryAfter, errorBody } from './api-errors.js';
import {
  type ApiOperation,
  apiOperations,
  type ApiResponse,
  type ApiSchemaSettings,
  type ApiSecurity,
  PATH_PARAMETERS,
} from './api-operations.js';

const SECURITY_SCHEMES: Record<string, oas31.SecuritySchemeObject> = {
  apiKey: { type: 'http', scheme: 'bearer', description: "An account's API key: `Authorization: Bearer <api key>`." },
  adminToken: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN; without it the admin routes answer 404.' },
  metricsToken: { type: 'http', scheme: 'bearer', description: 'METRICS_TOKEN, when set; otherwise /metrics is open.' },
  streamToken: {
    type: 'apiKey',
    in: 'query',
    name: 'token',
    description:
      "A stream token from POST /v1/runs/{id}/stream-token, for that run's events only, until it expires. An API key is never accepted in a URL.",
  },
};

const SECURITY: Record<ApiSecurity, oas31.SecurityRequirementObject[]> = {
  public: [],
  apiKey: [{ apiKey: [] }],
  admin: [{ adminToken: [] }],
  // {}: no token needed when METRICS_TOKEN is unset.
  metrics: [{ metricsToken: [] }, {}],
  apiKeyOrStreamToken: [{ apiKey: [] }, { streamToken: [] }],
};

/** The codes a route's security implies: a refused credential, an unreachable database, no ADMIN_TOKEN (404). */
const SECURITY_ERRORS: Record<ApiSecurity, readonly ApiErrorCode[]> = {
  public: [],
  apiKey: ['unauthorized', 'dependency_unavailable'],
  admin: ['unauthorized', 'not_found', 'dependency_unavailable'],
  metrics: ['unauthorized'],
  apiKeyOrStreamToken: ['unauthorized', 'dependency_unavailable'],
};
const BODY_ERRORS: readonly ApiErrorCode[] = ['invalid_request', 'invalid_json', 'payload_too_large', 'unsupported_media_type'];

const requestIdHeader = z
  .string()
  .meta({ description: "The request's id: the X-Request-Id it was sent with when sane, else a new UUID; it is in the server's log line." });
const retryAfterHeader = z.string().meta({ description: 'Seconds to wait before retrying.' });

function response(description: string, answer: Omit<ApiResponse, 'description'>): ZodOpenApiResponseObject {
  const content = Object.fromEntries(Object.entries(answer.content ?? {}).map(([type, schema]) => [type, { schema }]));
  return {
    description,
    headers: z.object({ 'X-Request-Id': requestIdHeader, ...answer.headers }),
    ...(answer.content === undefined ? {} : { content }),
  };
}

function errorResponses(operation: ApiOperation): Record<number, ZodOpenApiResponseObject> {
  const codes: ApiErrorCode[] = [
    ...SECURITY_ERRORS[operation.security],
    ...(operation.body === undefined ? [] : BODY_ERRORS),
    ...operation.errors,
    'internal',
  ];
  const responses: Record<number, ZodOpenApiResponseObject> = {};
  for (const [status, group] of byStatus(codes)) {
    const description = group.map((code) => `\`${code}\`: ${API_ERRORS[code].description}.`).join(' ');
    const headers = carriesRetryAfter(status) ? { 'Retry-After': retryAfterHeader } : undefined;
    responses[status] = response(description, { content: { 'application/json': errorBody(group) }, ...(headers && { headers }) });
  }
  return responses;
}

function pathParameters(path: string): z.ZodObject | undefined {
  const names = [...path.matchAll(/\{(\w+)\}/g)].map((match) => match[1] as string);
  if (names.length === 0) return undefined;
  return z.object(
    Object.fromEntries(
      names.map((name) => {
        const schema = PATH_PARAMETERS[name];
        if (schema === undefined) throw new Error(`no description of path parameter {${name}} (PATH_PARAMETERS)`);
        return [name, schema];
      }),
    ),
  );
}

function operationObject(operation: ApiOperation): ZodOpenApiOperationObject {
  const successes = Object.fromEntries(
    Object.entries(operation.responses).map(([status, answer]) => [status, response(answer.description, answer)]),
  );
  const path = pathParameters(operation.path);
  return {
    operationId: operation.operationId,
    summary: operation.summary,
    ...(operation.description === undefined ? {} : { description: operation.description }),
    tags: [operation.tag],
    security: SECURITY[operation.security],
    requestParams: {
      ...(path && { path }),
      ...(operation.query && { query: operation.query }),
      ...(operation.headers && { header: operation.headers }),
    },
    ...(operation.body && { requestBody: { required: true, content: { 'application/json': { schema: operation.body } } } }),
    responses: { ...successes, ...errorResponses(operation) },
  };
}

/**
 * Answers may gain properties (the contract changes only by adding), so their objects do not
 * forbid others; requests stay strict. zod's bounds of a safe integer say nothing: dropped.
 */
const tidySchema: NonNullable<CreateDocumentOptions['override']> = ({ jsonSchema, io }) => {
  if (io === 'output' && jsonSchema.additionalProperties === false) delete jsonSchema.additionalProperties;
  if (jsonSchema.minimum === Number.MIN_SAFE_INTEGER) delete jsonSchema.minimum;
  if (jsonSchema.maximum === Number.MAX_SAFE_INTEGER) delete jsonSchema.maximum;
};

/**
 * The OpenAPI 3.1 document of the contract (`GET /openapi.json`), generated by zod-openapi
 * from the route table and the zod schemas the routes validate with. Build it once (start-up).
 */
export function openApiDocument(settings: ApiSchemaSettings): oas31.OpenAPIObject {
  const { operations, components } = apiOperations(settings);
  const paths: ZodOpenApiPathsObject = {};
  for (const operation of operations) (paths[operation.path] ??= {})[operation.method] = operationObject(operation);
  return createDocument(
    {
      openapi: '3.1.0',
      info: {
        title: 'agentd',
        version: 'v1',
        description:
          'The HTTP contract of agentd, an agent runtime (docs/API.md). It changes only by adding: answers may gain properties, so their schemas do not forbid others.',
      },
      tags: [
        { name: 'runs', description: 'Start, list, read and cancel runs.' },
        { name: 'events', description: "Runs' events as Server-Sent Events." },
        { name: 'agents', description: 'The agents a run may use.' },
        { name: 'accounts', description: 'Accounts and API keys (admin).' },
        { name: 'operations', description: 'Health, readiness, metrics, capacity, this document.' },
      ],
      paths,
      components: { schemas: components, headers: { XRequestId: requestIdHeader }, securitySchemes: SECURITY_SCHEMES },
    },
    { override: tidySchema },
  );
}
