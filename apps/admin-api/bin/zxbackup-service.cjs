#!/usr/bin/env node
// The installed `zxbackup-service` command: runs the built service (build with `npx nx run admin-api:build`).
require('../dist/main.js');
