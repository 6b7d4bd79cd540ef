import { type ChatMessage, defineAgent, type ToolCall, type ToolDefinition, z } from '../src/index.js';

/*
 * A tool-using agent: asks the model (ctx.llm, over LLM_PROVIDERS) with two tools on offer,
 * runs the calls it makes, emits each as a `tool` event, gives the results back, and repeats
 * until the model answers in text. The tools are local and deterministic; a real agent would
 * call a weather API the same way.
 */

/** Most model turns before the agent gives up (a model that keeps calling tools). */
const MAX_TURNS = 6;

const CITIES: Readonly<Record<string, { readonly tempC: number; readonly conditions: string }>> = {
  paris: { tempC: 18, conditions: 'cloudy' },
  london: { tempC: 14, conditions: 'light rain' },
  tokyo: { tempC: 24, conditions: 'sunny' },
  'new york': { tempC: 21, conditions: 'clear' },
};

const weatherArgs = z.object({ city: z.string().min(1).max(100) });
const UNITS = { c: 'celsius', f: 'fahrenheit', km: 'kilometres', mi: 'miles', kg: 'kilograms', lb: 'pounds' } as const;
const unitName = z.enum(Object.keys(UNITS) as [keyof typeof UNITS, ...Array<keyof typeof UNITS>]);
const convertArgs = z.object({ value: z.number().finite(), from: unitName, to: unitName });

const CONVERSIONS: Readonly<Record<string, (value: number) => number>> = {
  'c>f': (v) => (v * 9) / 5 + 32,
  'f>c': (v) => ((v - 32) * 5) / 9,
  'km>mi': (v) => v / 1.609344,
  'mi>km': (v) => v * 1.609344,
  'kg>lb': (v) => v / 0.45359237,
  'lb>kg': (v) => v * 0.45359237,
};

/** The current weather of a city (a fixed table; other cities get an honest "unknown"). */
export function getWeather(args: z.output<typeof weatherArgs>) {
  const known = CITIES[args.city.trim().toLowerCase()];
  return known === undefined
    ? { city: args.city, error: 'unknown city' }
    : { city: args.city, temp_c: known.tempC, conditions: known.conditions };
}

/** A value in another unit, rounded to 2 decimals. */
export function convertUnits(args: z.output<typeof convertArgs>) {
  if (args.from === args.to) return { value: args.value, unit: args.to };
  const convert = CONVERSIONS[`${args.from}>${args.to}`];
  if (convert === undefined) return { error: `cannot convert ${UNITS[args.from]} to ${UNITS[args.to]}` };
  return { value: Math.round(convert(args.value) * 100) / 100, unit: args.to };
}

const TOOLS = {
  get_weather: { args: weatherArgs, run: getWeather, description: 'The current weather in a city: temperature in celsius and conditions.' },
  convert_units: {
    args: convertArgs,
    run: convertUnits,
    description: 'Converts a value between units: c/f (temperature), km/mi (distance), kg/lb (mass).',
  },
} as const;

const TOOL_DEFINITIONS: ToolDefinition[] = Object.entries(TOOLS).map(([name, tool]) => ({
  type: 'function',
  function: { name, description: tool.description, parameters: z.toJSONSchema(tool.args) },
}));

/** Runs one call the model made; a bad call is answered with an error for the model to read, not thrown. */
function runTool(call: ToolCall): { input: unknown; output: unknown } {
  let input: unknown;
  try {
    input = JSON.parse(call.function.arguments);
  } catch {
    return { input: call.function.arguments, output: { error: 'arguments are not JSON' } };
  }
  const tool = TOOLS[call.function.name as keyof typeof TOOLS];
  if (tool === undefined) return { input, output: { error: `no tool named ${call.function.name}` } };
  const args = tool.args.safeParse(input);
  if (!args.success) return { input, output: { error: z.prettifyError(args.error) } };
  return { input, output: (tool.run as (a: unknown) => unknown)(args.data) };
}

export const weatherAgent = defineAgent({
  name: 'weather',
  description:
    'Answers weather questions with two tools (get_weather, convert_units): `tool` events for each call, `token`s, then a `message`.',
  input: z.object({ question: z.string().min(1).max(2_000) }).strict(),
  async run(ctx) {
    const messages: ChatMessage[] = [
      { role: 'system', content: 'Answer weather questions. Use get_weather, and convert_units for other units.' },
      { role: 'user', content: ctx.input.question },
    ];
    for (let turn = 0; turn < MAX_TURNS; turn += 1) {
      const reply = await ctx.llm.chat({ messages, tools: TOOL_DEFINITIONS, onDelta: (text) => void ctx.emit('token', { text }) });
      if (reply.toolCalls.length === 0) {
        await ctx.emit('message', { role: 'assistant', content: reply.content });
        return;
      }
      messages.push({ role: 'assistant', content: reply.content === '' ? null : reply.content, tool_calls: reply.toolCalls });
      for (const call of reply.toolCalls) {
        const { input, output } = runTool(call);
        await ctx.emit('tool', { name: call.function.name, input, output });
        messages.push({ role: 'tool', tool_call_id: call.id, content: JSON.stringify(output) });
      }
    }
    throw new Error(`the model still called tools after ${MAX_TURNS} turns`);
  },
});

export default weatherAgent;
