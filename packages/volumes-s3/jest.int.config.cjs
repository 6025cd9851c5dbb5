// Integration specs (*.int.spec.ts) against the S3 server of tools/services/s3-server.sh:
//   eval "$(tools/services/s3-server.sh start)" && npx jest -c packages/volumes-s3/jest.int.config.cjs
// One worker: the outage spec stops and restarts the server.
module.exports = {
  displayName: 'volumes-s3:int',
  preset: '../../jest.preset.cjs',
  rootDir: __dirname,
  testMatch: ['<rootDir>/src/**/*.int.spec.ts'],
  testPathIgnorePatterns: ['/node_modules/'],
  testTimeout: 120_000,
  maxWorkers: 1,
};
