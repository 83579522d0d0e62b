/** Starting and stopping the local servers this project runs (by pid, never by name), with readiness waits. */
import { spawn, type ChildProcess } from 'node:child_process';
import fs, { openSync } from 'node:fs';
import net from 'node:net';

export interface Started {
  child: ChildProcess;
  logFile: string;
  stop(): Promise<void>;
}

export function startLogged(
  cmd: string,
  args: string[],
  logFile: string,
  env: NodeJS.ProcessEnv = process.env,
): Started {
  const fd = openSync(logFile, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env, detached: true });
  child.unref();
  return {
    child,
    logFile,
    stop: () => stopProcess(child),
  };
}

/** SIGTERM the process group, SIGKILL after 10 s; resolves when it is gone. */
export async function stopProcess(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }, graceMs);
  await gone;
  clearTimeout(timer);
}

export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Polls `check` until it returns true; fails with the log file named (2 cores shared by many servers: be patient). */
export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 120_000, logFile?: string) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${what} not ready after ${timeoutMs / 1000}s${logFile ? `; see ${logFile}` : ''}`);
}

/** Stops the process group recorded in a pid file (one we started earlier), if it is still running. */
export function stopByPidFile(file: string): boolean {
  if (!fs.existsSync(file)) return false;
  const pid = Number(fs.readFileSync(file, 'utf8'));
  fs.rmSync(file, { force: true });
  try {
    process.kill(-pid, 'SIGTERM');
    return true;
  } catch {
    return false;
  }
}
