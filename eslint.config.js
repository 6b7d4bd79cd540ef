import tseslint from 'typescript-eslint';

/**
 * The floors of src/, lowest first, and what each may import (see ARCHITECTURE.md). An import
 * from a floor not listed fails the lint, so no arrow runs upward and no two folders import
 * each other. Folder names are unique across src/, so the floor shows in the import path.
 */
const FLOORS = {
  domain: [],
  lib: [],
  concurrency: ['domain', 'lib'],
  config: ['domain', 'lib'],
  db: ['domain', 'lib', 'concurrency', 'config'],
  streaming: ['domain', 'lib', 'concurrency', 'config', 'db'],
  llm: ['domain', 'lib', 'concurrency', 'config'],
  agents: ['domain', 'lib', 'llm'],
  runtime: ['domain', 'lib', 'concurrency', 'config', 'db', 'streaming'],
  observability: ['domain', 'lib', 'concurrency', 'config', 'db', 'streaming', 'llm', 'runtime'],
  http: ['domain', 'lib', 'concurrency', 'config', 'db', 'streaming', 'runtime'],
  app: ['domain', 'lib', 'concurrency', 'config', 'db', 'streaming', 'llm', 'agents', 'runtime', 'observability', 'http'],
  // The client takes only types from domain (see below); the CLI drives the client, and reads config for `config check`.
  client: ['domain'],
  cli: ['domain', 'lib', 'config', 'client'],
};

const floorRules = Object.entries(FLOORS).map(([floor, allowed]) => {
  const forbidden = Object.keys(FLOORS).filter((other) => other !== floor && !allowed.includes(other));
  return {
    files: [`src/${floor}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: `^\\.\\.?/(?:\\.\\./)*(?:${forbidden.join('|')})/`,
              message: `src/${floor}/ may import only from ${allowed.length === 0 ? 'itself' : allowed.join(', ')} (floors: ARCHITECTURE.md).`,
            },
          ],
        },
      ],
    },
  };
});

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'bench/peers/', 'bench/results/'] },
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: { allowDefaultProject: ['tools/*.mjs'] }, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-explicit-any': ['error', { ignoreRestArgs: true }],
      'no-empty': ['error', { allowEmptyCatch: false }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      // Past these a file or function wants splitting; an exception says why in an eslint-disable comment.
      'max-lines': ['error', { max: 400, skipBlankLines: true, skipComments: true }],
      'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true }],
    },
  },
  ...floorRules,
  {
    // agentd/client runs in browsers as it is and loads no server code: types only from domain/, nothing from Node or npm.
    files: ['src/client/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            { regex: '^\\.\\./domain/', allowTypeImports: true, message: 'src/client/ imports only types from domain/ (import type).' },
            { regex: '^[^.]', message: 'src/client/ imports no package or Node module: it runs in browsers too.' },
          ],
        },
      ],
      'no-restricted-globals': ['error', 'process', 'Buffer', 'require', 'module', '__dirname', '__filename', 'setImmediate'],
    },
  },
  {
    files: ['tests/**/*.ts'],
    // node:test's describe/it return promises the runner itself awaits.
    rules: { '@typescript-eslint/no-explicit-any': 'off', '@typescript-eslint/no-floating-promises': 'off' },
  },
);
