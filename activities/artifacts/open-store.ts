import type { RunSpec } from '../../common/run-spec.js';
import { FileStore } from './file-store.js';
import { S3Store } from './s3-store.js';
import { StoreError, type ArtifactStore } from './store.js';

/** Routes each URI to its backend; one S3 client per distinct endpoint configuration. */
export class RoutingStore implements ArtifactStore {
  private readonly file = new FileStore();
  private readonly s3 = new Map<string, S3Store>();

  constructor(private readonly s3Options: RunSpec['artifacts']['s3'] = undefined) {}

  private pick(uri: string): ArtifactStore {
    if (uri.startsWith('file:///')) return this.file;
    if (uri.startsWith('s3://')) {
      const k = JSON.stringify(this.s3Options ?? {});
      let store = this.s3.get(k);
      if (!store) this.s3.set(k, (store = new S3Store(this.s3Options ?? {})));
      return store;
    }
    throw new StoreError('Invalid', `${uri}: unsupported scheme (file:/// or s3:// expected)`);
  }

  get = (uri: string) => this.pick(uri).get(uri);
  head = (uri: string) => this.pick(uri).head(uri);
  put: ArtifactStore['put'] = (uri, body, options) => this.pick(uri).put(uri, body, options);
  putStream: ArtifactStore['putStream'] = (uri, body) => this.pick(uri).putStream(uri, body);
  list = (prefix: string) => this.pick(prefix).list(prefix);
  delete = (uri: string) => this.pick(uri).delete(uri);
  sha256 = (uri: string) => this.pick(uri).sha256(uri);
}

export function openStore(artifacts: Pick<RunSpec['artifacts'], 's3'>): ArtifactStore {
  return new RoutingStore(artifacts.s3);
}
