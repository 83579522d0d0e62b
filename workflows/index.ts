/** Workflow entry points registered on task queue `tao` (names are public API). */
export { taoRound } from './tao-round.js';
export { taoFlywheel } from './tao-flywheel.js';
