/**
 * The promotion gate and where a promoted model is recorded. Pure, workflow-safe.
 */
import type { RunSpec } from '../common/run-spec.js';

export interface GateDecision {
  passed: boolean;
  reason: string;
}

/** The registry a round promotes into: `registry.uri`, else `<artifacts>/registry`. */
export function registryOf(spec: Pick<RunSpec, 'registry' | 'artifacts'>): string {
  return spec.registry?.uri ?? spec.artifacts.uri.replace(/\/+$/, '') + '/registry';
}

/** Promote only if tuned beats base by more than the configured margin (and promotion is enabled). */
export function decideGate(spec: RunSpec, improvement: number): GateDecision {
  const min = spec.gate.minImprovement;
  if (!Number.isFinite(improvement)) return { passed: false, reason: 'evaluation produced no comparable scores' };
  if (improvement <= min) {
    return { passed: false, reason: `tuned improved by ${improvement.toFixed(4)}, not more than the required ${min}` };
  }
  if (!spec.gate.promote)
    return { passed: false, reason: 'gate passed but promotion is disabled (gate.promote=false)' };
  return { passed: true, reason: `tuned improved by ${improvement.toFixed(4)} > ${min}` };
}
