// The end-to-end suite: it spawns the BUILT CLI (apps/cli/bin/zxbackup.cjs), so it runs from
// the `e2e` target, which builds cli first. Named jest.e2e.config.cjs (not jest.config.cjs) so
// that the @nx/jest plugin infers no unit `test` target for this project.
module.exports = {
  displayName: 'cli-e2e',
  preset: '../../jest.preset.cjs',
  rootDir: __dirname,
  testMatch: ['<rootDir>/src/**/*.e2e.ts'],
  // Each file drives real processes on its own corpus and backup path: two files at a time.
  maxWorkers: 2,
  testTimeout: 240_000,
  slowTestThreshold: 60,
};
