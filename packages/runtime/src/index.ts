/**
 * @zxbackup/runtime — the composition shared by the CLI and the service: it opens a backup
 * path for reading or writing (lock, metadata store, transaction ids, blob volume), builds the
 * source and restore target from their URIs, validates configuration attributes, parses
 * dates, and runs long tasks as persisted operations. It may import every package but no app.
 */
export * from './lib/errors';
export * from './lib/attributes';
export * from './lib/dates';
export * from './lib/source-uri';
export * from './lib/session';
export * from './lib/operation-runner';
