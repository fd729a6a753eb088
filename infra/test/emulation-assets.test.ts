// scripts/emulation-assets.ts: what a local emulation synthesizes the dev stack with.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { checkBootstrap } from '../lib/lambda-zip.ts';
import { FUNCTION_BINARIES } from './support/dummy-assets.ts';
import { functionProps, INFRA_DIR, synth, TEMP_DIR } from './support/synth.ts';

describe('emulation assets', () => {
  const dir = path.join(TEMP_DIR, 'emulation');
  execFileSync(process.execPath, ['--import', 'tsx', 'scripts/emulation-assets.ts', dir], { cwd: INFRA_DIR });
  const context = JSON.parse(fs.readFileSync(path.join(dir, 'context.json'), 'utf8'));

  it('writes the context to synthesize with, paths absolute', () => {
    assert.deepEqual(context, {
      jwtAlgorithm: 'ES256',
      jwtIssuer: 'https://issuer.emulated.test/',
      jwtAudience: 'score-api',
      jwtPublicKeyFile: path.join(dir, 'jwt-public.pem'),
      lambdaZipDir: path.join(dir, 'zips'),
    });
    assert.ok(path.isAbsolute(context.jwtPublicKeyFile) && path.isAbsolute(context.lambdaZipDir));
  });

  it('writes arm64 zips for every function', () => {
    assert.deepEqual([...FUNCTION_BINARIES], ['ingest', 'processor', 'notifier', 'ranker', 'boards']);
    for (const bin of FUNCTION_BINARIES) checkBootstrap(path.join(context.lambdaZipDir, bin, 'bootstrap.zip'), 'arm64');
  });

  it('writes a P-256 key pair (PKCS#8 private, owner-only; SPKI public) whose private key signs ES256 tokens', () => {
    const privatePem = fs.readFileSync(path.join(dir, 'jwt-private.pem'), 'utf8');
    const publicPem = fs.readFileSync(context.jwtPublicKeyFile, 'utf8');
    assert.match(privatePem, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.match(publicPem, /^-----BEGIN PUBLIC KEY-----\n/);
    assert.equal(fs.statSync(path.join(dir, 'jwt-private.pem')).mode & 0o777, 0o600);
    const privateKey = crypto.createPrivateKey(privatePem);
    const publicKey = crypto.createPublicKey(publicPem);
    assert.equal(privateKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    // ES256 as JWS signs: SHA-256, the signature as r || s (64 bytes), not DER.
    const signingInput = Buffer.from('header.payload');
    const signature = crypto.sign('sha256', signingInput, { key: privateKey, dsaEncoding: 'ieee-p1363' });
    assert.equal(signature.length, 64);
    assert.ok(crypto.verify('sha256', signingInput, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature));
  });

  it('synthesizes the dev stack with that context, deploying only the public key', () => {
    const { json } = synth(context, { withTokens: false });
    const env = functionProps(json, 'ingest').Environment.Variables;
    assert.equal(env.JWT_ALGORITHM, 'ES256');
    assert.equal(env.JWT_ISSUER, context.jwtIssuer);
    assert.equal(env.JWT_AUDIENCE, context.jwtAudience);
    assert.equal(env.JWT_PUBLIC_KEY_PEM, fs.readFileSync(context.jwtPublicKeyFile, 'utf8'));
    assert.ok(!JSON.stringify(json).includes('PRIVATE KEY'), 'no private key in the template');
  });
});
