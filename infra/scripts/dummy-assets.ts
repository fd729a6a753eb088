// node --import tsx scripts/dummy-assets.ts DIR [arm64|x86_64]
// Writes DIR/zips/<bin>/bootstrap.zip (see test/support/dummy-assets.ts) and DIR/jwt-public.pem,
// for synthesizing the app offline without a Rust build (scripts/check.sh).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { throwawayPublicKeyPem, writeDummyZips } from '../test/support/dummy-assets.ts';

const [dir, architecture = 'arm64'] = process.argv.slice(2);
if (dir === undefined || (architecture !== 'arm64' && architecture !== 'x86_64')) {
  console.error('usage: node --import tsx scripts/dummy-assets.ts DIR [arm64|x86_64]');
  process.exit(2);
}
writeDummyZips(path.join(dir, 'zips'), architecture);
fs.writeFileSync(path.join(dir, 'jwt-public.pem'), throwawayPublicKeyPem());
