// Appends this Jest run's counts to $ZXB_TEST_TALLY (one JSON line per project run), so that
// .ci/run can print one closing line "N passed, N failed" for the whole workspace.
const fs = require('node:fs');

class TallyReporter {
  onRunComplete(_contexts, results) {
    const line = JSON.stringify({
      cwd: process.cwd(),
      passed: results.numPassedTests,
      failed: results.numFailedTests + results.numRuntimeErrorTestSuites,
      skipped: results.numPendingTests + results.numTodoTests,
    });
    fs.appendFileSync(process.env.ZXB_TEST_TALLY, line + '\n');
  }
}
module.exports = TallyReporter;
