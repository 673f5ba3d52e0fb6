// tsc compiles only TypeScript; Lua scripts and SQL migrations live beside their code and are copied
// into dist/ at the same relative paths.
import { cpSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const ROOTS = ['api', 'workers', 'relay-ingest', 'shared', 'database', 'dashboards'];
const ASSET = /\.(lua|sql|html|css|svg|json)$/;

function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (ASSET.test(name)) {
      mkdirSync(path.join('dist', dir), { recursive: true });
      cpSync(p, path.join('dist', p));
    }
  }
}
for (const root of ROOTS) {
  try {
    statSync(root);
  } catch {
    continue;
  }
  walk(root);
}
