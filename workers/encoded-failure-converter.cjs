/**
 * The failure converter that goes with the payload codec (workers/codec.ts): failure messages and stack traces
 * move out of the Failure's clear-text fields into `encodedAttributes`, a payload, so the codec encrypts them
 * like every other payload (the history shows only "Encoded failure"). The SDK's own converter with
 * `encodeCommonAttributes`; decoding needs nothing (any converter reads encodedAttributes back).
 *
 * CommonJS on purpose: the SDK takes a converter by path (`DataConverter.failureConverterPath`), require()s it
 * in clients and the activity side, and bundles it into the workflow sandbox, where workflow failures are made.
 */
/* global require, exports */
'use strict';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { DefaultFailureConverter } = require('@temporalio/common');

exports.failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
