import { Client, Connection } from '@temporalio/client';
import { dataConverterFromEnv } from '../../workers/codec.js';
import { temporalEnv } from '../../workers/config.js';

/**
 * A Temporal client from the standard TEMPORAL_* environment variables, with the payload codec when
 * TAO_CODEC_KEY / TAO_CODEC_KEY_FILE is set (workers/codec.ts).
 */
export async function connectClient(): Promise<{ client: Client; close: () => Promise<void> }> {
  const env = temporalEnv();
  const dataConverter = dataConverterFromEnv(); // a bad key fails here, before connecting
  const connection = await Connection.connect(env.connection);
  return {
    client: new Client({ connection, namespace: env.namespace, dataConverter }),
    close: () => connection.close(),
  };
}
