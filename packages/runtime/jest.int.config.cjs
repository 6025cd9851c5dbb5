// Integration specs (*.int.spec.ts) against the S3 server of tools/services/s3-server.sh:
//   eval "$(tools/services/s3-server.sh start)" && npx jest -c packages/runtime/jest.int.config.cjs
// One worker: specs share the server (and may stop and restart it).
module.exports = {
  displayName: 'runtime:int',
  preset: '../../jest.preset.cjs',
  rootDir: __dirname,
  testMatch: ['<rootDir>/src/**/*.int.spec.ts'],
  testPathIgnorePatterns: ['/node_modules/'],
  testTimeout: 120_000,
  maxWorkers: 1,
};
