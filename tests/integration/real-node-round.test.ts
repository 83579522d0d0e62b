/**
 * The worker in the cluster, on a real node: the commands of docs/kubernetes.md's tutorial, run as a platform
 * engineer would (kubectl and kustomize built from Go modules, the temporal CLI). Images from
 * scripts/k8s/build-images.sh in the local registry; `kustomize build k8s/overlays/dev | kubectl apply -f -`
 * through a small overlay on top that only says what this test cluster lacks (tests/helpers/real-node-overlay.ts:
 * no cluster DNS, no Service proxy, no ServiceAccount admission); the worker Deployment's pod runs on the
 * kubelet with its ServiceAccount's token and reaches the Temporal dev server on the host; a round started
 * with `temporal workflow start --input-file` runs every stage as a real pod and promotes the tuned model;
 * then the worker pod is deleted mid-train and its replacement adopts the running Job.
 */
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { REPO_ROOT, venvBin } from '../../scripts/dev/tools.js';
import { adminKubeConfig } from '../helpers/k8s.js';
import { useRealNode } from '../helpers/real-node.js';
import { testClient } from '../helpers/temporal.js';
import { writeRealNodeOverlay } from '../helpers/real-node-overlay.js';

const run = promisify(execFile);
const real = useRealNode(['worker', 'jobs-cpu'], { workloadControllers: true });
const work = path.resolve('test-output', `real-node-round-${randomUUID().slice(0, 8)}`);
let kc: KubeConfig;
let core: CoreV1Api;
let env: NodeJS.ProcessEnv;
let tools: { kubectl: string; kustomize: string };

/** One command line of the tutorial, as a shell would run it; returns stdout. */
async function sh(line: string, timeoutMs = 10 * 60_000): Promise<string> {
  try {
    const { stdout } = await run('bash', ['-o', 'pipefail', '-c', line], {
      env,
      cwd: REPO_ROOT,
      maxBuffer: 64 << 20,
      timeout: timeoutMs,
    });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${line}\n${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`);
  }
}

async function until(what: string, check: () => Promise<boolean>, ms: number) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** The stage pods of one round (by the workflow id annotation the executor puts on them). */
const stagePods = async (workflowId: string): Promise<V1Pod[]> =>
  (
    await core.listNamespacedPod({ namespace: 'tao', labelSelector: 'app.kubernetes.io/managed-by=tao-worker' })
  ).items.filter((p) => p.metadata?.annotations?.['tao.dev/workflow-id'] === workflowId);

let gateway = '';
let s3Port = 0;
/**
 * Starts a round of the demo spec with `temporal workflow start --input-file`: the prompts (every `every`-th
 * line of the demo's) and the artifacts in the test's S3 store, reached by the pods through the node's bridge.
 */
async function startRound(name: string, every: number): Promise<{ workflowId: string }> {
  const s3 = inject('s3Env');
  const bucket = inject('s3Bucket');
  const prefix = `${name}-${randomUUID().slice(0, 8)}`;
  const spec = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'examples/demo/round.json'), 'utf8'));
  spec.name = prefix;
  spec.prompts.uri = `s3://${bucket}/${prefix}/prompts.jsonl`;
  spec.training.epochs = 6;
  // half the demo's prompts leave 14 held out: the mean paired improvement decides (the demo's ciLower rule
  // needs more held-out prompts to clear 0 on the tiny model)
  spec.gate = { rule: 'mean', minImprovement: 0, promote: true };
  spec.executor = { type: 'kubernetes', resources: {}, heartbeatTimeoutSeconds: 20 };
  spec.artifacts = {
    uri: `s3://${bucket}/${prefix}/artifacts`,
    s3: { endpoint: `http://${gateway}:${s3Port}`, forcePathStyle: true, region: 'us-east-1' },
  };
  const lines = fs.readFileSync(path.join(REPO_ROOT, 'examples/demo/prompts.jsonl'), 'utf8').trim().split('\n');
  const promptsFile = path.join(work, `${prefix}-prompts.jsonl`);
  fs.writeFileSync(promptsFile, lines.filter((_, i) => i % every === 0).join('\n') + '\n');
  await new S3Client({
    endpoint: inject('s3Endpoint'),
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: s3.AWS_ACCESS_KEY_ID!, secretAccessKey: s3.AWS_SECRET_ACCESS_KEY! },
  }).send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}/prompts.jsonl`, Body: fs.readFileSync(promptsFile) }));
  const specFile = path.join(work, `${prefix}.json`);
  fs.writeFileSync(specFile, JSON.stringify(spec, null, 2));
  const workflowId = `tao/${prefix}/round-1`;
  await sh(
    `temporal workflow start --address ${inject('temporalAddress')} --type taoRound --task-queue tao ` +
      `--workflow-id ${workflowId} --input-file ${specFile}`,
  );
  return { workflowId };
}

beforeAll(async () => {
  kc = adminKubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  const { stdout: kubelet } = await run('bash', [path.join(REPO_ROOT, 'scripts/k8s/build-kubelet.sh')]);
  const { stdout: kustomize } = await run('bash', [path.join(REPO_ROOT, 'scripts/k8s/build-kustomize.sh')]);
  tools = {
    kubectl: path.join(path.dirname(kubelet.trim().split('\n').at(-1)!), 'kubectl'),
    kustomize: kustomize.trim().split('\n').at(-1)!,
  };
  env = {
    ...process.env,
    KUBECONFIG: inject('k8sKubeconfig'),
    PATH: [
      path.dirname(tools.kubectl),
      path.dirname(tools.kustomize),
      path.dirname(venvBin('temporal')),
      process.env.PATH,
    ].join(':'),
  };
  fs.mkdirSync(work, { recursive: true });
  // a namespace left by an interrupted run: the tutorial starts from none
  await core.deleteNamespace({ name: 'tao' }).catch(() => undefined);
  await until(
    'an old namespace tao to be gone',
    async () =>
      !(await core.readNamespace({ name: 'tao' }).then(
        () => true,
        () => false,
      )),
    180_000,
  );
  // the stage image is large (PyPI's torch): pulled into the node's containerd once, before any pod needs it
  const { node, images } = real();
  await node.ctr(['images', 'pull', '--plain-http', images['jobs-cpu']!]);
}, 30 * 60_000);

afterAll(async () => {
  // the tutorial's namespace goes with everything in it (the worker, its ReplicaSet, stage Jobs and pods)
  await core.deleteNamespace({ name: 'tao' }).catch(() => undefined);
  await until(
    'namespace tao to be gone',
    async () =>
      !(await core.readNamespace({ name: 'tao' }).then(
        () => true,
        () => false,
      )),
    180_000,
  ).catch(() => undefined);
}, 240_000);

describe('the worker Deployment on a real node runs a round from `temporal workflow start`', () => {
  it('applies the dev overlay, starts the worker in the cluster, survives losing the worker pod mid-train, runs every stage as a real pod and promotes the model', async () => {
    const { node, images } = real();
    const s3 = inject('s3Env');
    gateway = node.gateway;
    s3Port = await node.forward(Number(new URL(inject('s3Endpoint')).port));
    const temporalPort = await node.forward(Number(inject('temporalAddress').split(':').at(-1)));
    const apiPort = await node.forward(Number(new URL(inject('k8sServer')).port));
    const overlay = writeRealNodeOverlay({
      dir: path.join(work, 'overlay'),
      node,
      images,
      temporalPort,
      apiPort,
      kubeconfigPath: inject('k8sKubeconfig'),
    });

    // the tutorial: namespace, the store's credentials as a Secret, the overlay, the rollout
    await sh('kubectl create namespace tao');
    await sh(
      `kubectl -n tao create secret generic tao-store --from-literal=AWS_ACCESS_KEY_ID=${s3.AWS_ACCESS_KEY_ID} ` +
        `--from-literal=AWS_SECRET_ACCESS_KEY=${s3.AWS_SECRET_ACCESS_KEY} --from-literal=AWS_REGION=us-east-1`,
    );
    await sh(`kubectl -n tao create configmap kube-root-ca.crt --from-file=ca.crt=${overlay.caFile}`);
    await sh(`kustomize build ${overlay.dir} | kubectl apply -f -`);
    await sh('kubectl -n tao rollout status deployment/tao-worker --timeout=600s', 11 * 60_000);
    const [worker] = (
      await core.listNamespacedPod({ namespace: 'tao', labelSelector: 'app.kubernetes.io/name=tao-worker' })
    ).items;
    expect(worker?.spec?.nodeName).toBe(node.name);
    expect(worker?.spec?.serviceAccountName).toBe('tao-worker');

    // a round, started with the temporal CLI from a spec file; artifacts in the test's S3 store, which pods reach
    // through the node's bridge
    const { workflowId } = await startRound('round', 2);
    const address = inject('temporalAddress');

    // mid-train, the worker pod is deleted: the Deployment replaces it and the replacement adopts the train Job
    const { client, close } = await testClient();
    try {
      const handle = client.workflow.getHandle(workflowId);
      await until(
        'the train pod to run',
        async () =>
          (await handle.describe().then((d) => {
            if (d.status.name !== 'RUNNING')
              throw new Error(`round ${workflowId} is ${d.status.name} before train ran`);
            return true;
          })) &&
          (await stagePods(workflowId)).some(
            (p) => p.metadata?.labels?.['tao.dev/stage'] === 'train' && p.status?.phase === 'Running',
          ),
        20 * 60_000,
      );
    } finally {
      await close();
    }
    await sh('kubectl -n tao delete pod -l app.kubernetes.io/name=tao-worker --wait=false');
    await until(
      'a replacement worker pod to run',
      async () =>
        (
          await core.listNamespacedPod({ namespace: 'tao', labelSelector: 'app.kubernetes.io/name=tao-worker' })
        ).items.some((p) => p.metadata?.uid !== worker?.metadata?.uid && p.status?.phase === 'Running'),
      5 * 60_000,
    );

    const result = JSON.parse(
      await sh(`temporal workflow result --address ${address} --workflow-id ${workflowId} --output json`, 30 * 60_000),
    );
    const value = result.result ?? result;
    expect(value).toMatchObject({ promoted: true, gate: { passed: true } });
    expect(value.registryPointer).toMatch(/^s3:\/\//);

    // every stage ran as a real pod on the node, and succeeded; train once: adopted, not run again
    const pods = await stagePods(workflowId);
    const stages = pods.map((p) => p.metadata?.labels?.['tao.dev/stage']).sort();
    expect(stages).toEqual(['dataset', 'evaluate', 'generate', 'generate', 'prepare', 'score', 'score', 'train']);
    for (const p of pods) {
      expect(p.spec?.nodeName).toBe(node.name);
      expect(p.status?.phase).toBe('Succeeded');
    }
  });
});
