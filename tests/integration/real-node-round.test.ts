/**
 * The worker in the cluster, on a real node: the commands of docs/kubernetes.md's tutorial, run as a platform
 * engineer would (kubectl and kustomize built from Go modules, the temporal CLI with TEMPORAL_ADDRESS set, a
 * Chromium for the Web UI). Images from scripts/k8s/build-images.sh in the local registry;
 * `kustomize build k8s/overlays/dev | kubectl apply -f -` through a small overlay on top that only says what
 * this test cluster lacks (tests/helpers/real-node-overlay.ts: no cluster DNS, no Service proxy, no
 * ServiceAccount admission) plus the test's own settings (shorter graces, a train image tag not pushed yet);
 * the worker Deployment's pod runs on the kubelet with its ServiceAccount's token and reaches the Temporal dev
 * server on the host. A round started with `temporal workflow start --input-file` runs every stage as a real
 * pod; its train stage fails for real (the kubelet cannot pull the image) and waits at the operator desk, seen
 * in the Web UI; once the image is pushed, `retryStage` resumes it without redoing a finished stage; the
 * worker pod deleted mid-train is replaced and the replacement adopts the running Job; the tuned model is
 * promoted. Then, with the same worker: a stage no node can hold goes to the operator desk as
 * StageUnschedulable, and cancelling a round kills its running pod.
 */
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  BatchV1Api,
  CoreV1Api,
  Watch,
  type KubeConfig,
  type V1ContainerStateTerminated,
  type V1Pod,
} from '@kubernetes/client-node';
import type { WorkflowHandle } from '@temporalio/client';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RoundProgress } from '../../common/types.js';
import { REPO_ROOT, venvBin } from '../../scripts/dev/tools.js';
import { progressQuery } from '../../workflows/messages.js';
import { adminKubeConfig } from '../helpers/k8s.js';
import { useRealNode } from '../helpers/real-node.js';
import { testClient } from '../helpers/temporal.js';
import { writeRealNodeOverlay } from '../helpers/real-node-overlay.js';
import { launchChromium, untilTabShows } from '../helpers/web-ui.js';

const run = promisify(execFile);
const real = useRealNode(['worker', 'jobs-cpu'], { workloadControllers: true });
const work = path.resolve('test-output', `real-node-round-${randomUUID().slice(0, 8)}`);
const shots = path.resolve('test-output', 'screenshots');
let kc: KubeConfig;
let core: CoreV1Api;
let batch: BatchV1Api;
let env: NodeJS.ProcessEnv;
let tools: { kubectl: string; kustomize: string };
let browser: Browser | undefined;
/** Set by the first test once the worker Deployment runs; the later tests use that worker. */
let workerDeployed = false;

/** The train image the worker is configured with before it is pushed: its tag is missing from the registry. */
const trainTag = `train-${randomUUID().slice(0, 8)}`;
/**
 * The test's own settings for the worker (besides what the cluster lacks, see real-node-overlay.ts): the train
 * stage's image, not pushed yet, and graces short enough for a failure to reach the operator desk in a test
 * run (the defaults are minutes to an hour).
 */
const testConfig = (stageImage: string) => ({
  TAO_STAGE_IMAGE_TRAIN: `${stageImage.slice(0, stageImage.lastIndexOf(':'))}:${trainTag}`,
  TAO_IMAGE_PULL_GRACE_SECONDS: '20',
  TAO_PENDING_GRACE_SECONDS: '5',
  TAO_PENDING_TIMEOUT_SECONDS: '20',
});

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
const stageJobs = async (workflowId: string) =>
  (
    await batch.listNamespacedJob({ namespace: 'tao', labelSelector: 'app.kubernetes.io/managed-by=tao-worker' })
  ).items.filter((j) => j.metadata?.annotations?.['tao.dev/workflow-id'] === workflowId);
const stageOf = (p: V1Pod) => p.metadata?.labels?.['tao.dev/stage'];

/** Waits for the round's progress to satisfy `check`; fails at once when the round closes first. */
async function untilProgress(
  handle: WorkflowHandle,
  what: string,
  check: (p: RoundProgress) => boolean,
  ms: number,
): Promise<RoundProgress> {
  let last: RoundProgress | undefined;
  await until(
    what,
    async () => {
      const d = await handle.describe();
      if (d.status.name !== 'RUNNING') throw new Error(`round ${handle.workflowId} is ${d.status.name}: ${what}`);
      last = await handle.query(progressQuery);
      return check(last);
    },
    ms,
  );
  return last!;
}

function s3Client() {
  const s3 = inject('s3Env');
  return new S3Client({
    endpoint: inject('s3Endpoint'),
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: s3.AWS_ACCESS_KEY_ID!, secretAccessKey: s3.AWS_SECRET_ACCESS_KEY! },
  });
}

/**
 * `docker push` of an image the registry already holds under another tag: the image's manifest put under the
 * new tag through the registry's HTTP API (every layer is there already).
 */
async function pushTag(ref: string, tag: string) {
  const [host, ...rest] = ref.split('/');
  const [repo, from] = rest.join('/').split(':') as [string, string];
  const accept = [
    'application/vnd.docker.distribution.manifest.v2+json',
    'application/vnd.docker.distribution.manifest.list.v2+json',
    'application/vnd.oci.image.manifest.v1+json',
    'application/vnd.oci.image.index.v1+json',
  ].join(', ');
  const got = await fetch(`http://${host}/v2/${repo}/manifests/${from}`, { headers: { accept } });
  if (!got.ok) throw new Error(`registry: GET manifest ${ref}: ${got.status}`);
  const put = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'content-type': got.headers.get('content-type')! },
    body: Buffer.from(await got.arrayBuffer()),
  });
  if (!put.ok) throw new Error(`registry: PUT manifest ${repo}:${tag}: ${put.status} ${await put.text()}`);
}

/** Every container state of one pod as the kubelet reports it, through a watch (a deleted pod's last too). */
function watchPod(name: string) {
  const states: { terminated?: V1ContainerStateTerminated; deleting: boolean }[] = [];
  let req: { abort(): void } | undefined;
  const started = new Watch(kc)
    .watch(
      '/api/v1/namespaces/tao/pods',
      { fieldSelector: `metadata.name=${name}` },
      (_type: string, pod: V1Pod) =>
        states.push({
          terminated: pod.status?.containerStatuses?.[0]?.state?.terminated,
          deleting: !!pod.metadata?.deletionTimestamp,
        }),
      () => undefined,
    )
    .then((r) => (req = r));
  return { states, stop: async () => (await started, req?.abort()) };
}

/** The pod (by name) of each container running on the node, as containerd labels it. */
async function runningPodContainers(): Promise<{ id: string; pod: string }[]> {
  const { node } = real();
  const out: { id: string; pod: string }[] = [];
  for (const id of await node.runningContainers()) {
    const info = JSON.parse(await node.ctr(['containers', 'info', id]).catch(() => '{}')) as {
      Labels?: Record<string, string>;
    };
    out.push({ id, pod: info.Labels?.['io.kubernetes.pod.name'] ?? '' });
  }
  return out;
}

let gateway = '';
let s3Port = 0;
/**
 * Starts a round of the demo spec with the tutorial's `temporal workflow start --input-file`: the prompts (every
 * `every`-th line of the demo's) and the artifacts in the test's S3 store, reached by the pods through the
 * node's bridge; `adapt` changes the spec further.
 */
async function startRound(
  name: string,
  every: number,
  adapt: (spec: Record<string, any>) => void = () => undefined, // eslint-disable-line @typescript-eslint/no-explicit-any
): Promise<{ workflowId: string; prefix: string }> {
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
  adapt(spec);
  const lines = fs.readFileSync(path.join(REPO_ROOT, 'examples/demo/prompts.jsonl'), 'utf8').trim().split('\n');
  const promptsFile = path.join(work, `${prefix}-prompts.jsonl`);
  fs.writeFileSync(promptsFile, lines.filter((_, i) => i % every === 0).join('\n') + '\n');
  await s3Client().send(
    new PutObjectCommand({ Bucket: bucket, Key: `${prefix}/prompts.jsonl`, Body: fs.readFileSync(promptsFile) }),
  );
  const specFile = path.join(work, `${prefix}.json`);
  fs.writeFileSync(specFile, JSON.stringify(spec, null, 2));
  const workflowId = `tao/${prefix}/round-1`;
  await sh(
    `temporal workflow start --type taoRound --task-queue tao --workflow-id ${workflowId} --input-file ${specFile}`,
  );
  return { workflowId, prefix };
}

beforeAll(async () => {
  kc = adminKubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  batch = kc.makeApiClient(BatchV1Api);
  const { stdout: kubelet } = await run('bash', [path.join(REPO_ROOT, 'scripts/k8s/build-kubelet.sh')]);
  const { stdout: kustomize } = await run('bash', [path.join(REPO_ROOT, 'scripts/k8s/build-kustomize.sh')]);
  tools = {
    kubectl: path.join(path.dirname(kubelet.trim().split('\n').at(-1)!), 'kubectl'),
    kustomize: kustomize.trim().split('\n').at(-1)!,
  };
  env = {
    ...process.env,
    KUBECONFIG: inject('k8sKubeconfig'),
    // the temporal CLI's own variable: the tutorial's commands stay as written
    TEMPORAL_ADDRESS: inject('temporalAddress'),
    PATH: [
      path.dirname(tools.kubectl),
      path.dirname(tools.kustomize),
      path.dirname(venvBin('temporal')),
      process.env.PATH,
    ].join(':'),
  };
  fs.mkdirSync(work, { recursive: true });
  fs.mkdirSync(shots, { recursive: true });
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

/** Resumes a container the test froze (a frozen container would outlive the namespace's deletion). */
let thaw: () => Promise<unknown> = async () => undefined;

afterAll(async () => {
  await thaw().catch(() => undefined);
  await browser?.close();
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

describe('the worker Deployment on a real node runs rounds started with the temporal CLI (docs/kubernetes.md)', () => {
  it('applies the dev overlay, runs every stage as a real pod, waits at the operator desk when train fails (seen in the Web UI), resumes with retryStage without redoing finished stages, survives losing the worker pod mid-train and promotes the model', async () => {
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
      config: testConfig(images['jobs-cpu']!),
    });

    // 2. the store's credentials as a Secret; 3. the overlay, the rollout
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
    workerDeployed = true;

    // 4. a round, started with the temporal CLI from a spec file; artifacts in the test's S3 store, which pods
    // reach through the node's bridge
    const { workflowId } = await startRound('round', 2);
    let finished: V1Pod[] = [];
    let resumedAt = 0;
    const { client, close } = await testClient();
    try {
      const handle = client.workflow.getHandle(workflowId);

      // 6. a stage fails: the train image was never pushed, the kubelet cannot pull it, and after the grace the
      // stage waits at the operator desk as InvalidImage
      const failed = await untilProgress(
        handle,
        'train to wait at the operator desk',
        (p) => p.waiting.some((w) => w.stage === 'train'),
        25 * 60_000,
      );
      expect(failed.waiting).toEqual([
        expect.objectContaining({ stage: 'train', type: 'InvalidImage', reason: expect.stringContaining(trainTag) }),
      ]);
      expect(failed.waiting[0]!.reason).toMatch(/^(ImagePullBackOff|ErrImagePull): /);
      const progress = await sh(`temporal workflow query --workflow-id ${workflowId} --type progress`);
      expect(progress).toContain('InvalidImage');
      // the stuck Job was deleted with its pod; every stage before train ran once, as a pod that succeeded
      await until(
        'the failed train Job and its pod to be gone',
        async () =>
          !(await stageJobs(workflowId)).some((j) => j.metadata?.labels?.['tao.dev/stage'] === 'train') &&
          !(await stagePods(workflowId)).some((p) => stageOf(p) === 'train'),
        120_000,
      );
      finished = await stagePods(workflowId);
      expect(finished.map(stageOf).sort()).toEqual(['dataset', 'generate', 'generate', 'prepare', 'score', 'score']);
      expect(finished.every((p) => p.status?.phase === 'Succeeded')).toBe(true);

      // 5. watch it in the Web UI: the tutorial's URL opens the round, running, its details naming the failure
      browser = await launchChromium();
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      await page.goto(`${inject('temporalUi')}/namespaces/default/workflows/${encodeURIComponent(workflowId)}`);
      await page.locator('[data-testid="execution-status"]').first().waitFor({ timeout: 60_000 });
      await expect.poll(() => page.locator('[data-testid="execution-status"]').first().innerText()).toMatch(/running/i);
      await page.locator('[data-testid="user-metadata-tab"]').first().click();
      const details = page.frameLocator('iframe').first().locator('body');
      await expect.poll(() => details.innerText(), { timeout: 30_000 }).toContain('train failed: InvalidImage');
      await page.screenshot({ path: path.join(shots, 'real-node-1-train-waiting.png'), fullPage: true });

      // the fix: push the image; then resume with the tutorial's command
      await pushTag(images['jobs-cpu']!, trainTag);
      resumedAt = Date.now();
      const update = await sh(
        `temporal workflow update execute --workflow-id ${workflowId} --name retryStage --input '{"stage":"train"}'`,
      );
      expect(update).toContain('train');

      await until(
        'the train pod to run',
        async () => (await stagePods(workflowId)).some((p) => stageOf(p) === 'train' && p.status?.phase === 'Running'),
        10 * 60_000,
      );
      const trainJob = (await stageJobs(workflowId)).find((j) => j.metadata?.labels?.['tao.dev/stage'] === 'train')!;
      // The train container is frozen (containerd's cgroup freezer) until the replacement worker has adopted its
      // Job: on a quiet machine the ~12 s train would finish before a replacement starts, and the retry would
      // then publish the finished Job rather than adopt a running one (correct, but not what this step proves).
      const trainPod = (await stagePods(workflowId)).find((p) => stageOf(p) === 'train')!;
      const trainContainer = trainPod.status!.containerStatuses![0]!.containerID!.replace(/^containerd:\/\//, '');
      await real().node.ctr(['tasks', 'pause', trainContainer]);
      thaw = () => real().node.ctr(['tasks', 'resume', trainContainer]);
      // 5. the pending activity (pending until the replacement has adopted the Job and the pod has finished): its
      // heartbeat details name the Job, in `temporal workflow describe` and in the Web UI
      await until(
        'the describe output to show the train Job in the pending activity',
        async () => {
          const describe = await sh(`temporal workflow describe --workflow-id ${workflowId}`);
          return /Pending Activities: 1/.test(describe) && describe.includes(`"jobName":"${trainJob.metadata!.name!}"`);
        },
        60_000,
      );
      await untilTabShows(page, 'pending-activities-tab', trainJob.metadata!.name!, { screenshotDir: shots });
      await page.screenshot({ path: path.join(shots, 'real-node-2-train-running.png'), fullPage: true });
      await page.close();
      // 6. mid-train, the worker pod is deleted: the Deployment replaces it, the replacement adopts the train Job
      await sh('kubectl -n tao delete pod -l app.kubernetes.io/name=tao-worker --wait=false');
    } finally {
      await close();
    }

    await until(
      'a replacement worker pod to run',
      async () =>
        (
          await core.listNamespacedPod({ namespace: 'tao', labelSelector: 'app.kubernetes.io/name=tao-worker' })
        ).items.some((p) => p.metadata?.uid !== worker?.metadata?.uid && p.status?.phase === 'Running'),
      5 * 60_000,
    );
    // adopted: a later attempt (the replacement's) heartbeats while it watches the frozen Job, naming its own log
    await until(
      "the replacement's attempt to watch the train Job",
      async () =>
        /logs\/attempt-([2-9]|\d\d+)\.log/.test(await sh(`temporal workflow describe --workflow-id ${workflowId}`)),
      5 * 60_000,
    );
    await thaw();
    thaw = async () => undefined;

    const result = JSON.parse(
      await sh(`temporal workflow result --workflow-id ${workflowId} --output json`, 30 * 60_000),
    );
    const value = result.result ?? result;
    expect(value).toMatchObject({ promoted: true, gate: { passed: true } });
    expect(value.registryPointer).toMatch(/^s3:\/\//);

    // every stage ran as a real pod on the node, and succeeded, once: the stages finished before the failure
    // were not redone (the same pods), train ran once after the retry (adopted, not run again)
    const pods = await stagePods(workflowId);
    const stages = pods.map(stageOf).sort();
    expect(stages).toEqual(['dataset', 'evaluate', 'generate', 'generate', 'prepare', 'score', 'score', 'train']);
    for (const p of pods) {
      expect(p.spec?.nodeName).toBe(node.name);
      expect(p.status?.phase).toBe('Succeeded');
    }
    // 4. the tutorial's look at the Jobs and pods of the round
    const listing = await sh('kubectl -n tao get jobs,pods -l app.kubernetes.io/managed-by=tao-worker');
    for (const p of pods) expect(listing).toMatch(new RegExp(`^pod/${p.metadata!.name!}\\s+0/1\\s+Completed`, 'm'));
    const uids = (ps: V1Pod[]) =>
      ps.filter((p) => !['train', 'evaluate'].includes(stageOf(p)!)).map((p) => p.metadata?.uid);
    expect(uids(pods).sort()).toEqual(uids(finished).sort());
    const train = pods.find((p) => stageOf(p) === 'train')!;
    expect(new Date(train.metadata!.creationTimestamp!).getTime()).toBeGreaterThanOrEqual(resumedAt - 1000);
    // the train pod's log went through the apiserver's pods/log into the stage's log in the store
    const logUri = new URL(
      (await stageJobs(workflowId)).find((j) => j.metadata?.labels?.['tao.dev/stage'] === 'train')!.metadata!
        .annotations!['tao.dev/log-uri']!,
    );
    const log = await (
      await s3Client().send(new GetObjectCommand({ Bucket: logUri.host, Key: logUri.pathname.slice(1) }))
    ).Body!.transformToString();
    expect(log).toMatch(/^--- pod .+ ---$/m);
    const events = log.split('\n').flatMap((l) => {
      try {
        return [JSON.parse(l) as { event?: string; stage?: string }];
      } catch {
        return [];
      }
    });
    expect(events.some((e) => e.event === 'progress' && e.stage === 'train')).toBe(true);
    // the replacement worker ran a later activity attempt against the same Job (one train pod) and named its own
    // log on the Job (which attempt depends on how the deleted worker's attempt ended: cancelled, or timed out)
    expect(logUri.pathname).toMatch(/\/logs\/attempt-([2-9]|\d\d+)\.log$/);
    expect(log).toContain(`--- pod ${train.metadata!.name!} ---`);
  });

  it('a stage that no node can hold goes to the operator desk as StageUnschedulable with the scheduler’s reason, its Job deleted; abort ends the round', async () => {
    expect(workerDeployed).toBe(true);
    const { workflowId } = await startRound('unschedulable', 4, (spec) => {
      spec.executor.resources = { prepare: { memory: '1Ti' } };
    });
    const { client, close } = await testClient();
    try {
      const handle = client.workflow.getHandle(workflowId);
      const p = await untilProgress(
        handle,
        'prepare to wait at the operator desk',
        (q) => q.waiting.some((w) => w.stage === 'prepare'),
        5 * 60_000,
      );
      expect(p.waiting[0]).toMatchObject({ stage: 'prepare', type: 'StageUnschedulable' });
      expect(p.waiting[0]!.reason).toMatch(
        /^Pending for \d+ min: Unschedulable: 0\/\d+ nodes are available: .*Insufficient memory/,
      );
      // nothing holds a place in the queue while the operator decides
      await until(
        'the Pending Job and its pod to be deleted',
        async () => (await stageJobs(workflowId)).length === 0 && (await stagePods(workflowId)).length === 0,
        60_000,
      );
      await sh(
        `temporal workflow update execute --workflow-id ${workflowId} --name abort --input '{"reason":"no node has 1Ti"}'`,
      );
      await expect(handle.result()).rejects.toMatchObject({ cause: { message: 'no node has 1Ti' } });
    } finally {
      await close();
    }
  });

  it('cancelling a round (temporal workflow cancel) deletes its running Job: the pod is stopped by the kubelet, no container left', async () => {
    expect(workerDeployed).toBe(true);
    // a generate stage that takes minutes: the cancel reaches it while it runs
    const { workflowId } = await startRound('cancel', 2, (spec) => {
      spec.generation = { ...spec.generation, samplesPerPrompt: 256, maxTokens: 300, shards: 1 };
      spec.executor.heartbeatTimeoutSeconds = 10;
    });
    const { client, close } = await testClient();
    try {
      const handle = client.workflow.getHandle(workflowId);
      let pod: V1Pod | undefined;
      await until(
        'the generate container to run',
        async () => {
          pod = (await stagePods(workflowId)).find(
            (p) => stageOf(p) === 'generate' && !!p.status?.containerStatuses?.[0]?.state?.running,
          );
          return !!pod;
        },
        10 * 60_000,
      );
      const name = pod!.metadata!.name!;
      const watch = watchPod(name);
      await until(
        'containerd to show the pod running',
        async () => (await runningPodContainers()).some((c) => c.pod === name),
        60_000,
      );
      await sh(`temporal workflow cancel --workflow-id ${workflowId}`);
      await expect(handle.result()).rejects.toThrow();
      expect((await handle.describe()).status.name).toBe('CANCELLED');
      await until(
        'the Job and its pod to be gone',
        async () =>
          !(await stageJobs(workflowId)).some((j) => j.metadata?.labels?.['tao.dev/stage'] === 'generate') &&
          !(await stagePods(workflowId)).some((p) => stageOf(p) === 'generate'),
        3 * 60_000,
      );
      await until(
        'no container of the pod left running',
        async () => !(await runningPodContainers()).some((c) => c.pod === name),
        60_000,
      );
      await watch.stop();
      // the kubelet's last word on the container: it was stopped while deleting, not completed
      expect(watch.states.some((s) => s.deleting)).toBe(true);
      const last = watch.states.filter((s) => s.terminated).at(-1)?.terminated;
      expect(last).toBeDefined();
      expect(last!.reason).not.toBe('Completed');
      expect(last!.exitCode).not.toBe(0);
    } finally {
      await close();
    }
  });
});
