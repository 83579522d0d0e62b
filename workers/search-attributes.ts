/**
 * Registers the rounds' search attributes in a namespace when they are missing. Without them, the first
 * upsert in a workflow would fail its workflow task over and over, so the worker checks at start-up.
 */
import type { Connection } from '@temporalio/client';
import proto from '@temporalio/proto'; // CommonJS: no named ESM exports
import { SEARCH_ATTRIBUTE_TYPES } from '../common/search-attributes.js';

const { IndexedValueType } = proto.temporal.api.enums.v1;

export async function ensureSearchAttributes(connection: Connection, namespace: string): Promise<string[]> {
  const existing = await connection.operatorService.listSearchAttributes({ namespace });
  const have = new Set(Object.keys(existing.customAttributes ?? {}));
  const missing = Object.entries(SEARCH_ATTRIBUTE_TYPES).filter(([name]) => !have.has(name));
  if (missing.length === 0) return [];
  try {
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(
        missing.map(([name, type]) => [
          name,
          type === 'Int' ? IndexedValueType.INDEXED_VALUE_TYPE_INT : IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        ]),
      ),
    });
  } catch (e) {
    const cmd = missing
      .map(([n, t]) => `temporal operator search-attribute create --namespace ${namespace} --name ${n} --type ${t}`)
      .join('\n  ');
    throw new Error(
      `search attributes ${missing.map(([n]) => n).join(', ')} are missing in namespace ${namespace} and could not be registered (${(e as Error).message}); register them:\n  ${cmd}`,
    );
  }
  return missing.map(([n]) => n);
}
