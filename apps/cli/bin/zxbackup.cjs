#!/usr/bin/env node
// The installed `zxbackup` command: runs the built CLI (build with `npx nx run cli:build`).
require('../dist/main.js');
