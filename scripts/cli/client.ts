import { Client, Connection } from '@temporalio/client';
import { dataConverterFromEnv } from '../../workers/codec.js';
import { temporalEnv } from '../../workers/config.js';

/**
 * A Temporal client from Temporal's own connection settings (profile file and TEMPORAL_* variables; workers/config.ts), with the payload codec when
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

/** Runs `body` with a connected client and closes the connection afterwards, whether `body` succeeds or throws. */
export async function withClient<T>(body: (client: Client) => Promise<T>): Promise<T> {
  const { client, close } = await connectClient();
  try {
    return await body(client);
  } finally {
    await close();
  }
}
