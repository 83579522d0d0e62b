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
