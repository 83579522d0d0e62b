/** Queries (and later signals/updates) of the round workflow: names are public API. */
import { defineQuery } from '@temporalio/workflow';
import { PROGRESS_QUERY } from '../common/constants.js';
import type { RoundProgress } from '../common/types.js';

export const progressQuery = defineQuery<RoundProgress>(PROGRESS_QUERY);
