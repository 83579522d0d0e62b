/** `createActivities(deps)`: the worker passes real clients; tests pass their own (dependency injection). */
import { createFlywheelActivities, type FlywheelDeps } from './flywheel.js';
import { createPreflightActivities, type PreflightDeps } from './preflight.js';
import { createRegistryActivities, type RegistryDeps } from './promote.js';
import { createRunStage, type StageDeps } from './run-stage.js';

export type ActivityDeps = StageDeps & RegistryDeps & FlywheelDeps & PreflightDeps;

export function createActivities(deps: ActivityDeps) {
  return {
    runStage: createRunStage(deps),
    ...createRegistryActivities(deps),
    ...createFlywheelActivities(deps),
    ...createPreflightActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
