/** Paths of the tools that scripts/setup-python.sh installs into the cached venv (temporal, weed, python). */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheDir } from '../../workers/config.js';

export { cacheDir };

/** The repository checkout these scripts belong to. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

let ensured = false;

/** The venv's bin directory, creating the venv first if needed (idempotent, cached by requirements hash). */
export function venvBin(tool: string): string {
  const bin = path.join(cacheDir(), 'venv', 'bin', tool);
  if (!existsSync(bin) && !ensured) {
    ensured = true;
    execFileSync('bash', [path.join(REPO_ROOT, 'scripts', 'setup-python.sh')], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  }
  if (!existsSync(bin)) throw new Error(`${bin} not found after scripts/setup-python.sh`);
  return bin;
}
