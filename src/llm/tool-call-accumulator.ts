import type { ToolCall } from '../domain/index.js';

/** One streamed piece of a tool call (`choices[].delta.tool_calls[]`): the first names it, the rest add to its arguments. */
export interface ToolCallDelta {
  readonly index: number;
  readonly id?: string | null;
  readonly function?: { readonly name?: string | null; readonly arguments?: string | null } | null;
}

/** Joins the streamed pieces of a reply's tool calls, by their index, into whole calls. */
export class ToolCallAccumulator {
  private readonly calls = new Map<number, { id: string; name: string; arguments: string }>();

  push(delta: ToolCallDelta): void {
    const call = this.calls.get(delta.index) ?? { id: '', name: '', arguments: '' };
    if (typeof delta.id === 'string' && delta.id !== '') call.id = delta.id;
    if (typeof delta.function?.name === 'string') call.name += delta.function.name;
    if (typeof delta.function?.arguments === 'string') call.arguments += delta.function.arguments;
    this.calls.set(delta.index, call);
  }

  /** The calls in index order; one the provider sent without an id gets `call_<index>`. */
  result(): ToolCall[] {
    return [...this.calls.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, call]) => ({
        id: call.id === '' ? `call_${index}` : call.id,
        type: 'function' as const,
        function: { name: call.name, arguments: call.arguments },
      }));
  }
}
