// Sums the per-project lines written by tally-reporter.cjs and prints the closing line
// "tests: N passed, N failed, N skipped". Exits 1 when any test failed or none ran.
const fs = require('node:fs');

const file = process.argv[2];
const lines = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
const total = { passed: 0, failed: 0, skipped: 0 };
for (const line of lines) {
  const r = JSON.parse(line);
  total.passed += r.passed;
  total.failed += r.failed;
  total.skipped += r.skipped;
}
console.log(`${lines.length} jest runs`);
console.log(`tests: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
process.exit(total.failed > 0 || total.passed === 0 ? 1 : 0);
