/**
 * The local node harness (tests/helpers/k8s-local-node.ts) against the shared control plane: pods scheduled on
 * it really run as local processes, through the real scheduler and job controller, and their logs come back
 * through the apiserver from the harness's /containerLogs endpoint.
 */
import { BatchV1Api, CoreV1Api, Log, type V1Job, type V1Pod, type V1PodSpec } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startLocalNode, type LocalNode } from '../helpers/k8s-local-node.js';
import { adminKubeConfig } from '../helpers/k8s.js';
import { alive } from '../helpers/process.js';

const kc = adminKubeConfig();
const core = kc.makeApiClient(CoreV1Api);
const batch = kc.makeApiClient(BatchV1Api);
const namespace = `local-node-${randomBytes(3).toString('hex')}`;
const workDir = path.resolve('test-output', namespace);
let node: LocalNode;

beforeAll(async () => {
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  node = await startLocalNode({
    kubeConfig: kc,
    python: inject('python'),
    workDir,
    env: { TAO_TEST_MARK: 'from-harness' },
  });
});

afterAll(async () => {
  // delete the namespace while the node still finishes pod deletions, then take the node away
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  await waitFor(
    'namespace gone',
    () =>
      core.readNamespace({ name: namespace }).then(
        () => false,
        () => true,
      ),
    60_000,
  ).catch(() => undefined);
  await node?.stop();
});

async function waitFor<T>(what: string, check: () => Promise<T | false | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== false && v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

let n = 0;
const uniqueName = (prefix: string) => `${prefix}-${++n}-${randomBytes(2).toString('hex')}`;

function podSpec(code: string, over: Partial<V1PodSpec> = {}, env: V1PodSpec['containers'][0]['env'] = []): V1PodSpec {
  return {
    restartPolicy: 'Never',
    nodeSelector: node.nodeSelector,
    containers: [
      {
        name: 'stage',
        image: 'local',
        command: ['python', '-c', code],
        env,
        terminationMessagePolicy: 'FallbackToLogsOnError',
      },
    ],
    ...over,
  };
}

async function createJob(name: string, spec: V1PodSpec, over: Partial<NonNullable<V1Job['spec']>> = {}) {
  await batch.createNamespacedJob({
    namespace,
    body: { metadata: { name }, spec: { backoffLimit: 0, template: { spec }, ...over } },
  });
}

const jobPods = async (job: string) =>
  (await core.listNamespacedPod({ namespace, labelSelector: `batch.kubernetes.io/job-name=${job}` })).items;

const jobCondition = (job: string, type: string) =>
  waitFor(`Job ${job} condition ${type}`, async () => {
    const j = await batch.readNamespacedJob({ name: job, namespace });
    return j.status?.conditions?.find((c) => c.type === type && c.status === 'True');
  });

const podPhase = (name: string, phases: string[]) =>
  waitFor(`pod ${name} in ${phases.join('/')}`, async () => {
    const p = await core.readNamespacedPod({ name, namespace });
    return phases.includes(p.status?.phase ?? '') ? p : undefined;
  });

const runOf = (pod: string) =>
  waitFor(`process of ${pod}`, async () => node.runs().find((r) => r.pod === pod && r.pid));

const terminated = (pod: V1Pod) => pod.status?.containerStatuses?.[0]?.state?.terminated;

describe('local node, the stand-in kubelet (pods as host processes, no images): pods really run', () => {
  it('registers a Ready node with GPUs, a kubelet port and the local-node label', async () => {
    const n = await core.readNode({ name: node.name });
    expect(n.metadata?.labels).toMatchObject({ 'tao.dev/local-node': 'true', 'kubernetes.io/hostname': node.name });
    expect(n.metadata?.annotations?.['kwok.x-k8s.io/node']).toBeUndefined();
    expect(n.status?.allocatable?.['nvidia.com/gpu']).toBe('8');
    expect(n.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(n.status?.daemonEndpoints?.kubeletEndpoint?.Port).toBe(node.port);
  });

  it('runs a Job through the job controller to Complete; its log comes back through the apiserver', async () => {
    await core.createNamespacedSecret({
      namespace,
      body: { metadata: { name: 'creds' }, stringData: { token: 's3cr3t' } },
    });
    const job = uniqueName('hello');
    const code = [
      'import os',
      'for i in range(5): print(f"line {i}")',
      'print("secret=" + os.environ["TOKEN"], "pod=" + os.environ["POD"], "ns=" + os.environ["NS"])',
      'print("mark=" + os.environ["TAO_TEST_MARK"], "plain=" + os.environ["PLAIN"])',
    ].join('\n');
    const env = [
      { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'creds', key: 'token' } } },
      { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'PLAIN', value: 'v-$(NS)' },
    ];
    await createJob(job, podSpec(code, {}, env));
    await jobCondition(job, 'Complete');

    const [pod] = await jobPods(job);
    expect(pod?.spec?.nodeName).toBe(node.name);
    expect(pod?.status?.phase).toBe('Succeeded');
    expect(terminated(pod!)).toMatchObject({ exitCode: 0, reason: 'Completed' });
    const name = pod!.metadata!.name!;

    const log = await core.readNamespacedPodLog({ name, namespace, container: 'stage' });
    expect(log).toContain('line 0\nline 1\nline 2\nline 3\nline 4\n');
    expect(log).toContain(`secret=s3cr3t pod=${name} ns=${namespace}`);
    expect(log).toContain(`mark=from-harness plain=v-${namespace}`);
    const tail = await core.readNamespacedPodLog({ name, namespace, container: 'stage', tailLines: 2 });
    expect(tail.split('\n').filter(Boolean)).toHaveLength(2);
    expect(tail).toMatch(/^secret=/);
    expect(await core.readNamespacedPodLog({ name, namespace, limitBytes: 6 })).toBe('line 0');

    const run = node.runs().find((r) => r.pod === name);
    expect(run).toMatchObject({ namespace, exitCode: 0 });
    expect(run!.endedAt!.getTime()).toBeGreaterThanOrEqual(run!.startedAt!.getTime());
  });

  it('a container that writes the termination file and exits 3: Failed, exitCode 3, that message', async () => {
    const name = uniqueName('reason');
    const code = [
      'import os, sys',
      'print("working")',
      'open(os.environ["TAO_TERMINATION_LOG"], "w").write("model.safetensors is corrupt")',
      'sys.exit(3)',
    ].join('\n');
    await core.createNamespacedPod({ namespace, body: { metadata: { name }, spec: podSpec(code) } });
    const pod = await podPhase(name, ['Failed', 'Succeeded']);
    expect(pod.status?.phase).toBe('Failed');
    expect(terminated(pod)).toMatchObject({ exitCode: 3, reason: 'Error', message: 'model.safetensors is corrupt' });
    expect(terminated(pod)?.finishedAt).toBeTruthy();
  });

  it('FallbackToLogsOnError: an empty termination file on failure gives the log tail (≤ 80 lines, 2048 bytes)', async () => {
    const name = uniqueName('fallback');
    const code = 'import sys\nfor i in range(200): print(f"l{i}", file=sys.stderr)\nsys.exit(2)';
    await core.createNamespacedPod({ namespace, body: { metadata: { name }, spec: podSpec(code) } });
    const pod = await podPhase(name, ['Failed', 'Succeeded']);
    const message = terminated(pod)?.message ?? '';
    expect(terminated(pod)?.exitCode).toBe(2);
    expect(message.endsWith('l199\n')).toBe(true);
    expect(message.split('\n').filter(Boolean)).toHaveLength(80);
    expect(message.startsWith('l120\n')).toBe(true);
  });

  it('a pod whose Secret is missing waits (CreateContainerConfigError) and runs once the Secret exists', async () => {
    const name = uniqueName('late-secret');
    const secret = uniqueName('late');
    const env = [{ name: 'KEY', valueFrom: { secretKeyRef: { name: secret, key: 'k' } } }];
    const spec = podSpec('import os\nprint("key=" + os.environ["KEY"])', {}, env);
    await core.createNamespacedPod({ namespace, body: { metadata: { name }, spec } });
    const waiting = await waitFor('the pod waiting for its Secret', async () => {
      const p = await core.readNamespacedPod({ name, namespace });
      return p.status?.containerStatuses?.[0]?.state?.waiting;
    });
    expect(waiting).toMatchObject({ reason: 'CreateContainerConfigError', message: `secret "${secret}" not found` });
    expect(node.runs().find((r) => r.pod === name)?.pid).toBeUndefined();

    await core.createNamespacedSecret({
      namespace,
      body: { metadata: { name: secret }, stringData: { k: 'late-value' } },
    });
    const pod = await podPhase(name, ['Succeeded', 'Failed']);
    expect(pod.status?.phase).toBe('Succeeded');
    expect(await core.readNamespacedPodLog({ name, namespace })).toBe('key=late-value\n');
  });

  it('a Job with podFailurePolicy FailJob on exit 65 fails at once when the process exits 65', async () => {
    const job = uniqueName('bad-input');
    await createJob(job, podSpec('import sys\nprint("bad input")\nsys.exit(65)'), {
      backoffLimit: 6,
      podFailurePolicy: {
        rules: [{ action: 'FailJob', onExitCodes: { containerName: 'stage', operator: 'In', values: [64, 65] } }],
      },
    });
    const failed = await jobCondition(job, 'Failed');
    expect(failed.reason).toBe('PodFailurePolicy');
    expect(failed.message).toContain('failed with exit code 65 matching FailJob rule at index 0');
    const pods = await jobPods(job);
    expect(pods).toHaveLength(1); // no retry despite backoffLimit 6
    expect(terminated(pods[0]!)?.exitCode).toBe(65);
  });

  it('follow streams lines through the apiserver while the process still runs, and ends when it exits', async () => {
    const name = uniqueName('follow');
    const release = path.join(workDir, `${name}.release`);
    const code = [
      'import os, sys, time',
      'i = 0',
      'while not os.path.exists(sys.argv[1]):',
      '    print(f"tick {i}", flush=True); i += 1; time.sleep(0.2)',
      'print("bye", flush=True)',
    ].join('\n');
    const spec = podSpec(code);
    spec.containers[0]!.args = [release];
    await core.createNamespacedPod({ namespace, body: { metadata: { name }, spec } });
    await podPhase(name, ['Running']);

    let received = '';
    let ended = false;
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        received += chunk.toString('utf8');
        cb();
      },
      final(cb) {
        ended = true;
        cb();
      },
    });
    const abort = await new Log(kc).log(namespace, name, 'stage', sink, { follow: true });
    try {
      await waitFor('streamed ticks', async () => received.includes('tick 3'));
      const run = await runOf(name);
      expect(run.endedAt).toBeUndefined(); // still running while lines arrive
      expect(alive(run.pid!)).toBe(true);
      expect(ended).toBe(false);

      fs.writeFileSync(release, '');
      await waitFor('the follow stream to end', async () => ended);
      expect(received.trimEnd().endsWith('bye')).toBe(true);
      expect(node.runs().find((r) => r.pod === name)?.exitCode).toBe(0);
    } finally {
      abort.abort();
    }
  });

  it('deleting a running Job (Background propagation) kills its process and leaves no pod', async () => {
    const job = uniqueName('cancel');
    await createJob(job, podSpec('import time\nprint("started", flush=True)\ntime.sleep(600)'));
    const pod = await waitFor('the Job pod Running', async () =>
      (await jobPods(job)).find((p) => p.status?.phase === 'Running'),
    );
    const run = await runOf(pod.metadata!.name!);
    expect(alive(run.pid!)).toBe(true);

    await batch.deleteNamespacedJob({ name: job, namespace, propagationPolicy: 'Background' });
    await waitFor('the process to die', async () => !alive(run.pid!));
    await waitFor('no pods left', async () => (await jobPods(job)).length === 0);
    expect(node.runs().find((r) => r.pod === pod.metadata!.name)?.exitCode).toBe(143); // SIGTERM
  });

  it('a process that ignores SIGTERM is SIGKILLed after the grace period', async () => {
    const name = uniqueName('stubborn');
    const code =
      'import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint("up", flush=True)\ntime.sleep(600)';
    await core.createNamespacedPod({
      namespace,
      body: { metadata: { name }, spec: podSpec(code, { terminationGracePeriodSeconds: 1 }) },
    });
    await podPhase(name, ['Running']);
    const run = await runOf(name);
    await waitFor('"up" in the log', async () => fs.readFileSync(run.logFile, 'utf8').includes('up'));
    const t0 = Date.now();
    await core.deleteNamespacedPod({ name, namespace });
    await waitFor('the process to die', async () => !alive(run.pid!));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    await waitFor('the pod gone', () =>
      core.readNamespacedPod({ name, namespace }).then(
        () => false,
        () => true,
      ),
    );
    expect(node.runs().find((r) => r.pod === name)?.exitCode).toBe(137); // SIGKILL
  });
});
