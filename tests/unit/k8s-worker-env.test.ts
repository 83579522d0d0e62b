/** The worker's Kubernetes settings from its environment: on only when configured, bad values named. */
import { KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { defaultDeps, kubernetesExecutorFromEnv } from '../../workers/create-worker.js';
import { stageTemplatesFromEnv } from '../../workers/config.js';

const kubeConfig = new KubeConfig();
kubeConfig.loadFromClusterAndUser({ name: 'c', server: 'https://127.0.0.1:1', skipTLSVerify: false }, { name: 'u' });
const base = { TAO_EXECUTOR_NAMESPACE: 'tao', TAO_STAGE_IMAGE: 'img:1' };

describe('kubernetesExecutorFromEnv', () => {
  it('gives no executor without TAO_EXECUTOR_NAMESPACE, and one for that namespace with it', () => {
    expect(kubernetesExecutorFromEnv({ kubeConfig }, {})).toBeUndefined();
    const ex = kubernetesExecutorFromEnv({ kubeConfig }, base);
    expect(ex?.kind).toBe('kubernetes');
  });

  it.each([
    [
      'TAO_PENDING_GRACE_SECONDS',
      'soon',
      /TAO_PENDING_GRACE_SECONDS: must be a positive number of seconds, got "soon"/,
    ],
    ['TAO_PENDING_TIMEOUT_SECONDS', '-5', /TAO_PENDING_TIMEOUT_SECONDS: must be a positive number/],
    ['TAO_IMAGE_PULL_GRACE_SECONDS', '0', /TAO_IMAGE_PULL_GRACE_SECONDS: must be a positive number/],
    ['TAO_STREAM_LOGS', 'maybe', /TAO_STREAM_LOGS: must be true or false, got "maybe"/],
    ['TAO_STAGE_NODE_SELECTOR', '{nope', /TAO_STAGE_NODE_SELECTOR: not JSON/],
    ['TAO_STAGE_BACKOFF_LIMIT', '1.5', /TAO_STAGE_BACKOFF_LIMIT: must be an integer ≥ 0, got "1.5"/],
    ['TAO_STAGE_MAX_RESTARTS', 'x', /TAO_STAGE_MAX_RESTARTS: must be an integer ≥ 0/],
  ])('%s=%s is refused with the variable named', (name, value, message) => {
    expect(() => kubernetesExecutorFromEnv({ kubeConfig }, { ...base, [name]: value })).toThrow(message);
  });

  it('Job backstops and multi-node settings come from TAO_STAGE_* variables', () => {
    const { templates } = stageTemplatesFromEnv({
      ...base,
      TAO_STAGE_BACKOFF_LIMIT: '0',
      TAO_STAGE_ACTIVE_DEADLINE_SECONDS: '7200',
      TAO_STAGE_TTL_SECONDS: '600',
      TAO_STAGE_MAX_RESTARTS: '5',
      TAO_STAGE_RENDEZVOUS_TIMEOUT_SECONDS: '900',
      TAO_STAGE_CLUSTER_DOMAIN: 'corp.local',
    });
    expect(templates.default).toMatchObject({
      backoffLimit: 0,
      activeDeadlineSeconds: 7200,
      ttlSecondsAfterFinished: 600,
      maxRestarts: 5,
      rendezvousTimeoutSeconds: 900,
      clusterDomain: 'corp.local',
    });
  });

  it('a worker without Python (the cluster image) runs stages only as Jobs; without Kubernetes it needs Python', () => {
    const saved = { ...process.env };
    try {
      Object.assign(process.env, base, { TAO_PYTHON: '/nonexistent/python' });
      expect(Object.keys(defaultDeps({ kubeConfig }).executors)).toEqual(['kubernetes']);
      delete process.env.TAO_EXECUTOR_NAMESPACE;
      expect(() => defaultDeps({ kubeConfig })).toThrow('TAO_PYTHON: /nonexistent/python does not exist');
    } finally {
      process.env = saved;
    }
  });
});
