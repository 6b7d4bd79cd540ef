import type { Express } from 'express';

export interface MountedRoute {
  /** Lowercase, as OpenAPI names it (`get`). */
  readonly method: string;
  /** OpenAPI style: `/v1/runs/{id}`. */
  readonly path: string;
}

interface Layer {
  readonly rawPath?: unknown;
  readonly route?: { readonly path: unknown; readonly methods: Record<string, boolean> };
  readonly handle?: { readonly stack?: readonly Layer[] };
}

/** `/v1` + `/runs/:id` → `/v1/runs/{id}`, without a trailing slash. */
function openApiPath(prefix: string, path: string): string {
  const joined = `${prefix}${path}`.replace(/\/+$/, '') || '/';
  return joined.replace(/:(\w+)/g, '{$1}');
}

function walk(stack: readonly Layer[], prefix: string, out: Map<string, MountedRoute>): void {
  for (const layer of stack) {
    if (layer.route !== undefined) {
      if (typeof layer.route.path !== 'string') throw new Error(`a route with a path that is not a string: ${String(layer.route.path)}`);
      const path = openApiPath(prefix, layer.route.path);
      for (const method of Object.keys(layer.route.methods)) {
        if (method !== '_all') out.set(`${method} ${path}`, { method, path });
      }
    } else if (layer.handle?.stack !== undefined) {
      const mount = typeof layer.rawPath === 'string' && layer.rawPath !== '/' ? layer.rawPath : '';
      walk(layer.handle.stack, `${prefix}${mount}`, out);
    }
  }
}

/**
 * Every route the app mounts (method and path), found by walking its router stack, routers
 * mounted under a path included (Express 5's router keeps a layer's mount path as `rawPath`).
 */
export function mountedRoutes(app: Express): MountedRoute[] {
  const out = new Map<string, MountedRoute>();
  walk((app.router as unknown as { stack: readonly Layer[] }).stack, '', out);
  return [...out.values()];
}
