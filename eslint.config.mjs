import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'test-output/', 'jobs/', '.tao/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  // The layering (docs/architecture.md#layers): each role imports only the roles below it.
  //   common ← workflows ← activities ← workers ← scripts (CLI, dev stack) ; tests and bench may import anything.
  {
    files: ['activities/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/workers/*', '**/scripts/*', '**/scripts/**', '**/tests/**', '**/bench/*'],
              message: 'activities never import workers, scripts, tests or bench (docs/architecture.md#layers)',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['workers/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/scripts/*', '**/scripts/**', '**/tests/**', '**/bench/*'],
              message: 'workers never import scripts, tests or bench (docs/architecture.md#layers)',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['scripts/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/tests/**', '**/bench/*'],
              message: 'scripts never import tests or bench (docs/architecture.md#layers)',
            },
          ],
        },
      ],
    },
  },
  {
    // The workflow sandbox: deterministic code only. Node built-ins and Node-only modules must not reach it
    // (the bundle check catches transitive imports; this catches direct ones early, in the editor).
    files: ['workflows/**/*.ts', 'common/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['node:*', 'fs', 'path', 'os', 'child_process', 'crypto', 'http', 'https', 'net'],
              message: 'Node built-ins are not allowed in workflow code',
            },
            {
              group: [
                '**/activities/*',
                '!**/activities/index.js',
                '**/workers/*',
                '**/scripts/*',
                '**/scripts/**',
                '**/tests/**',
                '@aws-sdk/*',
                '@kubernetes/*',
              ],
              message: 'workflow code may only import workflow-safe modules',
            },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'setTimeout', message: 'use sleep() from @temporalio/workflow' },
        { name: 'setInterval', message: 'not deterministic' },
      ],
    },
  },
);
