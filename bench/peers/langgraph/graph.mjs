// The LangGraph peer's graph: the same trivial agents as agentd's `echo` and `simulate`,
// streamed as custom events (stream_mode "custom").
import { Annotation, END, START, StateGraph } from '@langchain/langgraph';
import { setTimeout as sleep } from 'node:timers/promises';

const State = Annotation.Root({ input: Annotation(), output: Annotation() });

async function agent(state, config) {
  const input = state.input ?? {};
  const write = config.writer ?? (() => undefined);
  if (input.mode === 'simulate') {
    const text = 'x'.repeat(input.payload_bytes ?? 16);
    for (let seq = 0; seq < input.events; seq += 1) {
      if (seq > 0) await sleep(input.interval_ms);
      write({ seq, ts: Date.now(), text });
    }
    return { output: null };
  }
  const message = { role: 'assistant', content: input.input ?? null };
  write(message);
  return { output: message };
}

export const graph = new StateGraph(State).addNode('agent', agent).addEdge(START, 'agent').addEdge('agent', END).compile();
