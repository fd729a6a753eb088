// Everything the stack can be told through CDK context, with defaults and validation.
//
// A value is looked up first as a top-level context key (`-c key=value` on the command line or
// "context" in cdk.json), then under `stages.<stage>.<key>` in the context (so cdk.json can keep
// one block of settings per stage), then falls back to the default below. Values given with -c
// arrive as strings, values from cdk.json as JSON; both are accepted.
//
// Invalid settings stop the synth with an error naming the context key, before any resource is
// built: a typo must never deploy a stack with silently different settings.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export type Architecture = 'arm64' | 'x86_64';
export type JwtAlgorithm = 'HS256' | 'RS256' | 'ES256';
/**
 * Where the processor counts the per-user quota (`QUOTA_COUNTER`): in the cache that holds the
 * rank index (the processor then joins its VPC, which takes VPC endpoints for DynamoDB and SQS),
 * or in the quotas table (the processor stays outside the VPC).
 */
export type QuotaCounter = 'cache' | 'table';

/** Stage names that get production safeguards unless context `production` says otherwise. */
export const PRODUCTION_STAGES: readonly string[] = ['prod', 'production'];

/** SQS gives the event source at most this many messages a batch; see `MAX_PROCESSOR_BATCH_SIZE`. */
const SQS_BATCH_WITHOUT_WINDOW = 10;
/**
 * The processor is designed around batches of up to 100 messages: one users lookup of at most
 * 100 keys (one BatchGetItem call); each submission is then stored with its own conditional PutItem.
 */
export const MAX_PROCESSOR_BATCH_SIZE = 100;
/** The notifier publishes 10 rejections per PublishBatch call; larger batches just mean more calls. */
export const MAX_NOTIFIER_BATCH_SIZE = 100;
/** The longest batching window an event source mapping (SQS or a stream) accepts. */
const MAX_BATCHING_WINDOW_SECONDS = 300;
/** Lambda: the longest function timeout. */
const MAX_LAMBDA_TIMEOUT_SECONDS = 900;
/** API Gateway HTTP APIs give an integration at most 30 s; leave a second for the gateway. */
const MAX_INGEST_TIMEOUT_SECONDS = 29;
/** Lambda event source mappings: the allowed range of MaximumConcurrency. */
const MIN_MAX_CONCURRENCY = 2;
const MAX_MAX_CONCURRENCY = 1000;
/**
 * The ranker applies a whole stream batch in one round of rank index calls (three board changes
 * per record) and hands the batch back when that fails: a batch larger than this only lengthens
 * what a failure delivers again. Lambda itself takes up to 10,000 for DynamoDB streams.
 */
export const MAX_RANKER_BATCH_SIZE = 1000;
/**
 * The ranker stops working 1.5 s before its timeout (shared/src/lambda.rs DEADLINE_MARGIN) and
 * hands the batch back; what is left must hold a connection to the rank index (1 s,
 * RANK_INDEX_CONNECT_TIMEOUT) and a round of writes (1 s per call, RANK_INDEX_RESPONSE_TIMEOUT).
 */
const MIN_RANKER_TIMEOUT_SECONDS = 5;
/** Lambda's shortest maximum record age for a stream event source. */
const MIN_MAX_RECORD_AGE_SECONDS = 60;
/** DynamoDB Streams keeps a record 24 hours: a longer maximum age could never apply. */
const STREAM_RETENTION_SECONDS = 86_400;
/** ElastiCache Serverless: the range of a cache's data storage limit (GB). */
const MIN_CACHE_DATA_STORAGE_GB = 1;
const MAX_CACHE_DATA_STORAGE_GB = 5_000;
/** ElastiCache Serverless: the range of a cache's ECPU per second limit. */
export const MIN_CACHE_ECPU_PER_SECOND = 1_000;
export const MAX_CACHE_ECPU_PER_SECOND = 15_000_000;
/**
 * The most submissions one request may carry (`POST /v1/scores/batch`; shared/src/limits.rs
 * MAX_BATCH_SUBMISSIONS). Not the processor's batch (`MAX_PROCESSOR_BATCH_SIZE`), which only
 * happens to be the same size.
 */
export const MAX_SUBMISSIONS_PER_REQUEST = 100;
/**
 * The rank index ECPUs budgeted per accepted submission. Measured, worst case (every offer
 * writes): about 11 for its three leaderboard offers (32.6 µs of server time in the ranker's
 * per-board script calls, at AWS's estimator rule of one ECPU per 3 µs; docs/BENCHMARKS.md, "A
 * script call per board, and what an ECPU is", and docs/COSTS.md, the rank index's ECPUs). The
 * rest is margin for the quota counter on the same cache (`quotaCounter=cache`: about 2.4 per
 * user and processor batch, docs/COSTS.md; a batch request's submissions are all one caller's)
 * and for board reads (a page of 100 takes 28 to 37 µs of server time and answers 9 KB: 11 to 13
 * ECPUs a request, against a full batch's 1,100; docs/BENCHMARKS.md, "The rank index").
 */
export const RANK_INDEX_ECPUS_PER_SUBMISSION = 12;
/** ElastiCache Serverless: daily snapshots are kept 1 to 35 days. */
const MAX_SNAPSHOT_RETENTION_DAYS = 35;
/** SQS: the allowed range of a redrive policy's maxReceiveCount. */
const MAX_RECEIVE_COUNT_LIMIT = 1000;
/**
 * The largest per-user quota (shared/src/limits.rs MAX_USER_QUOTA_LIMIT): the processor keeps a
 * window's admitted submission ids (36 characters each) in one string set, and a DynamoDB item
 * holds at most 400 KB.
 */
export const MAX_USER_QUOTA_LIMIT = 10_000;
/** The longest quota window: a day. */
export const MAX_USER_QUOTA_WINDOW_SECONDS = 86_400;
/** The shortest HS256 secret the ingest function accepts (shared/src/config.rs). */
const MIN_HS256_SECRET_BYTES = 32;

/** The retention periods CloudWatch Logs accepts (days). */
export const VALID_LOG_RETENTION_DAYS: readonly number[] = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
  3288, 3653,
];

/** The defaults. Production stages keep logs longer. */
export const DEFAULTS = {
  stage: 'dev',
  architecture: 'arm64' as Architecture,
  ingestMemoryMb: 256,
  ingestTimeoutSeconds: 10,
  processorMemoryMb: 256,
  processorTimeoutSeconds: 30,
  processorBatchSize: 100,
  processorBatchingWindowSeconds: 2,
  processorMaxConcurrency: 10,
  notifierMemoryMb: 128,
  notifierTimeoutSeconds: 30,
  notifierBatchSize: 10,
  notifierBatchingWindowSeconds: 0,
  notifierMaxConcurrency: 5,
  // The ranker: I/O bound (rank index round trips), so little memory; 30 s holds a batch of 100
  // (300 board changes, each board's in order, boards at once) many times over.
  rankerMemoryMb: 256,
  rankerTimeoutSeconds: 30,
  rankerBatchSize: 100,
  /** Gathers a second of changes per shard: fewer, fuller batches, boards at most ~1 s behind. */
  rankerBatchingWindowSeconds: 1,
  /**
   * Six hours of retries (infinite attempts, bounded by age) for a rank index outage, well inside
   * the stream's 24 hours; older records go to the ranker failure queue (their position only).
   */
  rankerMaxRecordAgeSeconds: 6 * 3600,
  /** The boards API, like ingest: an HTTP handler in front of one store. */
  boardsMemoryMb: 256,
  boardsTimeoutSeconds: 10,
  /**
   * Caps on the serverless rank index (ElastiCache Serverless for Valkey), so that a runaway
   * client or a bug cannot grow the bill without bound: 5 GB holds millions of board entries
   * (each player's best on three boards per hero, the daily and weekly ones expiring). Past a cap
   * the cache refuses writes (storage) or throttles (ECPU); it never bills more. The ECPU cap,
   * `rankIndexMaxEcpuPerSecond`, has no fixed default: it follows `apiRateLimit`
   * (`defaultRankIndexMaxEcpuPerSecond`: 600,000 at the default 500 requests/s), so that the
   * cache does not throttle load the API admits.
   */
  rankIndexMaxDataStorageGb: 5,
  /** Daily snapshots of the rank index: the stream holds only 24 hours, so they are its backup. */
  rankIndexSnapshotRetentionDays: 1,
  productionRankIndexSnapshotRetentionDays: 7,
  /** The ranker's stream lag (IteratorAge maximum) that raises an alarm. */
  rankerIteratorAgeAlarmSeconds: 300,
  maxReceiveCount: 5,
  apiRateLimit: 500,
  apiBurstLimit: 1000,
  /**
   * API Gateway's own access log line per request, off: ingest logs each accepted submission and
   * each refused or failed request, and the Api5xx alarm and the dashboard's 4xx/5xx graph need
   * no log. On, it costs about $0.06 per million requests (the stack's ACCESS_LOG_FORMAT).
   */
  apiAccessLogs: false,
  logRetentionDays: 14,
  productionLogRetentionDays: 90,
  queueAgeAlarmSeconds: 300,
  api5xxAlarmThreshold: 1,
  processorFailedRecordsAlarmThreshold: 100,
  jwtAlgorithm: 'RS256' as JwtAlgorithm,
  userCacheTtlSeconds: 60,
  userQuotaLimit: 120,
  userQuotaWindowSeconds: 60,
  /**
   * The cache: a batch's users counted together in a few script calls, on a cache that bills
   * by the hour anyway, instead of a conditional write per user and batch. It brings the SQS interface endpoint's
   * fixed cost (README, Costs), which the quotas table avoids.
   */
  quotaCounter: 'cache' as QuotaCounter,
  rustLog: 'info',
} as const;

export interface FunctionSettings {
  readonly memoryMb: number;
  readonly timeoutSeconds: number;
}

export interface ConsumerSettings extends FunctionSettings {
  readonly batchSize: number;
  readonly batchingWindowSeconds: number;
  readonly maxConcurrency: number;
}

/** A consumer of a DynamoDB stream (the ranker): sizing plus its event source mapping. */
export interface StreamConsumerSettings extends FunctionSettings {
  readonly batchSize: number;
  readonly batchingWindowSeconds: number;
  /** Records older than this are not retried again but reported to the on-failure destination. */
  readonly maxRecordAgeSeconds: number;
}

/** The rank index: an ElastiCache Serverless (Valkey) cache. */
export interface RankIndexSettings {
  /** cacheUsageLimits.dataStorage.maximum (GB). */
  readonly maxDataStorageGb: number;
  /** cacheUsageLimits.ecpuPerSecond.maximum; by default `defaultRankIndexMaxEcpuPerSecond(apiRateLimit)`. */
  readonly maxEcpuPerSecond: number;
  /** How many days daily snapshots are kept (snapshotRetentionLimit). */
  readonly snapshotRetentionDays: number;
}

export interface JwtSettings {
  readonly algorithm: JwtAlgorithm;
  readonly issuer?: string;
  readonly audience?: string;
  /** RS256/ES256 only. */
  readonly publicKeyPem?: string;
  /** HS256 only. */
  readonly secret?: string;
  readonly leewaySeconds?: number;
  /** When set, tokens must name this key in their `kid` header (key rotation). */
  readonly keyId?: string;
  /** RS256/ES256 only: an identity provider's JWKS URL (e.g. a Cognito user pool's). */
  readonly jwksUrl?: string;
}

export interface Settings {
  readonly stage: string;
  readonly production: boolean;
  readonly architecture: Architecture;
  /** Holds `<bin>/bootstrap.zip` for each function (cargo-lambda's `target/lambda`). */
  readonly lambdaZipDir: string;
  readonly ingest: FunctionSettings;
  readonly processor: ConsumerSettings;
  readonly notifier: ConsumerSettings;
  /** Reads the submissions table's stream and keeps the rank index's boards. */
  readonly ranker: StreamConsumerSettings;
  /** Serves the leaderboard routes from the rank index. */
  readonly boards: FunctionSettings;
  readonly rankIndex: RankIndexSettings;
  readonly maxReceiveCount: number;
  readonly apiRateLimit: number;
  readonly apiBurstLimit: number;
  /**
   * Whether the HTTP API's `$default` stage writes an access log line per request (a log group
   * of its own, kept `logRetentionDays`); off by default.
   */
  readonly apiAccessLogs: boolean;
  readonly logRetentionDays: number;
  readonly alarmEmail?: string;
  readonly queueAgeAlarmSeconds: number;
  readonly api5xxAlarmThreshold: number;
  /**
   * Processor records handed back to SQS for retry in 5 minutes that raise an alarm. Retries
   * absorb the odd failure (and the dead-letter queue alarm catches retries running out), so
   * the default is one full batch: a volume of failures, not one.
   */
  readonly processorFailedRecordsAlarmThreshold: number;
  /** The ranker's stream lag (its IteratorAge maximum) that raises an alarm; below the maximum record age. */
  readonly rankerIteratorAgeAlarmSeconds: number;
  readonly jwt: JwtSettings;
  readonly userCacheTtlSeconds: number;
  /** Submissions a user may make per quota window (the processor enforces it); 0 turns the quota off. */
  readonly userQuotaLimit: number;
  /** The quota window's length; windows start at multiples of it since the epoch. */
  readonly userQuotaWindowSeconds: number;
  /** Where the processor counts the quota: the rank index's cache or the quotas table. */
  readonly quotaCounter: QuotaCounter;
  readonly rustLog: string;
  /** Settings the ingest function still needs before it can start; empty when complete. */
  readonly missingJwtSettings: readonly string[];
}

/**
 * The default of `rankIndexMaxEcpuPerSecond` (cacheUsageLimits.ecpuPerSecond.maximum): what the
 * API's throttle can ask of the cache, `apiRateLimit` x `MAX_SUBMISSIONS_PER_REQUEST` x
 * `RANK_INDEX_ECPUS_PER_SUBMISSION`, within the range ElastiCache accepts
 * (`MIN_CACHE_ECPU_PER_SECOND`..`MAX_CACHE_ECPU_PER_SECOND`). 600,000 at the default 500
 * requests/s.
 *
 * A fixed cap below that throttles the ranker and the quota counter under load the API admits:
 * at 500 requests/s of full batches the cache can be asked for 500 x 100 x 11 = 550,000 ECPU/s,
 * and even single submissions reach 500 x (11 + 2.4) = 6,700 ECPU/s; the earlier default of
 * 10,000 held only 750 to 900 accepted submissions a second. So, at the measured figure (an
 * estimate: AWS does not publish how it meters a script) and outside bursts up to
 * `apiBurstLimit`, the cap does not shape normal traffic; it bounds what a bug or a runaway (a ranker replaying a stream in a loop, a script
 * gone wrong) can spend beyond what the API admits. At the cap the cache's ECPUs cost at most
 * cap x 2,592,000 s a month x $0.0023 per million ECPUs (docs/COSTS.md): about $3,577 a month for
 * 600,000 ECPU/s. The API admits that much only at its full throttle, in full batches, around
 * the clock, where API Gateway and DynamoDB cost far more: 1.3 billion requests a month, about
 * $1,200 of API Gateway, carrying 130 billion submissions, over $80,000 of DynamoDB writes at one
 * write unit each (docs/COSTS.md's prices).
 */
export function defaultRankIndexMaxEcpuPerSecond(apiRateLimit: number): number {
  const wanted = apiRateLimit * MAX_SUBMISSIONS_PER_REQUEST * RANK_INDEX_ECPUS_PER_SUBMISSION;
  return Math.min(MAX_CACHE_ECPU_PER_SECOND, Math.max(MIN_CACHE_ECPU_PER_SECOND, wanted));
}

/** Reads one context key; `app.node.tryGetContext` in the app, a map in tests. */
export type ContextReader = (key: string) => unknown;

export class SettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SettingsError';
  }
}

/** infra/ itself, so relative defaults do not depend on the directory the CLI runs in. */
const INFRA_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Where `cargo lambda build` writes its zips (scripts/package.sh). */
export const DEFAULT_LAMBDA_ZIP_DIR = path.resolve(INFRA_DIR, '..', 'target', 'lambda');

export function readSettings(context: ContextReader): Settings {
  const stage = stringValue(context, 'stage', undefined) ?? DEFAULTS.stage;
  if (!/^[a-z][a-z0-9-]{0,19}$/.test(stage)) {
    fail('stage', `"${stage}" must be 1-20 characters of a-z, 0-9 and -, starting with a letter (it is part of the stack name)`);
  }
  if (stage.includes('--') || stage.endsWith('-')) {
    fail('stage', `"${stage}" must not hold "--" or end with "-" (it is part of the rank index cache's name, which allows neither)`);
  }
  const read = stageReader(context, stage);
  const production = booleanValue(read, 'production', PRODUCTION_STAGES.includes(stage));

  const architecture = stringValue(read, 'architecture', DEFAULTS.architecture);
  if (architecture !== 'arm64' && architecture !== 'x86_64') {
    fail('architecture', `"${architecture}" must be arm64 or x86_64`);
  }

  const ingest: FunctionSettings = {
    memoryMb: memory(read, 'ingestMemoryMb', DEFAULTS.ingestMemoryMb),
    timeoutSeconds: intValue(read, 'ingestTimeoutSeconds', DEFAULTS.ingestTimeoutSeconds, 1, MAX_INGEST_TIMEOUT_SECONDS),
  };
  const processor = consumer(read, 'processor', MAX_PROCESSOR_BATCH_SIZE, {
    memoryMb: DEFAULTS.processorMemoryMb,
    timeoutSeconds: DEFAULTS.processorTimeoutSeconds,
    batchSize: DEFAULTS.processorBatchSize,
    batchingWindowSeconds: DEFAULTS.processorBatchingWindowSeconds,
    maxConcurrency: DEFAULTS.processorMaxConcurrency,
  });
  const notifier = consumer(read, 'notifier', MAX_NOTIFIER_BATCH_SIZE, {
    memoryMb: DEFAULTS.notifierMemoryMb,
    timeoutSeconds: DEFAULTS.notifierTimeoutSeconds,
    batchSize: DEFAULTS.notifierBatchSize,
    batchingWindowSeconds: DEFAULTS.notifierBatchingWindowSeconds,
    maxConcurrency: DEFAULTS.notifierMaxConcurrency,
  });

  const ranker = rankerSettings(read);
  const boards: FunctionSettings = {
    memoryMb: memory(read, 'boardsMemoryMb', DEFAULTS.boardsMemoryMb),
    // Behind the same HTTP API as ingest, so within the same integration timeout.
    timeoutSeconds: intValue(read, 'boardsTimeoutSeconds', DEFAULTS.boardsTimeoutSeconds, 1, MAX_INGEST_TIMEOUT_SECONDS),
  };
  // Before the rank index: its ECPU cap follows the API's throttle by default.
  const apiRateLimit = intValue(read, 'apiRateLimit', DEFAULTS.apiRateLimit, 1, 1_000_000);
  const rankIndex: RankIndexSettings = {
    maxDataStorageGb: intValue(
      read,
      'rankIndexMaxDataStorageGb',
      DEFAULTS.rankIndexMaxDataStorageGb,
      MIN_CACHE_DATA_STORAGE_GB,
      MAX_CACHE_DATA_STORAGE_GB,
    ),
    maxEcpuPerSecond: intValue(
      read,
      'rankIndexMaxEcpuPerSecond',
      defaultRankIndexMaxEcpuPerSecond(apiRateLimit),
      MIN_CACHE_ECPU_PER_SECOND,
      MAX_CACHE_ECPU_PER_SECOND,
    ),
    snapshotRetentionDays: intValue(
      read,
      'rankIndexSnapshotRetentionDays',
      production ? DEFAULTS.productionRankIndexSnapshotRetentionDays : DEFAULTS.rankIndexSnapshotRetentionDays,
      1,
      MAX_SNAPSHOT_RETENTION_DAYS,
    ),
  };
  const rankerIteratorAgeAlarmSeconds = intValue(
    read,
    'rankerIteratorAgeAlarmSeconds',
    DEFAULTS.rankerIteratorAgeAlarmSeconds,
    60,
    STREAM_RETENTION_SECONDS,
  );
  // An alarm at or past the maximum age would only fire once records were already given up on.
  if (rankerIteratorAgeAlarmSeconds >= ranker.maxRecordAgeSeconds) {
    fail(
      'rankerIteratorAgeAlarmSeconds',
      `${rankerIteratorAgeAlarmSeconds} must be below rankerMaxRecordAgeSeconds (${ranker.maxRecordAgeSeconds}): ` +
        'the alarm must fire before the ranker gives up on records',
    );
  }

  const apiBurstLimit = intValue(read, 'apiBurstLimit', DEFAULTS.apiBurstLimit, 1, 1_000_000);
  const apiAccessLogs = booleanValue(read, 'apiAccessLogs', DEFAULTS.apiAccessLogs);

  const logRetentionDays = intValue(
    read,
    'logRetentionDays',
    production ? DEFAULTS.productionLogRetentionDays : DEFAULTS.logRetentionDays,
    1,
    3653,
  );
  if (!VALID_LOG_RETENTION_DAYS.includes(logRetentionDays)) {
    fail('logRetentionDays', `${logRetentionDays} is not a CloudWatch Logs retention; use one of ${VALID_LOG_RETENTION_DAYS.join(', ')}`);
  }

  const alarmEmail = stringValue(read, 'alarmEmail', undefined);
  if (alarmEmail !== undefined && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(alarmEmail)) {
    fail('alarmEmail', `"${alarmEmail}" is not an email address`);
  }

  const quotaCounter = stringValue(read, 'quotaCounter', DEFAULTS.quotaCounter);
  if (quotaCounter !== 'cache' && quotaCounter !== 'table') {
    fail('quotaCounter', `"${quotaCounter}" must be cache or table`);
  }

  const rustLog = stringValue(read, 'rustLog', DEFAULTS.rustLog) ?? DEFAULTS.rustLog;
  const { jwt, missing } = jwtSettings(read, stage, production);

  return {
    stage,
    production,
    architecture,
    lambdaZipDir: path.resolve(stringValue(read, 'lambdaZipDir', undefined) ?? DEFAULT_LAMBDA_ZIP_DIR),
    ingest,
    processor,
    notifier,
    ranker,
    boards,
    rankIndex,
    maxReceiveCount: intValue(read, 'maxReceiveCount', DEFAULTS.maxReceiveCount, 1, MAX_RECEIVE_COUNT_LIMIT),
    apiRateLimit,
    apiBurstLimit,
    apiAccessLogs,
    logRetentionDays,
    alarmEmail,
    queueAgeAlarmSeconds: intValue(read, 'queueAgeAlarmSeconds', DEFAULTS.queueAgeAlarmSeconds, 60, 14 * 24 * 3600),
    api5xxAlarmThreshold: intValue(read, 'api5xxAlarmThreshold', DEFAULTS.api5xxAlarmThreshold, 1, 1_000_000),
    processorFailedRecordsAlarmThreshold: intValue(
      read,
      'processorFailedRecordsAlarmThreshold',
      DEFAULTS.processorFailedRecordsAlarmThreshold,
      1,
      1_000_000,
    ),
    rankerIteratorAgeAlarmSeconds,
    jwt,
    userCacheTtlSeconds: intValue(read, 'userCacheTtlSeconds', DEFAULTS.userCacheTtlSeconds, 0, 86_400),
    userQuotaLimit: intValue(read, 'userQuotaLimit', DEFAULTS.userQuotaLimit, 0, MAX_USER_QUOTA_LIMIT),
    userQuotaWindowSeconds: intValue(read, 'userQuotaWindowSeconds', DEFAULTS.userQuotaWindowSeconds, 1, MAX_USER_QUOTA_WINDOW_SECONDS),
    quotaCounter,
    rustLog,
    missingJwtSettings: missing,
  };
}

/** The stack name of a stage, so several stages can live in one account. */
export function stackName(settings: Pick<Settings, 'stage'>): string {
  return `ScorePipeline-${settings.stage}`;
}

// ---------------------------------------------------------------------------------------------

function jwtSettings(
  read: ContextReader,
  stage: string,
  production: boolean,
): { jwt: JwtSettings; missing: string[] } {
  const algorithm = (stringValue(read, 'jwtAlgorithm', DEFAULTS.jwtAlgorithm) ?? DEFAULTS.jwtAlgorithm).toUpperCase();
  if (algorithm !== 'HS256' && algorithm !== 'RS256' && algorithm !== 'ES256') {
    fail('jwtAlgorithm', `"${algorithm}" must be RS256, ES256 or HS256`);
  }
  const issuer = stringValue(read, 'jwtIssuer', undefined);
  const audience = stringValue(read, 'jwtAudience', undefined);
  const secret = stringValue(read, 'jwtSecret', undefined);
  const pemInline = stringValue(read, 'jwtPublicKeyPem', undefined);
  const pemFile = stringValue(read, 'jwtPublicKeyFile', undefined);
  const leewaySeconds = optionalInt(read, 'jwtLeewaySeconds', 0, 3600);
  const keyId = stringValue(read, 'jwtKeyId', undefined);
  const jwksUrl = stringValue(read, 'jwtJwksUrl', undefined);
  const missing: string[] = [];

  let publicKeyPem: string | undefined;
  if (algorithm === 'HS256') {
    if (pemInline !== undefined || pemFile !== undefined || jwksUrl !== undefined) {
      fail('jwtPublicKeyPem', 'a public key was given but jwtAlgorithm is HS256; use RS256/ES256 with a public key, or drop the key');
    }
    if (production && !booleanValue(read, 'allowHs256InProduction', false)) {
      fail(
        'jwtAlgorithm',
        `HS256 puts a shared signing secret into the Lambda configuration of production stage "${stage}"; ` +
          'use RS256 or ES256 with jwtPublicKeyFile (only the public key is deployed), ' +
          'or set -c allowHs256InProduction=true if you accept that',
      );
    }
    if (secret === undefined) {
      missing.push('jwtSecret');
    } else if (Buffer.byteLength(secret, 'utf8') < MIN_HS256_SECRET_BYTES) {
      fail('jwtSecret', `must be at least ${MIN_HS256_SECRET_BYTES} bytes (the ingest function refuses shorter secrets)`);
    }
  } else {
    if (secret !== undefined) {
      fail('jwtSecret', `a secret was given but jwtAlgorithm is ${algorithm}; give the public key (jwtPublicKeyFile or jwtPublicKeyPem) instead`);
    }
    if ([pemInline, pemFile, jwksUrl].filter((v) => v !== undefined).length > 1) {
      fail('jwtPublicKeyPem', 'give one of jwtPublicKeyPem, jwtPublicKeyFile or jwtJwksUrl');
    }
    if (jwksUrl !== undefined && !/^https:\/\/\S+$/.test(jwksUrl)) {
      fail('jwtJwksUrl', `"${jwksUrl}" must be an https:// URL`);
    }
    if (pemFile !== undefined) {
      try {
        publicKeyPem = fs.readFileSync(path.resolve(pemFile), 'utf8');
      } catch (e) {
        fail('jwtPublicKeyFile', `cannot read ${pemFile}: ${(e as Error).message}`);
      }
    } else {
      publicKeyPem = pemInline;
    }
    if (publicKeyPem === undefined && jwksUrl === undefined) {
      missing.push('jwtPublicKeyFile (or jwtPublicKeyPem, or jwtJwksUrl)');
    } else if (publicKeyPem !== undefined) {
      publicKeyPem = publicKeyPem.trim() + '\n';
      if (/PRIVATE KEY-----/.test(publicKeyPem)) {
        fail('jwtPublicKeyFile', 'this is a PRIVATE key; deploy only the public key (openssl pkey -in key.pem -pubout)');
      }
      if (!/^-----BEGIN (RSA )?PUBLIC KEY-----\n[\s\S]+\n-----END (RSA )?PUBLIC KEY-----\n$/.test(publicKeyPem)) {
        fail('jwtPublicKeyFile', 'the key is not a PEM public key ("-----BEGIN PUBLIC KEY-----" ... "-----END PUBLIC KEY-----")');
      }
    }
  }
  if (issuer === undefined) missing.push('jwtIssuer');
  if (audience === undefined) missing.push('jwtAudience');
  if (production && missing.length > 0) {
    fail(missing[0]!, `production stage "${stage}" needs complete token settings; missing: ${missing.join(', ')}`);
  }
  return {
    jwt: {
      algorithm,
      issuer,
      audience,
      publicKeyPem,
      secret: algorithm === 'HS256' ? secret : undefined,
      leewaySeconds,
      keyId,
      jwksUrl,
    },
    missing,
  };
}

function consumer(
  read: ContextReader,
  prefix: 'processor' | 'notifier',
  maxBatchSize: number,
  defaults: ConsumerSettings,
): ConsumerSettings {
  const batchSize = intValue(read, `${prefix}BatchSize`, defaults.batchSize, 1, maxBatchSize);
  const batchingWindowSeconds = intValue(
    read,
    `${prefix}BatchingWindowSeconds`,
    defaults.batchingWindowSeconds,
    0,
    MAX_BATCHING_WINDOW_SECONDS,
  );
  // SQS only hands a function more than 10 messages at once while it waits for them to gather.
  if (batchSize > SQS_BATCH_WITHOUT_WINDOW && batchingWindowSeconds < 1) {
    fail(`${prefix}BatchingWindowSeconds`, `must be at least 1 when ${prefix}BatchSize (${batchSize}) is above ${SQS_BATCH_WITHOUT_WINDOW}`);
  }
  return {
    memoryMb: memory(read, `${prefix}MemoryMb`, defaults.memoryMb),
    timeoutSeconds: intValue(read, `${prefix}TimeoutSeconds`, defaults.timeoutSeconds, 1, MAX_LAMBDA_TIMEOUT_SECONDS),
    batchSize,
    batchingWindowSeconds,
    maxConcurrency: intValue(read, `${prefix}MaxConcurrency`, defaults.maxConcurrency, MIN_MAX_CONCURRENCY, MAX_MAX_CONCURRENCY),
  };
}

/** The ranker's sizing and its stream event source mapping. */
function rankerSettings(read: ContextReader): StreamConsumerSettings {
  return {
    memoryMb: memory(read, 'rankerMemoryMb', DEFAULTS.rankerMemoryMb),
    timeoutSeconds: intValue(read, 'rankerTimeoutSeconds', DEFAULTS.rankerTimeoutSeconds, MIN_RANKER_TIMEOUT_SECONDS, MAX_LAMBDA_TIMEOUT_SECONDS),
    batchSize: intValue(read, 'rankerBatchSize', DEFAULTS.rankerBatchSize, 1, MAX_RANKER_BATCH_SIZE),
    batchingWindowSeconds: intValue(
      read,
      'rankerBatchingWindowSeconds',
      DEFAULTS.rankerBatchingWindowSeconds,
      0,
      MAX_BATCHING_WINDOW_SECONDS,
    ),
    maxRecordAgeSeconds: intValue(
      read,
      'rankerMaxRecordAgeSeconds',
      DEFAULTS.rankerMaxRecordAgeSeconds,
      MIN_MAX_RECORD_AGE_SECONDS,
      STREAM_RETENTION_SECONDS,
    ),
  };
}

function memory(read: ContextReader, key: string, fallback: number): number {
  return intValue(read, key, fallback, 128, 10_240);
}

function stageReader(context: ContextReader, stage: string): ContextReader {
  const stages = context('stages');
  const perStage =
    stages !== null && typeof stages === 'object' ? (stages as Record<string, unknown>)[stage] : undefined;
  return (key) => {
    const value = context(key);
    if (value !== undefined) return value;
    if (perStage !== null && typeof perStage === 'object') {
      return (perStage as Record<string, unknown>)[key];
    }
    return undefined;
  };
}

function stringValue<T extends string | undefined>(read: ContextReader, key: string, fallback: T): string | T {
  const value = read(key);
  if (value === undefined || value === null || value === '') return fallback;
  if (typeof value !== 'string') fail(key, `expected a string, got ${JSON.stringify(value)}`);
  return value;
}

function intValue(read: ContextReader, key: string, fallback: number, min: number, max: number): number {
  return optionalInt(read, key, min, max) ?? fallback;
}

function optionalInt(read: ContextReader, key: string, min: number, max: number): number | undefined {
  const value = read(key);
  if (value === undefined || value === null || value === '') return undefined;
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isInteger(n)) fail(key, `expected an integer, got ${JSON.stringify(value)}`);
  if (n < min || n > max) fail(key, `${n} is outside ${min}..${max}`);
  return n;
}

function booleanValue(read: ContextReader, key: string, fallback: boolean): boolean {
  const value = read(key);
  if (value === undefined || value === null || value === '') return fallback;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  return fail(key, `expected true or false, got ${JSON.stringify(value)}`);
}

function fail(key: string, reason: string): never {
  throw new SettingsError(`context "${key}": ${reason}`);
}
