// Shared Jest settings. Tests run against TypeScript sources: the custom export
// condition `@zxbackup/source` makes `@zxbackup/*` imports resolve to `src/index.ts`,
// so no package has to be built before another one's tests run.
module.exports = {
  testEnvironment: 'node',
  testEnvironmentOptions: {
    customExportConditions: ['@zxbackup/source', 'node', 'require', 'default'],
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.spec.json', diagnostics: false }],
  },
  moduleFileExtensions: ['ts', 'js', 'cjs', 'json'],
  reporters: process.env.ZXB_TEST_TALLY
    ? ['default', require.resolve('./tools/jest/tally-reporter.cjs')]
    : ['default'],
};
