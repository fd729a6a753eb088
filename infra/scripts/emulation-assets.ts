// node --import tsx scripts/emulation-assets.ts DIR
// What a local emulation of the deployed system synthesizes the dev stack with, offline and
// without a Rust build (like scripts/dummy-assets.ts):
//
//   DIR/zips/<bin>/bootstrap.zip  arm64 dummy zips (test/support/dummy-assets.ts)
//   DIR/jwt-private.pem           a fresh ES256 (P-256) private key, PKCS#8 PEM: signs test tokens
//   DIR/jwt-public.pem            its public key, SPKI PEM: what the stack deploys
//   DIR/context.json              the CDK context to synthesize with (absolute paths)
//
// Then, from infra/: node_modules/.bin/cdk synth --no-notices -c KEY=VALUE ... (one -c per entry
// of context.json). The private key never goes into the template; keep it out of the repository.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeDummyZips } from '../test/support/dummy-assets.ts';

/** The token settings the emulation's ingest function checks (and its test tokens carry). */
const EMULATION_JWT = {
  jwtAlgorithm: 'ES256',
  jwtIssuer: 'https://issuer.emulated.test/',
  jwtAudience: 'score-api',
} as const;

const [arg, ...rest] = process.argv.slice(2);
if (arg === undefined || rest.length > 0) {
  console.error('usage: node --import tsx scripts/emulation-assets.ts DIR');
  process.exit(2);
}
const dir = path.resolve(arg);
fs.mkdirSync(dir, { recursive: true });

const zipDir = writeDummyZips(path.join(dir, 'zips'), 'arm64');

const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const publicKeyFile = path.join(dir, 'jwt-public.pem');
// Owner-only (also when an earlier run left the file): it signs tokens the emulated API accepts.
const privateKeyFile = path.join(dir, 'jwt-private.pem');
fs.writeFileSync(privateKeyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
fs.chmodSync(privateKeyFile, 0o600);
fs.writeFileSync(publicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }));

const context = { ...EMULATION_JWT, jwtPublicKeyFile: publicKeyFile, lambdaZipDir: zipDir };
fs.writeFileSync(path.join(dir, 'context.json'), `${JSON.stringify(context, null, 2)}\n`);
