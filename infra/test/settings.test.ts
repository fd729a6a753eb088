// Reading the context: defaults, types, per-stage blocks and validation messages.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_LAMBDA_ZIP_DIR,
  DEFAULTS,
  MAX_USER_QUOTA_LIMIT,
  MAX_USER_QUOTA_WINDOW_SECONDS,
  readSettings,
  SettingsError,
  stackName,
} from '../lib/settings.ts';

const read = (context: Record<string, unknown>) => readSettings((key) => context[key]);

describe('settings', () => {
  it('default to a dev stage on arm64 reading cargo-lambda output', () => {
    const s = read({});
    assert.equal(s.stage, 'dev');
    assert.equal(s.production, false);
    assert.equal(s.architecture, 'arm64');
    assert.match(DEFAULT_LAMBDA_ZIP_DIR, /[/\\]target[/\\]lambda$/);
    assert.equal(s.lambdaZipDir, DEFAULT_LAMBDA_ZIP_DIR);
    assert.equal(s.maxReceiveCount, 5);
    assert.equal(s.processor.batchSize, DEFAULTS.processorBatchSize);
    assert.equal(stackName(s), 'ScorePipeline-dev');
  });

  it('accept numbers and booleans as strings (from -c) or JSON (from cdk.json)', () => {
    assert.equal(read({ processorBatchSize: '25' }).processor.batchSize, 25);
    assert.equal(read({ processorBatchSize: 25 }).processor.batchSize, 25);
    const tokens = { jwtIssuer: 'i', jwtAudience: 'a', jwtPublicKeyPem: PEM };
    assert.equal(read({ ...tokens, production: 'true' }).production, true);
    assert.equal(read({ ...tokens, production: true }).production, true);
    assert.equal(read({ production: 'false' }).production, false);
  });

  it('prefer top-level context over the stage block over the defaults', () => {
    const stages = { qa: { notifierMemoryMb: 512, processorMemoryMb: 1024 } };
    const s = read({ stage: 'qa', stages, processorMemoryMb: 2048 });
    assert.equal(s.notifier.memoryMb, 512);
    assert.equal(s.processor.memoryMb, 2048);
    assert.equal(s.ingest.memoryMb, DEFAULTS.ingestMemoryMb);
  });

  it('treat prod and production as production stages', () => {
    assert.equal(read({ stage: 'prod', jwtIssuer: 'i', jwtAudience: 'a', jwtPublicKeyPem: PEM }).production, true);
    assert.equal(read({ stage: 'production', jwtIssuer: 'i', jwtAudience: 'a', jwtPublicKeyPem: PEM }).production, true);
    assert.equal(read({ stage: 'staging' }).production, false);
  });

  it('name the context key and the problem in every refusal', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ stage: 'Prod_1' }, /context "stage"/],
      [{ architecture: 'arm' }, /context "architecture": "arm" must be arm64 or x86_64/],
      [{ processorTimeoutSeconds: 'soon' }, /context "processorTimeoutSeconds": expected an integer/],
      [{ processorTimeoutSeconds: 901 }, /outside 1\.\.900/],
      [{ ingestMemoryMb: 64 }, /context "ingestMemoryMb": 64 is outside 128\.\.10240/],
      [{ logRetentionDays: 10 }, /context "logRetentionDays": 10 is not a CloudWatch Logs retention/],
      [{ production: 'yes' }, /context "production": expected true or false/],
      [{ jwtAlgorithm: 'none' }, /context "jwtAlgorithm"/],
      [{ jwtPublicKeyPem: 'not a key' }, /not a PEM public key/],
      [{ jwtPublicKeyPem: PEM, jwtPublicKeyFile: '/x.pem' }, /give one of/],
      [{ jwtJwksUrl: 'http://idp.example/jwks.json' }, /context "jwtJwksUrl".*https/],
    ];
    for (const [context, message] of cases) {
      assert.throws(() => read(context), (e: unknown) => e instanceof SettingsError && message.test(e.message), JSON.stringify(context));
    }
  });

  it('default the per-user quota to 120 submissions per 60 s', () => {
    const s = read({});
    assert.equal(s.userQuotaLimit, 120);
    assert.equal(s.userQuotaWindowSeconds, 60);
    assert.equal(DEFAULTS.userQuotaLimit, 120);
    assert.equal(DEFAULTS.userQuotaWindowSeconds, 60);
  });

  it('take the quota from context, as strings, JSON or a stage block, 0 turning it off', () => {
    assert.equal(read({ userQuotaLimit: '500' }).userQuotaLimit, 500);
    assert.equal(read({ userQuotaLimit: 0 }).userQuotaLimit, 0);
    assert.equal(read({ userQuotaLimit: MAX_USER_QUOTA_LIMIT }).userQuotaLimit, 10_000);
    assert.equal(read({ userQuotaWindowSeconds: '1' }).userQuotaWindowSeconds, 1);
    assert.equal(read({ userQuotaWindowSeconds: 3600 }).userQuotaWindowSeconds, 3600);
    assert.equal(read({ userQuotaWindowSeconds: MAX_USER_QUOTA_WINDOW_SECONDS }).userQuotaWindowSeconds, 86_400);
    const s = read({ stage: 'qa', stages: { qa: { userQuotaLimit: 30, userQuotaWindowSeconds: 600 } } });
    assert.equal(s.userQuotaLimit, 30);
    assert.equal(s.userQuotaWindowSeconds, 600);
  });

  it('refuse quota settings that are not integers or out of range', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ userQuotaLimit: -1 }, /^context "userQuotaLimit": -1 is outside 0\.\.10000$/],
      [{ userQuotaLimit: '10001' }, /^context "userQuotaLimit": 10001 is outside 0\.\.10000$/],
      [{ userQuotaLimit: 'many' }, /^context "userQuotaLimit": expected an integer, got "many"$/],
      [{ userQuotaLimit: 1.5 }, /^context "userQuotaLimit": expected an integer, got 1\.5$/],
      [{ userQuotaWindowSeconds: 0 }, /^context "userQuotaWindowSeconds": 0 is outside 1\.\.86400$/],
      [{ userQuotaWindowSeconds: '86401' }, /^context "userQuotaWindowSeconds": 86401 is outside 1\.\.86400$/],
      [{ userQuotaWindowSeconds: '1m' }, /^context "userQuotaWindowSeconds": expected an integer, got "1m"$/],
    ];
    for (const [context, message] of cases) {
      assert.throws(() => read(context), (e: unknown) => e instanceof SettingsError && message.test(e.message), JSON.stringify(context));
    }
  });

  it('list the token settings still missing', () => {
    assert.deepEqual(read({}).missingJwtSettings, ['jwtPublicKeyFile (or jwtPublicKeyPem, or jwtJwksUrl)', 'jwtIssuer', 'jwtAudience']);
    assert.deepEqual(read({ jwtAlgorithm: 'hs256', jwtIssuer: 'i' }).missingJwtSettings, ['jwtSecret', 'jwtAudience']);
    assert.deepEqual(read({ jwtIssuer: 'i', jwtAudience: 'a', jwtPublicKeyPem: PEM }).missingJwtSettings, []);
    assert.deepEqual(read({ jwtIssuer: 'i', jwtAudience: 'a', jwtJwksUrl: 'https://idp/jwks' }).missingJwtSettings, []);
  });
});

const PEM = '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----';
