/**
 * `tao render <spec>`: the Kubernetes Jobs a round would create, as YAML. Names, images, resources,
 * scheduling and failure policy are exactly what the executor submits; the memo keys in the stage-spec
 * URIs depend on input contents known only at run time, so they show as `<key>`. A multi-node train
 * (`executor.resources.train.nodes` > 1) is an Indexed Job followed by its headless Service; the executor adds
 * the Service's ownerReference to the created Job (its uid exists only then), so it is not shown.
 */
import YAML from 'yaml';
import type { StageJob } from '../../activities/executors/executor.js';
import { buildJob, buildService, templateFor } from '../../activities/executors/kubernetes/job-template.js';
import { jobName } from '../../activities/job-name.js';
import { roundWorkflowId } from '../../common/constants.js';
import type { JobStage, RunSpec } from '../../common/run-spec.js';
import type { KubernetesStageConfig } from '../../activities/executors/kubernetes/job-template.js';

export function renderRound(
  spec: RunSpec,
  config: KubernetesStageConfig,
  workflowId = roundWorkflowId(spec.name, spec.round),
): string {
  const root = spec.artifacts.uri.replace(/\/+$/, '');
  const jobs: [JobStage, number | null][] = [['prepare', null]];
  for (let s = 0; s < spec.generation.shards; s++) jobs.push(['generate', s], ['score', s]);
  jobs.push(['dataset', null], ['train', null], ['evaluate', null]);
  return jobs
    .flatMap(([stage, shard]) => {
      const prefix = `${root}/stages/${stage}/<key>/`;
      const job: StageJob = {
        name: jobName({ workflowId, round: spec.round, stage, shard, generation: 0 }),
        stage,
        shard,
        // each run writes in its own attempt folder (activities/artifacts/publish.ts), named by its job
        specUri: `${prefix}attempts/<job>/stage-spec.json`,
        logUri: `${prefix}attempts/<job>/logs/attempt-1.log`,
        resources: spec.executor.resources[stage] ?? {},
        labels: {},
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
