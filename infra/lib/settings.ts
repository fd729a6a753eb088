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
/** SQS: the longest batching window an event source mapping accepts. */
const MAX_BATCHING_WINDOW_SECONDS = 300;
/** Lambda: the longest function timeout. */
const MAX_LAMBDA_TIMEOUT_SECONDS = 900;
/** API Gateway HTTP APIs give an integration at most 30 s; leave a second for the gateway. */
const MAX_INGEST_TIMEOUT_SECONDS = 29;
/** Lambda event source mappings: the allowed range of MaximumConcurrency. */
const MIN_MAX_CONCURRENCY = 2;
const MAX_MAX_CONCURRENCY = 1000;
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
  maxReceiveCount: 5,
  apiRateLimit: 500,
  apiBurstLimit: 1000,
  logRetentionDays: 14,
  productionLogRetentionDays: 90,
  queueAgeAlarmSeconds: 300,
  api5xxAlarmThreshold: 1,
  processorFailedRecordsAlarmThreshold: 100,
  jwtAlgorithm: 'RS256' as JwtAlgorithm,
  userCacheTtlSeconds: 60,
  userQuotaLimit: 120,
  userQuotaWindowSeconds: 60,
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
  readonly maxReceiveCount: number;
  readonly apiRateLimit: number;
  readonly apiBurstLimit: number;
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
  readonly jwt: JwtSettings;
  readonly userCacheTtlSeconds: number;
  /** Submissions a user may make per quota window (the processor enforces it); 0 turns the quota off. */
  readonly userQuotaLimit: number;
  /** The quota window's length; windows start at multiples of it since the epoch. */
  readonly userQuotaWindowSeconds: number;
  readonly rustLog: string;
  /** Settings the ingest function still needs before it can start; empty when complete. */
  readonly missingJwtSettings: readonly string[];
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

  const apiRateLimit = intValue(read, 'apiRateLimit', DEFAULTS.apiRateLimit, 1, 1_000_000);
  const apiBurstLimit = intValue(read, 'apiBurstLimit', DEFAULTS.apiBurstLimit, 1, 1_000_000);

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
    maxReceiveCount: intValue(read, 'maxReceiveCount', DEFAULTS.maxReceiveCount, 1, MAX_RECEIVE_COUNT_LIMIT),
    apiRateLimit,
    apiBurstLimit,
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
    jwt,
    userCacheTtlSeconds: intValue(read, 'userCacheTtlSeconds', DEFAULTS.userCacheTtlSeconds, 0, 86_400),
    userQuotaLimit: intValue(read, 'userQuotaLimit', DEFAULTS.userQuotaLimit, 0, MAX_USER_QUOTA_LIMIT),
    userQuotaWindowSeconds: intValue(read, 'userQuotaWindowSeconds', DEFAULTS.userQuotaWindowSeconds, 1, MAX_USER_QUOTA_WINDOW_SECONDS),
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
