#!/usr/bin/env node
// The `brokerflow` command: runs the TypeScript CLI through tsx.
require('tsx/cjs');
const { runCli } = require('../client/cli/main.ts');
runCli(process.argv.slice(2)).then((code) => process.exit(code));
