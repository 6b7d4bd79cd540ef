import assert from 'node:assert/strict';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { EVENT_ID } from '../../src/domain/index.js';

/** A response as the tests hold it: status, headers and the body's text. */
export interface CheckedResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const EVENT_TYPE = /^[a-z][a-z0-9_.-]{0,63}$/;

/**
 * The document as these tests hold the server to it: every object that lists its properties
 * is closed (`additionalProperties: false`), so a property the server sends but the document
 * does not describe fails, though the published document lets answers gain properties.
 * References to components point at a separate `components` schema for Ajv.
 */
function tightened(document: unknown): any {
  const text = JSON.stringify(document).replaceAll('"#/components/schemas/', '"components#/$defs/');
  const close = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(close);
    else if (node !== null && typeof node === 'object') {
      const record = node as Record<string, unknown>;
      if (record.properties !== undefined && record.additionalProperties === undefined) record.additionalProperties = false;
      Object.values(record).forEach(close);
    }
  };
  const copy = JSON.parse(text);
  close(copy);
  return copy;
}

/** Checks the frames of a text/event-stream answer: ids, known types, one line of JSON each, `end` last. */
function checkEventStream(text: string, what: string): void {
  const events = text
    .split('\n\n')
    .filter((block) => block.trim() !== '' && !block.startsWith(':'))
    .map((block) =>
      Object.fromEntries(block.split('\n').map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)])),
    );
  assert.ok(events.length > 0, `${what}: events`);
  for (const event of events) {
    assert.match(event.id ?? '', EVENT_ID, `${what}: event id`);
    assert.match(event.event ?? '', EVENT_TYPE, `${what}: event type ${event.event}`);
    JSON.parse(event.data ?? '');
  }
  assert.equal(events.at(-1)?.event, 'end', `${what}: ends with end`);
}

/**
 * Validates real answers against an OpenAPI document (Ajv, JSON Schema 2020-12): the status is
 * documented for the operation, the media type too, the body matches its schema, the required
 * headers are there. Remembers which statuses each operation was seen answering.
 */
export class OpenApiChecker {
  private readonly ajv = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true });
  private readonly document: any;
  private readonly validators = new Map<string, ValidateFunction>();
  readonly seen = new Map<string, Set<number>>();

  constructor(document: unknown) {
    this.document = tightened(document);
    this.ajv.addFormat('uuid', UUID);
    this.ajv.addFormat('date-time', { validate: (value: string) => DATE_TIME.test(value) && !Number.isNaN(Date.parse(value)) });
    this.ajv.addSchema({ $id: 'components', $defs: this.document.components?.schemas ?? {} });
  }

  /** Every operation of the document, as `get /v1/runs/{id}`. */
  operations(): string[] {
    return Object.entries(this.document.paths as Record<string, Record<string, unknown>>).flatMap(([path, item]) =>
      Object.keys(item).map((method) => `${method} ${path}`),
    );
  }

  check(method: string, path: string, res: CheckedResponse): void {
    const what = `${method} ${path} → ${res.status}`;
    const operation = this.document.paths?.[path]?.[method.toLowerCase()];
    assert.ok(operation, `${method} ${path} is documented`);
    const documented = operation.responses[String(res.status)];
    assert.ok(documented, `${what} is documented (${res.text.slice(0, 200)})`);
    for (const [name, header] of Object.entries(documented.headers ?? {})) {
      if (this.resolve(header).required === true) assert.ok(res.headers.has(name), `${what}: header ${name}`);
    }
    const type = (res.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '';
    if (documented.content === undefined) assert.equal(res.text, '', `${what}: no body`);
    else {
      const media = documented.content[type];
      assert.ok(media, `${what}: ${type} is documented (${Object.keys(documented.content).join(', ')})`);
      if (type === 'application/json')
        this.validate(`${method.toLowerCase()} ${path} ${res.status}`, media.schema, JSON.parse(res.text), what);
      if (type === 'text/event-stream') checkEventStream(res.text, what);
    }
    const key = `${method.toLowerCase()} ${path}`;
    (this.seen.get(key) ?? this.seen.set(key, new Set()).get(key))?.add(res.status);
  }

  private validate(key: string, schema: unknown, value: unknown, what: string): void {
    let validator = this.validators.get(key);
    if (validator === undefined) {
      validator = this.ajv.compile(schema as object);
      this.validators.set(key, validator);
    }
    assert.ok(validator(value), `${what}: ${this.ajv.errorsText(validator.errors)}\n${JSON.stringify(value).slice(0, 500)}`);
  }

  private resolve(node: any): any {
    const ref: unknown = node?.$ref;
    if (typeof ref !== 'string') return node;
    return ref
      .split('/')
      .slice(1)
      .reduce((at: any, part) => at?.[part], this.document);
  }
}
