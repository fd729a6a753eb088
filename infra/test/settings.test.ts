// Reading the context: defaults, types, per-stage blocks and validation messages.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_LAMBDA_ZIP_DIR,
  DEFAULTS,
  defaultRankIndexMaxEcpuPerSecond,
  MAX_CACHE_ECPU_PER_SECOND,
  MAX_RANKER_BATCH_SIZE,
  MAX_SUBMISSIONS_PER_REQUEST,
  MAX_USER_QUOTA_LIMIT,
  MAX_USER_QUOTA_WINDOW_SECONDS,
  MIN_CACHE_ECPU_PER_SECOND,
  RANK_INDEX_ECPUS_PER_SUBMISSION,
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
      [{ quotaCounter: 'memory' }, /context "quotaCounter": "memory" must be cache or table/],
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

  it('count the quota in the cache by default, or in the table, from context as strings, JSON or a stage block', () => {
    assert.equal(read({}).quotaCounter, 'cache');
    assert.equal(DEFAULTS.quotaCounter, 'cache');
    assert.equal(read({ quotaCounter: 'table' }).quotaCounter, 'table');
    assert.equal(read({ quotaCounter: 'cache' }).quotaCounter, 'cache');
    assert.equal(read({ quotaCounter: '' }).quotaCounter, 'cache', 'an empty -c value is the default');
    assert.equal(read({ stage: 'qa', stages: { qa: { quotaCounter: 'table' } } }).quotaCounter, 'table');
    assert.equal(read({ stage: 'qa', stages: { qa: { quotaCounter: 'table' } }, quotaCounter: 'cache' }).quotaCounter, 'cache', '-c wins');
    const prod = read({ stage: 'prod', jwtIssuer: 'i', jwtAudience: 'a', jwtPublicKeyPem: PEM });
    assert.equal(prod.quotaCounter, 'cache', 'the same default on production stages');
  });

  it('refuse a quota counter other than cache or table', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ quotaCounter: 'redis' }, /^context "quotaCounter": "redis" must be cache or table$/],
      [{ quotaCounter: 'Table' }, /^context "quotaCounter": "Table" must be cache or table$/],
      [{ quotaCounter: 'dynamodb' }, /^context "quotaCounter": "dynamodb" must be cache or table$/],
      [{ quotaCounter: true }, /^context "quotaCounter": expected a string, got true$/],
      [{ stage: 'qa', stages: { qa: { quotaCounter: 'none' } } }, /^context "quotaCounter": "none" must be cache or table$/],
    ];
    for (const [context, message] of cases) {
      assert.throws(() => read(context), (e: unknown) => e instanceof SettingsError && message.test(e.message), JSON.stringify(context));
    }
  });

  it('leave API access logs off by default; turn them on with true, from context as strings, JSON or a stage block', () => {
    assert.equal(read({}).apiAccessLogs, false);
    assert.equal(DEFAULTS.apiAccessLogs, false);
    const prod = read({ stage: 'prod', jwtIssuer: 'i', jwtAudience: 'a', jwtPublicKeyPem: PEM });
    assert.equal(prod.apiAccessLogs, false, 'off on production stages too');
    assert.equal(read({ apiAccessLogs: 'true' }).apiAccessLogs, true);
    assert.equal(read({ apiAccessLogs: true }).apiAccessLogs, true);
    assert.equal(read({ apiAccessLogs: 'false' }).apiAccessLogs, false);
    assert.equal(read({ apiAccessLogs: false }).apiAccessLogs, false);
    assert.equal(read({ apiAccessLogs: '' }).apiAccessLogs, false, 'an empty -c value is the default');
    assert.equal(read({ stage: 'qa', stages: { qa: { apiAccessLogs: true } } }).apiAccessLogs, true);
    assert.equal(read({ stage: 'qa', stages: { qa: { apiAccessLogs: true } }, apiAccessLogs: 'false' }).apiAccessLogs, false, '-c wins');
  });

  it('refuse an apiAccessLogs value other than true or false', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ apiAccessLogs: 'on' }, /^context "apiAccessLogs": expected true or false, got "on"$/],
      [{ apiAccessLogs: 'off' }, /^context "apiAccessLogs": expected true or false, got "off"$/],
      [{ apiAccessLogs: 'TRUE' }, /^context "apiAccessLogs": expected true or false, got "TRUE"$/],
      [{ apiAccessLogs: 1 }, /^context "apiAccessLogs": expected true or false, got 1$/],
      [{ stage: 'qa', stages: { qa: { apiAccessLogs: 'yes' } } }, /^context "apiAccessLogs": expected true or false, got "yes"$/],
    ];
    for (const [context, message] of cases) {
      assert.throws(() => read(context), (e: unknown) => e instanceof SettingsError && message.test(e.message), JSON.stringify(context));
    }
  });

  it('default the ranker, the boards function and the rank index', () => {
    const s = read({});
    assert.deepEqual(s.ranker, { memoryMb: 256, timeoutSeconds: 30, batchSize: 100, batchingWindowSeconds: 1, maxRecordAgeSeconds: 6 * 3600 });
    assert.deepEqual(s.boards, { memoryMb: 256, timeoutSeconds: 10 });
    assert.deepEqual(s.rankIndex, { maxDataStorageGb: 5, maxEcpuPerSecond: 600_000, snapshotRetentionDays: 1 });
    assert.equal(s.rankerIteratorAgeAlarmSeconds, 300);
    const prod = read({ stage: 'prod', jwtIssuer: 'i', jwtAudience: 'a', jwtPublicKeyPem: PEM });
    assert.equal(prod.rankIndex.snapshotRetentionDays, 7, 'production keeps a week of snapshots');
  });

  it('take the ranker, boards and rank index settings from context, as strings, JSON or a stage block', () => {
    const s = read({
      stage: 'qa',
      stages: { qa: { rankerBatchSize: 250, rankIndexMaxDataStorageGb: 2 } },
      rankerMemoryMb: '512',
      rankerTimeoutSeconds: 60,
      rankerBatchingWindowSeconds: '0',
      rankerMaxRecordAgeSeconds: '86400',
      boardsMemoryMb: 384,
      boardsTimeoutSeconds: '5',
      rankIndexMaxEcpuPerSecond: '1000',
      rankIndexSnapshotRetentionDays: 35,
      rankerIteratorAgeAlarmSeconds: '600',
    });
    assert.deepEqual(s.ranker, { memoryMb: 512, timeoutSeconds: 60, batchSize: 250, batchingWindowSeconds: 0, maxRecordAgeSeconds: 86_400 });
    assert.deepEqual(s.boards, { memoryMb: 384, timeoutSeconds: 5 });
    assert.deepEqual(s.rankIndex, { maxDataStorageGb: 2, maxEcpuPerSecond: 1000, snapshotRetentionDays: 35 });
    assert.equal(s.rankerIteratorAgeAlarmSeconds, 600);
  });

  it('cap the rank index ECPUs by what the API throttle admits, unless given', () => {
    // The rule's parts: a full batch request (shared/src/limits.rs) at 12 ECPUs a submission.
    assert.equal(MAX_SUBMISSIONS_PER_REQUEST, 100);
    assert.equal(RANK_INDEX_ECPUS_PER_SUBMISSION, 12);
    assert.equal(DEFAULTS.apiRateLimit, 500);
    assert.equal(read({}).rankIndex.maxEcpuPerSecond, 600_000, '500 requests/s x 100 x 12');
    assert.equal(defaultRankIndexMaxEcpuPerSecond(DEFAULTS.apiRateLimit), 600_000);
    assert.equal(read({ apiRateLimit: 10 }).rankIndex.maxEcpuPerSecond, 12_000);
    assert.equal(read({ apiRateLimit: '2000' }).rankIndex.maxEcpuPerSecond, 2_400_000, 'from -c, as a string');
    assert.equal(read({ stage: 'qa', stages: { qa: { apiRateLimit: 1 } } }).rankIndex.maxEcpuPerSecond, 1_200, 'from a stage block');
    // Clamped into what ElastiCache accepts: 12,500 requests/s reach the maximum exactly.
    assert.equal(read({ apiRateLimit: 12_500 }).rankIndex.maxEcpuPerSecond, MAX_CACHE_ECPU_PER_SECOND);
    assert.equal(read({ apiRateLimit: 12_501 }).rankIndex.maxEcpuPerSecond, MAX_CACHE_ECPU_PER_SECOND);
    assert.equal(read({ apiRateLimit: 1_000_000 }).rankIndex.maxEcpuPerSecond, 15_000_000);
    assert.equal(defaultRankIndexMaxEcpuPerSecond(0), MIN_CACHE_ECPU_PER_SECOND, 'never below the minimum');
    assert.equal(MIN_CACHE_ECPU_PER_SECOND, 1_000);
    // An explicit cap wins over the rule, whatever the throttle, and is still validated.
    assert.equal(read({ rankIndexMaxEcpuPerSecond: 10_000 }).rankIndex.maxEcpuPerSecond, 10_000);
    assert.equal(read({ apiRateLimit: 10, rankIndexMaxEcpuPerSecond: '50000' }).rankIndex.maxEcpuPerSecond, 50_000);
    assert.equal(read({ apiRateLimit: 1_000_000, rankIndexMaxEcpuPerSecond: 1_000 }).rankIndex.maxEcpuPerSecond, 1_000);
    const staged = read({ stage: 'qa', apiRateLimit: 10, stages: { qa: { rankIndexMaxEcpuPerSecond: 2_000 } } });
    assert.equal(staged.rankIndex.maxEcpuPerSecond, 2_000, 'a cap in the stage block wins over the rule too');
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ rankIndexMaxEcpuPerSecond: 999 }, /^context "rankIndexMaxEcpuPerSecond": 999 is outside 1000\.\.15000000$/],
      [{ apiRateLimit: 10, rankIndexMaxEcpuPerSecond: 15_000_001 }, /^context "rankIndexMaxEcpuPerSecond": 15000001 is outside 1000\.\.15000000$/],
      [{ apiRateLimit: 0 }, /^context "apiRateLimit": 0 is outside 1\.\.1000000$/],
    ];
    for (const [context, message] of cases) {
      assert.throws(() => read(context), (e: unknown) => e instanceof SettingsError && message.test(e.message), JSON.stringify(context));
    }
  });

  it('refuse ranker, boards and rank index settings out of range', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ rankerTimeoutSeconds: 4 }, /^context "rankerTimeoutSeconds": 4 is outside 5\.\.900$/],
      [{ rankerBatchSize: 0 }, /^context "rankerBatchSize": 0 is outside 1\.\.1000$/],
      [{ rankerBatchSize: MAX_RANKER_BATCH_SIZE + 1 }, /^context "rankerBatchSize": 1001 is outside 1\.\.1000$/],
      [{ rankerBatchingWindowSeconds: 301 }, /^context "rankerBatchingWindowSeconds": 301 is outside 0\.\.300$/],
      [{ rankerMaxRecordAgeSeconds: 59 }, /^context "rankerMaxRecordAgeSeconds": 59 is outside 60\.\.86400$/],
      [{ rankerMaxRecordAgeSeconds: -1 }, /^context "rankerMaxRecordAgeSeconds": -1 is outside 60\.\.86400$/],
      [{ rankerMemoryMb: 64 }, /^context "rankerMemoryMb": 64 is outside 128\.\.10240$/],
      [{ boardsTimeoutSeconds: 30 }, /^context "boardsTimeoutSeconds": 30 is outside 1\.\.29$/],
      [{ rankIndexMaxDataStorageGb: 5001 }, /^context "rankIndexMaxDataStorageGb": 5001 is outside 1\.\.5000$/],
      [{ rankIndexMaxEcpuPerSecond: 15_000_001 }, /^context "rankIndexMaxEcpuPerSecond": 15000001 is outside 1000\.\.15000000$/],
      [{ rankIndexSnapshotRetentionDays: 36 }, /^context "rankIndexSnapshotRetentionDays": 36 is outside 1\.\.35$/],
      [{ rankerIteratorAgeAlarmSeconds: 'soon' }, /^context "rankerIteratorAgeAlarmSeconds": expected an integer, got "soon"$/],
      [{ rankerIteratorAgeAlarmSeconds: 600, rankerMaxRecordAgeSeconds: 600 }, /^context "rankerIteratorAgeAlarmSeconds": 600 must be below rankerMaxRecordAgeSeconds \(600\)/],
      [{ stage: 'qa--2' }, /^context "stage": "qa--2" must not hold "--" or end with "-"/],
      [{ stage: 'qa-' }, /^context "stage": "qa-" must not hold "--" or end with "-"/],
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
