import { Client, Connection } from '@temporalio/client';
import { temporalEnv } from '../../workers/config.js';

/** A Temporal client from the standard TEMPORAL_* environment variables. */
export async function connectClient(): Promise<{ client: Client; close: () => Promise<void> }> {
  const env = temporalEnv();
  const connection = await Connection.connect(env.connection);
  return { client: new Client({ connection, namespace: env.namespace }), close: () => connection.close() };
}
