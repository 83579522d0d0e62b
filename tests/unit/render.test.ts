import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { validateRunSpec } from '../../common/validate.js';
import { renderRound } from '../..//scripts/cli/render.js';
import { stageTemplatesFromEnv } from '../../workers/config.js';

const spec = () => {
  const r = validateRunSpec(JSON.parse(readFileSync('tests/fixtures/specs/valid/full-s3.json', 'utf8')));
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.spec;
};

describe('tao render', () => {
  it('prints every Job of the round: one per stage and per shard, with the spec resources and the env templates', () => {
    const config = stageTemplatesFromEnv({
      TAO_STAGE_IMAGE: 'reg/tao-jobs:1',
      TAO_STAGE_IMAGE_TRAIN: 'reg/tao-train:1',
      TAO_EXECUTOR_NAMESPACE: 'ml',
    });
    const jobs = YAML.parseAllDocuments(renderRound(spec(), config)).map((d) => d.toJS());
    expect(jobs).toHaveLength(1 + 8 * 2 + 3);
    expect(new Set(jobs.map((j) => j.metadata.name)).size).toBe(jobs.length);
    const train = jobs.find((j) => j.metadata.labels['tao.dev/stage'] === 'train');
    const c = train.spec.template.spec.containers[0];
    expect(c.image).toBe('reg/tao-train:1');
    expect(c.resources.limits['nvidia.com/gpu']).toBe('8');
    expect(train.metadata.namespace).toBe('ml');
    const gen = jobs.filter((j) => j.metadata.labels['tao.dev/stage'] === 'generate');
    expect(gen.map((j) => j.metadata.labels['tao.dev/shard'])).toEqual(['0', '1', '2', '3', '4', '5', '6', '7']);
    expect(gen[0].spec.template.spec.containers[0].resources.limits).toEqual({ memory: '64Gi', 'nvidia.com/gpu': '1' });
  });

  it('prints the Indexed Job of a multi-node train followed by its headless Service', () => {
    const config = stageTemplatesFromEnv({ TAO_STAGE_IMAGE: 'reg/tao-jobs:1', TAO_EXECUTOR_NAMESPACE: 'ml' });
    const s = spec();
    s.executor.resources.train = { gpu: 8, nodes: 2 };
    const docs = YAML.parseAllDocuments(renderRound(s, config)).map((d) => d.toJS());
    expect(docs).toHaveLength(1 + 8 * 2 + 3 + 1);
    const services = docs.filter((d) => d.kind === 'Service');
    expect(services).toHaveLength(1);
    const i = docs.findIndex((d) => d.kind === 'Job' && d.metadata.labels['tao.dev/stage'] === 'train');
    const [train, service] = [docs[i], docs[i + 1]];
    const name = train.metadata.name;
    expect(service).toEqual(services[0]);
    expect(train.spec).toMatchObject({ completionMode: 'Indexed', completions: 2, parallelism: 2, backoffLimit: 4 });
    expect(train.spec.template.spec.subdomain).toBe(name);
    expect(train.spec.template.spec.containers[0].command).toEqual(['python', '-m', 'tao_jobs.torchrun']);
    expect(train.spec.template.spec.containers[0].args).toContain(
      `--rdzv-endpoint=${name}-0.${name}.ml.svc.cluster.local:29500`,
    );
    expect(service).toMatchObject({
      apiVersion: 'v1',
      metadata: { name, namespace: 'ml', labels: train.metadata.labels },
      spec: { clusterIP: 'None', selector: { 'batch.kubernetes.io/job-name': name }, publishNotReadyAddresses: true },
    });
    expect(service.metadata.ownerReferences).toBeUndefined(); // added by the executor once the Job exists
    // every other stage keeps its single-pod Job
    for (const d of docs.filter((x) => x.kind === 'Job' && x !== train)) expect(d.spec.completionMode).toBeUndefined();
  });

  it("adds the baseline arms' Jobs the spec asks for, labelled with their arm, after TAO's own", () => {
    const config = stageTemplatesFromEnv({ TAO_STAGE_IMAGE: 'reg/tao-jobs:1', TAO_EXECUTOR_NAMESPACE: 'ml' });
    const s = spec();
    const plain = YAML.parseAllDocuments(renderRound(s, config)).map((d) => d.toJS());
    s.baselines = {
      labelledFineTuning: { targetTemplate: '{reference}', missingReferences: 'fail' },
      bestOfN: {},
      randomReward: { seed: 1 },
    };
    const jobs = YAML.parseAllDocuments(renderRound(s, config)).map((d) => d.toJS());
    const arm = (j: { metadata: { labels: Record<string, string> } }) => j.metadata.labels['tao.dev/arm'];
    // TAO's Jobs first, unchanged and unlabelled; then labelled 2, best-of-N 2, random reward 8 scores + 2
    expect(jobs.slice(0, plain.length)).toEqual(plain);
    expect(plain.every((j) => arm(j) === undefined)).toBe(true);
    const arms = jobs.slice(plain.length);
    expect(arms.map((j) => `${arm(j)}:${j.metadata.labels['tao.dev/stage']}`)).toEqual([
      'labelledFineTuning:prepare',
      'labelledFineTuning:train',
      'bestOfN:generate',
      'bestOfN:score',
      ...Array.from({ length: 8 }, () => 'randomReward:score'),
      'randomReward:dataset',
      'randomReward:train',
    ]);
    expect(new Set(jobs.map((j) => j.metadata.name)).size).toBe(jobs.length);
    // the pods carry the label too; an arm's train gets the round's train resources
    const armTrain = arms.find(
      (j) => arm(j) === 'labelledFineTuning' && j.metadata.labels['tao.dev/stage'] === 'train',
    );
    expect(armTrain.spec.template.metadata.labels['tao.dev/arm']).toBe('labelledFineTuning');
    expect(armTrain.spec.template.spec.containers[0].resources.limits['nvidia.com/gpu']).toBe('8');
  });

  it('refuses a malformed template setting, naming the variable', () => {
    expect(() => stageTemplatesFromEnv({ TAO_STAGE_TOLERATIONS: '{"key": 1}' })).toThrow(
      'TAO_STAGE_TOLERATIONS: must be a JSON array',
    );
    expect(() => stageTemplatesFromEnv({ TAO_STAGE_NODE_SELECTOR: 'gpu=true' })).toThrow(
      'TAO_STAGE_NODE_SELECTOR: not JSON',
    );
  });
});
