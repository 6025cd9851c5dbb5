// Integration specs (`*.int.spec.ts`) against the real servers that tools/services/ starts.
module.exports = {
  displayName: 'scanners-int',
  preset: '../../jest.preset.cjs',
  rootDir: __dirname,
  testMatch: ['<rootDir>/src/**/*.int.spec.ts'],
  testTimeout: 60_000,
};
