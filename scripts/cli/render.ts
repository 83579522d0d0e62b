/**
 * `tao render <spec>`: the Kubernetes Jobs a round would create, as YAML, TAO's stages then the baseline arms
 * the spec asks for (labelled `tao.dev/arm`). Images, resources, scheduling and failure policy are exactly what
 * the executor submits; the memo keys depend on input contents known only at run time, so they show as `<key>`
 * in the stage-spec URIs, and the hash at the end of each Job name (which covers the key) differs from the
 * real one. A multi-node train (`executor.resources.train.nodes` > 1) is an Indexed Job followed by its
 * headless Service; the executor adds the Service's ownerReference to the created Job (its uid exists only
 * then), so it is not shown.
 */
import YAML from 'yaml';
import type { StageJob } from '../../activities/executors/executor.js';
import { buildJob, buildService, templateFor } from '../../activities/executors/kubernetes/job-template.js';
import { jobName } from '../../activities/job-name.js';
import { roundWorkflowId } from '../../common/constants.js';
import { armJobPlan } from '../../workflows/stage-params.js';
import type { BaselineArm, JobStage, RunSpec } from '../../common/run-spec.js';
import type { KubernetesStageConfig } from '../../activities/executors/kubernetes/job-template.js';

export function renderRound(
  spec: RunSpec,
  config: KubernetesStageConfig,
  workflowId = roundWorkflowId(spec.name, spec.round),
): string {
  const root = spec.artifacts.uri.replace(/\/+$/, '');
  const jobs: { stage: JobStage; shard: number | null; arm?: BaselineArm }[] = [{ stage: 'prepare', shard: null }];
  for (let shard = 0; shard < spec.generation.shards; shard++)
    jobs.push({ stage: 'generate', shard }, { stage: 'score', shard });
  jobs.push({ stage: 'dataset', shard: null }, { stage: 'train', shard: null }, { stage: 'evaluate', shard: null });
  jobs.push(...armJobPlan(spec)); // the arms' Jobs, in the order the round runs them
  return jobs
    .flatMap(({ stage, shard, arm }) => {
      const prefix = `${root}/stages/${stage}/<key>/`;
      const job: StageJob = {
        // an arm's stage has another key than TAO's same stage, hence another name: shown here by the arm's name
        name: jobName({ workflowId, round: spec.round, stage, shard, generation: 0, ...(arm ? { key: arm } : {}) }),
        stage,
        shard,
        // each run writes in its own attempt folder (activities/artifacts/publish.ts), named by its job
        specUri: `${prefix}attempts/<job>/stage-spec.json`,
        logUri: `${prefix}attempts/<job>/logs/attempt-1.log`,
        resources: spec.executor.resources[stage] ?? {},
        labels: {},
        ...(arm ? { arm } : {}),
      };
      const id = { namespace: config.namespace, workflowId, runId: '<run-id>', round: spec.round, key: '<key>' };
      const template = templateFor(config.templates, stage);
      const service = buildService(job, id, template);
      return [buildJob(job, id, template), ...(service ? [service] : [])].map((o) =>
        YAML.stringify(o, { aliasDuplicateObjects: false }),
      );
    })
    .join('---\n');
}
