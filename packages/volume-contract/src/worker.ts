/**
 * `@zxbackup/volume-contract/worker`: what a volume's worker threads share with it, without
 * loading the rest of the package (its codecs): `headLength` and `openSourceSync`.
 */
export { headLength, type HeadEnd } from './lib/head';
export { openSourceSync } from './lib/source-file';
