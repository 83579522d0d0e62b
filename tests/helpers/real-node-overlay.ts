/**
 * A kustomize overlay on top of k8s/overlays/dev for the real node of the test control plane. It adds only
 * what this cluster lacks compared with a real one, each for a stated reason:
 *
 * - no cluster DNS and no Service proxy: the names the dev overlay uses (`temporal-dev.tao`) and the API
 *   server's (`kubernetes.default.svc`) are host aliases for the node's bridge address, where the test
 *   forwards the loopback-only Temporal dev server and kube-apiserver (RealNode.forward);
 * - no ServiceAccount admission plugin (the test control plane turns it off): the projected token volume that
 *   plugin would add to the worker pod is written out (token from the TokenRequest API by the kubelet, the
 *   API server's CA from the ConfigMap `kube-root-ca.crt`, the namespace);
 * - the real node is tainted so only pods that ask for it land there: the worker and the stage pods tolerate
 *   it and select it (TAO_STAGE_NODE_SELECTOR / TAO_STAGE_TOLERATIONS);
 * - images by content hash (what scripts/k8s/build-images.sh printed) rather than `dev`, so a node's cached
 *   `dev` from an earlier build is never used;
 * - `config`: the test's own settings in the worker's ConfigMap (e.g. shorter graces, so that a failure
 *   reaches the operator within a test run), named by the test that sets them.
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { RealNode } from '../../scripts/dev/real-node.js';
import { REPO_ROOT } from '../../scripts/dev/tools.js';

export interface RealNodeOverlay {
  dir: string;
  /** The API server's serving certificate chain: the CA in the worker's kube-root-ca.crt ConfigMap. */
  caFile: string;
}

const tag = (ref: string) => ref.slice(ref.lastIndexOf(':') + 1);
const repo = (ref: string) => ref.slice(0, ref.lastIndexOf(':'));

export function writeRealNodeOverlay(o: {
  dir: string;
  node: RealNode;
  images: Record<string, string>;
  temporalPort: number;
  apiPort: number;
  kubeconfigPath: string;
  config?: Record<string, string>;
}): RealNodeOverlay {
  fs.mkdirSync(o.dir, { recursive: true });
  const caFile = path.join(path.dirname(o.kubeconfigPath), 'apiserver-certs', 'apiserver.crt');
  if (!fs.existsSync(caFile)) throw new Error(`no API server certificate at ${caFile}`);
  const worker = o.images.worker!;
  const stage = o.images['jobs-cpu']!;
  const { nodeSelector, tolerations } = o.node.placement;
  const kustomization = {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    resources: [path.relative(o.dir, path.join(REPO_ROOT, 'k8s', 'overlays', 'dev'))],
    images: [{ name: repo(worker), newTag: tag(worker) }],
    configMapGenerator: [
      {
        name: 'tao-worker-config',
        behavior: 'merge',
        literals: [
          `TEMPORAL_ADDRESS=temporal-dev.tao:${o.temporalPort}`,
          `TAO_STAGE_IMAGE=${stage}`,
          `TAO_STAGE_NODE_SELECTOR=${JSON.stringify(nodeSelector)}`,
          `TAO_STAGE_TOLERATIONS=${JSON.stringify(tolerations)}`,
          ...Object.entries(o.config ?? {}).map(([k, v]) => `${k}=${v}`),
        ],
      },
    ],
    patches: [
      {
        target: { kind: 'Deployment', name: 'tao-worker' },
        patch: YAML.stringify({
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name: 'tao-worker' },
          spec: {
            template: {
              spec: {
                nodeSelector,
                tolerations,
                hostAliases: [{ ip: o.node.gateway, hostnames: ['temporal-dev.tao', 'kubernetes.default.svc'] }],
                containers: [
                  {
                    name: 'worker',
                    env: [
                      { name: 'KUBERNETES_SERVICE_HOST', value: 'kubernetes.default.svc' },
                      { name: 'KUBERNETES_SERVICE_PORT', value: String(o.apiPort) },
                    ],
                    volumeMounts: [
                      {
                        name: 'kube-api-access',
                        mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
                        readOnly: true,
                      },
                    ],
                  },
                ],
                volumes: [
                  {
                    name: 'kube-api-access',
                    projected: {
                      sources: [
                        { serviceAccountToken: { path: 'token', expirationSeconds: 3607 } },
                        { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
                        {
                          downwardAPI: {
                            items: [{ path: 'namespace', fieldRef: { fieldPath: 'metadata.namespace' } }],
                          },
                        },
                      ],
                    },
                  },
                ],
              },
            },
          },
        }),
      },
    ],
  };
  fs.writeFileSync(path.join(o.dir, 'kustomization.yaml'), YAML.stringify(kustomization));
  return { dir: o.dir, caFile };
}
