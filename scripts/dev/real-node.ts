/**
 * A real Kubernetes node for the local control plane (scripts/dev/k8s-dev.ts): a kubelet built from
 * k8s.io/kubernetes (scripts/k8s/build-kubelet.sh) on Debian's containerd with its CRI plugin, runc and CNI
 * bridge networking, pulling images from the local registry (scripts/k8s/registry.sh). Pods bound here are
 * pulled, started, logged, OOM-killed and stopped for real. The settings this machine needs (cgroup v1, no
 * CAP_SYS_RESOURCE, no reachable public registry) are explained where they are set; see docs/k8s-dev.md.
 *
 * The node is tainted `tao.dev/real-node=true:NoSchedule` and labelled `tao.dev/real-node=true`, so only pods
 * that ask for it land here (the kwok nodes keep the rest). Its own containerd keeps its images in the cache
 * (warm runs pull nothing); state, sockets, CNI and logs live in `dir`. stop() deletes the pods bound here
 * through the apiserver, kills any container still running, stops the kubelet and containerd, and removes the
 * bridge: a run leaves no container, pod network or process behind.
 *
 * Ports: kubelet basePort, its healthz basePort+1, the optional workload controllers basePort+2. Pods get 10.88.<n>.0/24 on bridge `tao<basePort>`; the
 * bridge's address (`gateway`) is the host as pods see it, where forward() exposes loopback-only services.
 */
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { startLogged, stopProcess, waitUntil, type Started } from './processes.js';
import { cacheDir, REPO_ROOT } from './tools.js';

const run = promisify(execFile);
export const REAL_NODE_LABEL = { key: 'tao.dev/real-node', value: 'true' } as const;
/**
 * Node name, and so its Hostname address: the apiserver dials a kubelet (pod logs) by the Hostname address
 * first, and `localhost` resolves to where the kubelet listens (127.0.0.1). No cluster DNS needed.
 */
export const REAL_NODE_NAME = 'localhost';
export const REGISTRY = process.env.TAO_REGISTRY ?? 'localhost:5000';

export interface RealNodeOptions {
  /** Fresh working dir (wiped): containerd state and socket, kubelet root, CNI config, logs. */
  dir: string;
  basePort: number;
  /** Admin kubeconfig file of the control plane, and a client for it. */
  kubeconfigPath: string;
  kubeConfig: KubeConfig;
  /** The sandbox ("pause") image in the registry (scripts/k8s/build-images.sh pause). */
  pauseImage: string;
  /**
   * Also run the controllers of Deployments and ReplicaSets (a second kube-controller-manager with only those,
   * from `binDir`): the test control plane runs only the Job-related ones, and the worker Deployment needs them.
   */
  workloadControllers?: { binDir: string };
}

export interface RealNode {
  name: string;
  /** The host's address on the pod bridge: what pods dial to reach a forward()ed host service. */
  gateway: string;
  /** What a pod template needs to land here: the node selector and the toleration of its taint. */
  placement: {
    nodeSelector: Record<string, string>;
    tolerations: { key: string; operator: 'Equal'; value: string; effect: 'NoSchedule' }[];
  };
  /** `ctr` against this node's containerd (namespace k8s.io): e.g. ['tasks', 'ls']. */
  ctr(args: string[]): Promise<string>;
  /** Containers running on this node (their ids), as containerd sees them. */
  runningContainers(): Promise<string[]>;
  /** Exposes 127.0.0.1:port to pods at gateway:returned port (TCP, until stop). */
  forward(port: number): Promise<number>;
  logs: Record<string, string>;
  stop(): Promise<void>;
}

/** One line naming what this machine lacks for a real node, or undefined when it has everything. */
export function missingForRealNode(): string | undefined {
  const tools: [string, string][] = [
    ['/usr/bin/containerd', 'containerd'],
    ['/usr/bin/containerd-shim-runc-v2', 'containerd'],
    ['/usr/bin/ctr', 'containerd'],
    ['/usr/sbin/runc', 'runc'],
    ['/usr/lib/cni/bridge', 'containernetworking-plugins'],
    ['/usr/lib/cni/host-local', 'containernetworking-plugins'],
    ['/usr/lib/cni/loopback', 'containernetworking-plugins'],
  ];
  const missing = [...new Set(tools.filter(([f]) => !fs.existsSync(f) && !onPath(path.basename(f))).map(([, p]) => p))];
  if (missing.length) return `a real node needs Debian's ${missing.join(', ')}: apt-get install ${missing.join(' ')}`;
  if (process.getuid?.() !== 0) return 'a real node needs root (containerd, runc, CNI bridge networking)';
  if (!fs.existsSync('/sys/fs/cgroup/memory') && !fs.existsSync('/sys/fs/cgroup/cgroup.controllers')) {
    return 'a real node needs the memory cgroup controller (no /sys/fs/cgroup/memory or cgroup v2 hierarchy)';
  }
  const fsTypes = fs.readFileSync('/proc/filesystems', 'utf8');
  if (!/\toverlay$/m.test(fsTypes)) return 'a real node needs the overlay filesystem (modprobe overlay)';
  return undefined;
}

function onPath(tool: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d && fs.existsSync(path.join(d, tool)));
}

/** Builds (or finds in the cache) the kubelet; returns its path. Under a minute after the control plane. */
export async function ensureKubelet(): Promise<string> {
  const script = path.join(REPO_ROOT, 'scripts', 'k8s', 'build-kubelet.sh');
  const { stdout } = await run('bash', [script], { maxBuffer: 64 << 20, timeout: 60 * 60_000 });
  return stdout.trim().split('\n').at(-1)!;
}

/**
 * Unmounts what a kubelet left mounted under `dir` (it bind-mounts its root dir onto itself to make it shared,
 * and pods' volumes below it), deepest first, so the dir can be removed.
 */
export function unmountUnder(dir: string): void {
  const prefix = path.resolve(dir) + '/';
  const mounts = fs
    .readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m): m is string => !!m && (m + '/').startsWith(prefix))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) {
    try {
      execFileSync('umount', [m], { stdio: 'ignore' });
    } catch {
      execFileSync('umount', ['-l', m], { stdio: 'ignore' });
    }
  }
}

function pidFile(o: { dir: string; basePort: number }, name: string) {
  return path.join(o.dir, '..', `node-${o.basePort}-${name}.pid`);
}

/** Stops processes of a real node left behind by an interrupted run on this basePort (pid files next to dir). */
export async function stopLeftoverNode(o: { dir: string; basePort: number }): Promise<void> {
  for (const name of ['kubelet', 'containerd', 'workload-controllers']) {
    const file = pidFile(o, name);
    if (!fs.existsSync(file)) continue;
    const pid = Number(fs.readFileSync(file, 'utf8'));
    fs.rmSync(file, { force: true });
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      continue;
    }
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      try {
        process.kill(-pid, 0);
      } catch {
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  // containers of that run: still held by their shims after containerd is gone; the next containerd on the
  // same root sees and kills them (killAllTasks at start)
}

export async function startRealNode(o: RealNodeOptions): Promise<RealNode> {
  const missing = missingForRealNode();
  if (missing) throw new Error(missing);
  const kubelet = await ensureKubelet();
  await stopLeftoverNode(o);
  unmountUnder(o.dir);
  fs.rmSync(o.dir, { recursive: true, force: true });
  const d = (...p: string[]) => path.join(o.dir, ...p);
  for (const sub of ['containerd-state', 'cni/net.d', 'cni/ipam', 'kubelet', 'pod-logs']) {
    fs.mkdirSync(d(sub), { recursive: true });
  }
  // images persist across runs (pulled once), keyed by basePort so two runs never share a containerd root
  const containerdRoot = path.join(cacheDir(), 'node', String(o.basePort), 'containerd-root');
  fs.mkdirSync(containerdRoot, { recursive: true });
  const sock = d('containerd.sock');
  const bridge = `tao${o.basePort}`.slice(0, 15);
  const subnetIndex = 100 + (o.basePort % 100);
  const gateway = `10.88.${subnetIndex}.1`;
  const registryHost = REGISTRY;

  fs.writeFileSync(
    d('containerd.toml'),
    [
      'version = 2',
      `root = "${containerdRoot}"`,
      `state = "${d('containerd-state')}"`,
      '[grpc]',
      `  address = "${sock}"`,
      '[ttrpc]',
      `  address = "${sock}.ttrpc"`,
      '[debug]',
      '  level = "warn"',
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${d('containerd-opt')}"`,
      '[plugins."io.containerd.grpc.v1.cri"]',
      // the public pause image's registry is not reachable: our own, from the local registry
      `  sandbox_image = "${o.pauseImage}"`,
      // no CAP_SYS_RESOURCE here: the pause container's oom_score_adj -998 would be refused
      '  restrict_oom_score_adj = true',
      '  stream_server_address = "127.0.0.1"',
      '  stream_server_port = "0"',
      '  [plugins."io.containerd.grpc.v1.cri".containerd]',
      '    snapshotter = "overlayfs"',
      '    default_runtime_name = "runc"',
      '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
      '      runtime_type = "io.containerd.runc.v2"',
      // runc, not crun: crun refuses this machine's hybrid cgroup layout
      '      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
      '        BinaryName = "/usr/sbin/runc"',
      '        SystemdCgroup = false',
      '  [plugins."io.containerd.grpc.v1.cri".cni]',
      '    bin_dir = "/usr/lib/cni"',
      `    conf_dir = "${d('cni/net.d')}"`,
      '    max_conf_num = 1',
      '  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."' + registryHost + '"]',
      `    endpoint = ["http://${registryHost}"]`,
      '',
    ].join('\n'),
  );
  fs.writeFileSync(
    d('cni/net.d/10-tao.conflist'),
    JSON.stringify(
      {
        cniVersion: '0.4.0',
        name: `tao-node-${o.basePort}`,
        plugins: [
          {
            type: 'bridge',
            bridge,
            isGateway: true,
            // pods talk to the host (gateway) only; no masquerading, no route out
            ipMasq: false,
            ipam: {
              type: 'host-local',
              ranges: [[{ subnet: `10.88.${subnetIndex}.0/24`, gateway }]],
              dataDir: d('cni/ipam'),
            },
          },
          { type: 'portmap', capabilities: { portMappings: true } },
        ],
      },
      null,
      2,
    ),
  );
  const kubeletConfig = {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    // Kubernetes 1.35+ refuses cgroup v1 unless told; this machine has a hybrid v1 hierarchy
    failCgroupV1: false,
    cgroupDriver: 'cgroupfs',
    containerRuntimeEndpoint: `unix://${sock}`,
    address: '127.0.0.1',
    port: o.basePort,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: o.basePort + 1,
    // the apiserver calls in for logs without a client certificate: loopback only, every request allowed
    authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
    authorization: { mode: 'AlwaysAllow' },
    failSwapOn: false,
    // a shared development machine: no node-allocatable enforcement, no evictions on its disk or memory
    enforceNodeAllocatable: [],
    evictionHard: {},
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    podLogsDir: d('pod-logs'),
    clusterDomain: 'cluster.local',
    registerWithTaints: [{ key: REAL_NODE_LABEL.key, value: REAL_NODE_LABEL.value, effect: 'NoSchedule' }],
    serializeImagePulls: false,
    staticPodPath: '',
    // a Job's pod status (exit code, OOMKilled, termination message) reaches the apiserver at once
    nodeStatusUpdateFrequency: '5s',
  };
  fs.writeFileSync(d('kubelet-config.json'), JSON.stringify(kubeletConfig, null, 2));

  const logs: Record<string, string> = {
    containerd: d('containerd.log'),
    kubelet: d('kubelet.log'),
    'workload-controllers': d('workload-controllers.log'),
  };
  const started: Record<string, Started> = {};
  const forwards: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  const core = o.kubeConfig.makeApiClient(CoreV1Api);
  const ctr = async (args: string[]) =>
    (await run('ctr', ['--address', sock, '--namespace', 'k8s.io', ...args], { maxBuffer: 16 << 20 })).stdout;
  const runningContainers = async () =>
    (await ctr(['tasks', 'ls']))
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length >= 3 && f[2] === 'RUNNING')
      .map((f) => f[0]!);
  const killAllTasks = async () => {
    for (const id of await runningContainers().catch(() => [])) {
      await ctr(['tasks', 'kill', '--signal', 'SIGKILL', id]).catch(() => undefined);
    }
    await waitUntil('containers to stop', async () => (await runningContainers()).length === 0, 30_000).catch(
      () => undefined,
    );
    for (const line of (await ctr(['tasks', 'ls']).catch(() => '')).split('\n').slice(1)) {
      const id = line.trim().split(/\s+/)[0];
      if (id) await ctr(['tasks', 'delete', id]).catch(() => undefined);
    }
  };
  const removeBridge = () => {
    try {
      execFileSync('ip', ['link', 'delete', bridge], { stdio: 'ignore' });
    } catch {
      /* not there */
    }
  };

  const stop = async () => {
    for (const s of sockets) s.destroy();
    await Promise.all(forwards.map((f) => new Promise((r) => f.close(r))));
    if (started.kubelet) {
      // pods bound here: deleted through the API while the kubelet still runs, so it stops their containers
      // and tears down their networks the normal way
      try {
        const pods = await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${REAL_NODE_NAME}` });
        await Promise.all(
          pods.items.map((p) =>
            core
              .deleteNamespacedPod({
                name: p.metadata!.name!,
                namespace: p.metadata!.namespace!,
                gracePeriodSeconds: 0,
              })
              .catch(() => undefined),
          ),
        );
        await waitUntil(
          'pods on the real node to be gone',
          async () =>
            (await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${REAL_NODE_NAME}` })).items.length ===
            0,
          60_000,
        );
      } catch {
        /* the control plane may be gone already: the containers are killed below */
      }
      await stopProcess(started.kubelet.child);
      unmountUnder(d('kubelet'));
    }
    if (started['workload-controllers']) await stopProcess(started['workload-controllers'].child);
    if (started.containerd) {
      await killAllTasks();
      await stopProcess(started.containerd.child);
    }
    await core.deleteNode({ name: REAL_NODE_NAME }).catch(() => undefined);
    removeBridge();
    for (const name of ['kubelet', 'containerd', 'workload-controllers']) fs.rmSync(pidFile(o, name), { force: true });
  };

  try {
    removeBridge(); // one left by an interrupted run would carry its old address
    // the pod bridge exists before the kubelet: its address is the node's InternalIP (a kubelet refuses a
    // loopback node IP), and the CNI bridge plugin adopts a bridge that already has the gateway address
    for (const args of [
      ['link', 'add', 'name', bridge, 'type', 'bridge'],
      ['addr', 'add', `${gateway}/24`, 'dev', bridge],
      ['link', 'set', bridge, 'up'],
    ]) {
      execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    }
    started.containerd = startLogged('containerd', ['--config', d('containerd.toml')], logs.containerd!);
    fs.writeFileSync(pidFile(o, 'containerd'), String(started.containerd.child.pid));
    await waitUntil(
      'containerd',
      async () =>
        fs.existsSync(sock) &&
        (await ctr(['version']).then(
          () => true,
          () => false,
        )),
      60_000,
      logs.containerd,
    );
    await killAllTasks(); // containers of an interrupted run on this root
    // a node of an earlier run by the same name would keep its old status: start clean
    await core.deleteNode({ name: REAL_NODE_NAME }).catch(() => undefined);
    started.kubelet = startLogged(
      kubelet,
      [
        `--config=${d('kubelet-config.json')}`,
        `--kubeconfig=${o.kubeconfigPath}`,
        `--root-dir=${d('kubelet')}`,
        `--cert-dir=${d('kubelet', 'pki')}`,
        `--hostname-override=${REAL_NODE_NAME}`,
        `--node-ip=${gateway}`,
        `--node-labels=${REAL_NODE_LABEL.key}=${REAL_NODE_LABEL.value}`,
        '--v=1',
      ],
      logs.kubelet!,
    );
    fs.writeFileSync(pidFile(o, 'kubelet'), String(started.kubelet.child.pid));
    await waitUntil(
      `node ${REAL_NODE_NAME} Ready`,
      async () => {
        if (started.kubelet!.child.exitCode !== null) {
          throw new Error(`the kubelet exited (${started.kubelet!.child.exitCode}); see ${logs.kubelet}`);
        }
        const node = await core.readNode({ name: REAL_NODE_NAME }).catch(() => undefined);
        return !!node?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      },
      120_000,
      logs.kubelet,
    );
    if (o.workloadControllers) {
      started['workload-controllers'] = startLogged(
        path.join(o.workloadControllers.binDir, 'kube-controller-manager'),
        [
          `--kubeconfig=${o.kubeconfigPath}`,
          `--authentication-kubeconfig=${o.kubeconfigPath}`,
          `--authorization-kubeconfig=${o.kubeconfigPath}`,
          '--controllers=deployment-controller,replicaset-controller',
          '--leader-elect=false',
          '--bind-address=127.0.0.1',
          `--secure-port=${o.basePort + 2}`,
          `--cert-dir=${d('workload-controllers-certs')}`,
          '--use-service-account-credentials=false',
          '--v=1',
        ],
        logs['workload-controllers']!,
      );
      fs.writeFileSync(pidFile(o, 'workload-controllers'), String(started['workload-controllers'].child.pid));
    }
  } catch (e) {
    await stop();
    throw e;
  }

  return {
    name: REAL_NODE_NAME,
    gateway,
    placement: {
      nodeSelector: { [REAL_NODE_LABEL.key]: REAL_NODE_LABEL.value },
      tolerations: [
        { key: REAL_NODE_LABEL.key, operator: 'Equal', value: REAL_NODE_LABEL.value, effect: 'NoSchedule' },
      ],
    },
    ctr,
    runningContainers,
    async forward(port: number) {
      const server = net.createServer((client) => {
        const upstream = net.connect(port, '127.0.0.1');
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on('close', () => sockets.delete(s));
          s.on('error', () => s.destroy());
        }
        client.pipe(upstream).pipe(client);
      });
      forwards.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, gateway, resolve);
      });
      return (server.address() as net.AddressInfo).port;
    },
    logs,
    stop,
  };
}
