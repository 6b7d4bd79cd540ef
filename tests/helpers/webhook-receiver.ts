/**
 * A webhook receiver for tests: a local HTTP server that checks every request the way a
 * Standard Webhooks receiver does (the signature over `<id>.<timestamp>.<body>` with the
 * secret, in constant time; the timestamp within 5 minutes) and records it, then answers as
 * the test says (a status, or never: the request hangs until the receiver closes).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Standard Webhooks' default tolerance for the timestamp. */
const TOLERANCE_S = 5 * 60;

export interface ReceivedDelivery {
  readonly path: string;
  readonly host: string | undefined;
  readonly id: string;
  readonly timestamp: number;
  /** The signature checked out with the secret and the timestamp was within tolerance. */
  readonly verified: boolean;
  readonly body: string;
  readonly json: any;
  /** What the receiver answered ('hang': nothing). */
  readonly answered: number | 'hang';
}

export interface WebhookReceiver {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** Every request received, in order. */
  readonly received: ReceivedDelivery[];
  /** Decides the answer to a request (default 204). */
  answer: (request: { path: string; id: string; json: any; attempt: number }) => number | 'hang';
  /** The requests that got a 2xx, for the run with this id. */
  deliveredFor(runId: string): ReceivedDelivery[];
  /** Every request for the run with this id. */
  attemptsFor(runId: string): ReceivedDelivery[];
  close(): Promise<void>;
}

/** The key of a secret as Standard Webhooks libraries read it (`whsec_` + base64), else its bytes. */
function keyOf(secret: string): Buffer {
  return secret.startsWith('whsec_') ? Buffer.from(secret.slice('whsec_'.length), 'base64') : Buffer.from(secret);
}

/** Checks a request as `new Webhook(secret).verify(body, headers)` does. */
export function verifySignature(secret: string, headers: IncomingMessage['headers'], body: string): boolean {
  const id = headers['webhook-id'];
  const timestamp = headers['webhook-timestamp'];
  const signatures = headers['webhook-signature'];
  if (typeof id !== 'string' || typeof timestamp !== 'string' || typeof signatures !== 'string') return false;
  if (!/^\d+$/.test(timestamp) || Math.abs(Date.now() / 1000 - Number(timestamp)) > TOLERANCE_S) return false;
  const expected = createHmac('sha256', keyOf(secret)).update(`${id}.${timestamp}.${body}`).digest();
  return signatures.split(' ').some((entry) => {
    const [version, signature] = entry.split(',');
    if (version !== 'v1' || signature === undefined) return false;
    const given = Buffer.from(signature, 'base64');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

export async function startWebhookReceiver(secret: string): Promise<WebhookReceiver> {
  const received: ReceivedDelivery[] = [];
  const hanging = new Set<ServerResponse>();
  const receiver: WebhookReceiver = {
    url: '',
    port: 0,
    received,
    answer: () => 204,
    deliveredFor: (runId) =>
      received.filter((d) => d.json?.id === runId && typeof d.answered === 'number' && d.answered >= 200 && d.answered < 300),
    attemptsFor: (runId) => received.filter((d) => d.json?.id === runId),
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of hanging) res.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const id = String(req.headers['webhook-id'] ?? '');
      let json: any;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined; // recorded as is; the test sees it
      }
      const verified = verifySignature(secret, req.headers, body);
      const path = req.url ?? '';
      const attempt = received.filter((d) => d.id === id).length + 1;
      const answered = verified ? receiver.answer({ path, id, json, attempt }) : 401;
      received.push({
        path,
        host: req.headers.host,
        id,
        timestamp: Number(req.headers['webhook-timestamp']),
        verified,
        body,
        json,
        answered,
      });
      if (answered === 'hang') {
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      }
      res.statusCode = answered;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(receiver, { url: `http://127.0.0.1:${port}`, port });
}
