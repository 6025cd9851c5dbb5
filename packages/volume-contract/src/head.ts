/**
 * `@zxbackup/volume-contract/head`: `headLength` alone, for worker threads that must not load
 * the package's codecs.
 */
export { headLength, type HeadEnd } from './lib/head';
