/**
 * A real Kubernetes control plane for tests and local use, without Docker: etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler built from Go modules by scripts/k8s/build-control-plane.sh, plus
 * kwok running fake GPU nodes (pods are scheduled for real, kwok plays the kubelet). Fixed loopback ports
 * from `basePort`; certs, keys and tokens generated per run with openssl; every process recorded in a pid
 * file so a run interrupted earlier is cleaned up by the next one (by pid, never by name).
 *
 * Ports: etcd client basePort, etcd peer +1, kube-apiserver +2, kube-controller-manager +3, kube-scheduler +4.
 */
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { portOpen, startLogged, stopProcess, waitUntil, type Started } from './processes.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BUILD_SCRIPT = path.join(ROOT, 'scripts', 'k8s', 'build-control-plane.sh');

export const FAKE_NODE_ANNOTATION = { key: 'kwok.x-k8s.io/node', value: 'fake' } as const;
export const GPU_NODE_LABEL = { key: 'tao.dev/gpu-node', value: 'true' } as const;
/** kwok's chaos stage (pod/chaos/pod-container-running-failed): a Running pod with this label goes Failed. */
export const KWOK_FAIL_LABEL = 'pod-container-running-failed.stage.kwok.x-k8s.io';
/** Annotations read by that stage (all optional): exit code (default 1), reason, message, container name, delay. */
export const KWOK_FAIL_ANNOTATIONS = {
  exitCode: 'pod-container-running-failed.stage.kwok.x-k8s.io/exit-code',
  reason: 'pod-container-running-failed.stage.kwok.x-k8s.io/reason',
  message: 'pod-container-running-failed.stage.kwok.x-k8s.io/message',
  containerName: 'pod-container-running-failed.stage.kwok.x-k8s.io/container-name',
  delay: 'pod-container-running-failed.stage.kwok.x-k8s.io/delay',
} as const;

const KWOK_STAGES = [
  'node/fast/node-initialize.yaml',
  'pod/fast/pod-ready.yaml',
  'pod/fast/pod-complete.yaml',
  'pod/fast/pod-delete.yaml',
  'pod/chaos/pod-container-running-failed.yaml',
];

const PROCESS_NAMES = ['kwok', 'kube-scheduler', 'kube-controller-manager', 'kube-apiserver', 'etcd'] as const;

export interface K8sDevOptions {
  /** Fresh working dir (wiped): etcd data, certs, kubeconfig, logs. */
  dir: string;
  basePort: number;
  /** Directory with the binaries; default: run build-control-plane.sh (instant when cached). */
  binDir?: string;
  /** Fake GPU nodes to create (default 2): tao-gpu-0, tao-gpu-1, ... */
  gpuNodes?: number;
  gpusPerNode?: number;
  /**
   * How long the pods of a Job stay Running on a fake node before kwok's pod-complete stage makes them
   * Succeeded (a `delay` on that Stage). Default: none, they complete at once. For the supervision benchmark,
   * whose Jobs must all run at the same time.
   */
  podRunSeconds?: number;
  /**
   * kube-controller-manager's client rate limit (`--kube-api-qps`, burst twice that). Default: its own (20
   * QPS, burst 30), which caps the job controller at a few Jobs per second (benchmark with hundreds of Jobs).
   */
  controllerManagerQps?: number;
}

export const RESTRICTED_USER = 'tao-restricted';

export interface K8sDev {
  server: string;
  /** Admin token (user tao-admin, group system:masters). */
  token: string;
  /** Token of user `tao-restricted`, which has no RBAC bindings until a test creates some. */
  restrictedToken: string;
  restrictedKubeConfig: KubeConfig;
  kubeconfigPath: string;
  kubeConfig: KubeConfig;
  nodeNames: string[];
  binDir: string;
  logs: Record<string, string>;
  stop(): Promise<void>;
}

/** Builds (or finds in the cache) the control-plane binaries; returns the bin dir. Cold: about 8 min on 2 cores. */
export async function ensureK8sBinaries(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const run = promisify(execFile);
  const { stdout } = await run('bash', [BUILD_SCRIPT], { env, maxBuffer: 64 << 20, timeout: 60 * 60_000 });
  const lines = stdout.trim().split('\n');
  return lines[lines.length - 1]!;
}

function pidFileFor(o: { dir: string; basePort: number }, name: string): string {
  return path.join(o.dir, '..', `k8s-${o.basePort}-${name}.pid`);
}

/**
 * Stops a control plane left behind by an interrupted run on this basePort (pid files next to `dir`):
 * SIGTERM to each recorded process group, SIGKILL to what is still there after 10 s. Returns whether any
 * was running.
 */
export async function stopK8sDev(o: { dir: string; basePort: number }): Promise<boolean> {
  const alive = (pid: number) => {
    try {
      process.kill(-pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  // Everything but etcd first, then etcd: the apiserver shuts down promptly only while etcd is still there.
  const pids: number[] = [];
  const terminate = async (names: readonly string[]) => {
    const group: number[] = [];
    for (const name of names) {
      const file = pidFileFor(o, name);
      if (!fs.existsSync(file)) continue;
      const pid = Number(fs.readFileSync(file, 'utf8'));
      fs.rmSync(file, { force: true });
      if (!(pid > 0 && alive(pid))) continue;
      process.kill(-pid, 'SIGTERM');
      group.push(pid);
    }
    const deadline = Date.now() + 10_000;
    while (group.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    for (const pid of group.filter(alive)) process.kill(-pid, 'SIGKILL');
    while (group.some(alive)) await new Promise((r) => setTimeout(r, 100));
    pids.push(...group);
  };
  await terminate(PROCESS_NAMES.filter((n) => n !== 'etcd'));
  await terminate(['etcd']);
  return pids.length > 0;
}

function openssl(args: string[], cwd: string) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** GET over https with a bearer token, self-signed cert accepted; resolves with the status and body. */
function httpsGet(url: string, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      url,
      { rejectUnauthorized: false, headers: token ? { Authorization: `Bearer ${token}` } : {}, timeout: 5000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

export function kubeconfigYaml(server: string, token: string, user = 'tao-admin'): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: tao-dev',
    '  cluster:',
    `    server: ${server}`,
    '    insecure-skip-tls-verify: true',
    'users:',
    `- name: ${user}`,
    '  user:',
    `    token: ${token}`,
    'contexts:',
    '- name: tao-dev',
    '  context:',
    '    cluster: tao-dev',
    `    user: ${user}`,
    '    namespace: default',
    'current-context: tao-dev',
    '',
  ].join('\n');
}

export async function startK8sDev(o: K8sDevOptions): Promise<K8sDev> {
  const binDir = o.binDir ?? (await ensureK8sBinaries());
  const bin = (name: string) => path.join(binDir, name);
  const stageDir = path.join(binDir, '..', 'kwok-stage');
  for (const name of PROCESS_NAMES) {
    if (!fs.existsSync(bin(name))) throw new Error(`${bin(name)} missing: run scripts/k8s/build-control-plane.sh`);
  }
  const p = o.basePort;
  const ports = [p, p + 1, p + 2, p + 3, p + 4];
  const busy = async () => (await Promise.all(ports.map((port) => portOpen(port)))).some(Boolean);
  if (await stopK8sDev(o)) {
    // processes left behind by an interrupted run of ours are gone; give the kernel a moment with the ports
    await waitUntil(`ports of the control plane left on basePort ${p} closed`, async () => !(await busy()), 10_000);
  }
  for (const port of ports) {
    if (await portOpen(port)) throw new Error(`port ${port} is busy (k8s dev basePort ${p})`);
  }
  fs.rmSync(o.dir, { recursive: true, force: true });
  const pki = path.join(o.dir, 'pki');
  fs.mkdirSync(pki, { recursive: true });
  const logDir = o.dir;

  // Service-account signing key pair and a token file with one admin in system:masters.
  openssl(['genrsa', '-out', 'sa.key', '2048'], pki);
  openssl(['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], pki);
  const token = randomBytes(24).toString('hex');
  const tokenFile = path.join(pki, 'tokens.csv');
  // A second user with no permissions at all (only system:authenticated), for real RBAC tests: bind it to a
  // Role and use `restrictedKubeConfig`.
  const restrictedToken = randomBytes(24).toString('hex');
  fs.writeFileSync(
    tokenFile,
    `${token},tao-admin,tao-admin,"system:masters"\n${restrictedToken},${RESTRICTED_USER},${RESTRICTED_USER}\n`,
    { mode: 0o600 },
  );

  const server = `https://127.0.0.1:${p + 2}`;
  const kubeconfigPath = path.join(o.dir, 'kubeconfig');
  fs.writeFileSync(kubeconfigPath, kubeconfigYaml(server, token), { mode: 0o600 });

  // kwok Stage configs: one multi-document file.
  const stagesFile = path.join(o.dir, 'kwok-stages.yaml');
  const stageText = (s: string) => {
    const text = fs.readFileSync(path.join(stageDir, s), 'utf8').trim();
    if (s !== 'pod/fast/pod-complete.yaml' || !o.podRunSeconds) return text;
    const doc = YAML.parseDocument(text);
    doc.setIn(['spec', 'delay'], { durationMilliseconds: Math.round(o.podRunSeconds * 1000) });
    return doc.toString().trim();
  };
  fs.writeFileSync(stagesFile, KWOK_STAGES.map(stageText).join('\n---\n') + '\n');

  const started: Record<string, Started> = {};
  const logs: Record<string, string> = {};
  const env = { ...process.env, HOME: o.dir /* kwok/klog write nothing outside the dir */ };
  const start = (name: (typeof PROCESS_NAMES)[number], args: string[]) => {
    logs[name] = path.join(logDir, `${name}.log`);
    const s = startLogged(bin(name), args, logs[name]!, env);
    fs.writeFileSync(pidFileFor(o, name), String(s.child.pid));
    started[name] = s;
    return s;
  };
  const stop = async () => {
    for (const name of PROCESS_NAMES) {
      const s = started[name];
      if (s) await stopProcess(s.child);
      fs.rmSync(pidFileFor(o, name), { force: true });
    }
  };

  try {
    start('etcd', [
      '--name=tao-dev',
      `--data-dir=${path.join(o.dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${p}`,
      `--advertise-client-urls=http://127.0.0.1:${p}`,
      `--listen-peer-urls=http://127.0.0.1:${p + 1}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${p + 1}`,
      `--initial-cluster=tao-dev=http://127.0.0.1:${p + 1}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    await waitUntil(
      `etcd on 127.0.0.1:${p}`,
      async () => {
        const res = await fetch(`http://127.0.0.1:${p}/health`);
        return res.ok && ((await res.json()) as { health?: string }).health === 'true';
      },
      60_000,
      logs.etcd,
    );

    start('kube-apiserver', [
      `--etcd-servers=http://127.0.0.1:${p}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${p + 2}`,
      `--cert-dir=${path.join(o.dir, 'apiserver-certs')}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${path.join(pki, 'sa.pub')}`,
      `--service-account-signing-key-file=${path.join(pki, 'sa.key')}`,
      `--token-auth-file=${tokenFile}`,
      '--authorization-mode=RBAC',
      // TaintNodesByCondition would put node.kubernetes.io/not-ready:NoSchedule on every new node, and only
      // the node-lifecycle controller (not run here: it would need kwok heartbeats) takes it off again.
      '--disable-admission-plugins=ServiceAccount,TaintNodesByCondition',
      '--endpoint-reconciler-type=none',
      '--enable-priority-and-fairness=false',
      '--allow-privileged=true',
      '--v=1',
    ]);
    await waitUntil(
      `kube-apiserver on ${server}`,
      async () => (await httpsGet(`${server}/readyz`, token)).status === 200,
      180_000,
      logs['kube-apiserver'],
    );

    start('kube-controller-manager', [
      `--kubeconfig=${kubeconfigPath}`,
      `--authentication-kubeconfig=${kubeconfigPath}`,
      `--authorization-kubeconfig=${kubeconfigPath}`,
      '--controllers=job-controller,garbage-collector-controller,ttl-after-finished-controller,namespace-controller,pod-garbage-collector-controller',
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${p + 3}`,
      `--cert-dir=${path.join(o.dir, 'kcm-certs')}`,
      '--use-service-account-credentials=false',
      ...(o.controllerManagerQps
        ? [`--kube-api-qps=${o.controllerManagerQps}`, `--kube-api-burst=${2 * o.controllerManagerQps}`]
        : []),
      '--v=1',
    ]);
    start('kube-scheduler', [
      `--kubeconfig=${kubeconfigPath}`,
      `--authentication-kubeconfig=${kubeconfigPath}`,
      `--authorization-kubeconfig=${kubeconfigPath}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${p + 4}`,
      `--cert-dir=${path.join(o.dir, 'scheduler-certs')}`,
      '--v=1',
    ]);
    start('kwok', [
      `--kubeconfig=${kubeconfigPath}`,
      `--config=${stagesFile}`,
      `--manage-nodes-with-annotation-selector=${FAKE_NODE_ANNOTATION.key}=${FAKE_NODE_ANNOTATION.value}`,
      '--manage-all-nodes=false',
      '--cidr=10.0.0.1/24',
      '--node-ip=127.0.0.1',
    ]);
    await waitUntil(
      'kube-controller-manager healthz',
      async () => (await httpsGet(`https://127.0.0.1:${p + 3}/healthz`)).status === 200,
      120_000,
      logs['kube-controller-manager'],
    );
    await waitUntil(
      'kube-scheduler healthz',
      async () => (await httpsGet(`https://127.0.0.1:${p + 4}/healthz`)).status === 200,
      120_000,
      logs['kube-scheduler'],
    );

    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromString(fs.readFileSync(kubeconfigPath, 'utf8'));
    const core = kubeConfig.makeApiClient(CoreV1Api);
    const nodeNames: string[] = [];
    const gpus = String(o.gpusPerNode ?? 8);
    for (let i = 0; i < (o.gpuNodes ?? 2); i++) {
      const name = `tao-gpu-${i}`;
      nodeNames.push(name);
      const resources = { cpu: '64', memory: '512Gi', pods: '110', 'nvidia.com/gpu': gpus };
      await core.createNode({
        body: {
          apiVersion: 'v1',
          kind: 'Node',
          metadata: {
            name,
            annotations: {
              [FAKE_NODE_ANNOTATION.key]: FAKE_NODE_ANNOTATION.value,
              'node.alpha.kubernetes.io/ttl': '0',
            },
            labels: {
              [GPU_NODE_LABEL.key]: GPU_NODE_LABEL.value,
              'kubernetes.io/hostname': name,
              'kubernetes.io/os': 'linux',
              'kubernetes.io/arch': 'amd64',
              type: 'kwok',
            },
          },
          spec: {},
          status: { capacity: resources, allocatable: resources },
        },
      });
    }
    // kwok's node-initialize stage marks them Ready.
    await waitUntil(
      `fake GPU nodes Ready (${nodeNames.join(', ')})`,
      async () => {
        const list = await core.listNode({ labelSelector: `${GPU_NODE_LABEL.key}=${GPU_NODE_LABEL.value}` });
        const ready = list.items.filter((n) =>
          n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        );
        return ready.length === nodeNames.length;
      },
      120_000,
      logs.kwok,
    );
    const restrictedKubeConfig = new KubeConfig();
    restrictedKubeConfig.loadFromString(kubeconfigYaml(server, restrictedToken, RESTRICTED_USER));
    return {
      server,
      token,
      restrictedToken,
      restrictedKubeConfig,
      kubeconfigPath,
      kubeConfig,
      nodeNames,
      binDir,
      logs,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** For scripts: a temp dir under the OS temp dir. */
export function tempK8sDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tao-k8s-'));
}
