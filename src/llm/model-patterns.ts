/**
 * A matcher for model-name patterns (LLM_THINKING_MODELS): each pattern matches the whole
 * name, case-insensitively, with `*` standing for any run of characters.
 */
export function modelPatternMatcher(patterns: readonly string[]): (model: string) => boolean {
  const regexes = patterns.map(
    (pattern) =>
      new RegExp(
        `^${pattern
          .split('*')
          .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
          .join('.*')}$`,
        'i',
      ),
  );
  return (model) => regexes.some((regex) => regex.test(model));
}
