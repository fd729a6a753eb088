// The five Lambda functions: runtime, architecture, code, sizing, network, environment and token settings.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { applicationLogLevelFor, BINARIES, ENV, METRICS_NAMESPACE } from '../lib/score-pipeline-stack.ts';
import { DEFAULTS } from '../lib/settings.ts';
import { FUNCTION_BINARIES, writeDummyZips } from './support/dummy-assets.ts';
import {
  ARM64_ZIPS,
  type CfnTemplate,
  FUNCTION_IDS,
  type FunctionName,
  functionProps,
  ids,
  logicalId,
  PUBLIC_KEY_FILE,
  refTarget,
  resource,
  synth,
  synthDefault,
  TEMP_DIR,
  TOKEN_CONTEXT,
  warningsOf,
  X86_64_ZIPS,
} from './support/synth.ts';

const NAMES = Object.keys(FUNCTION_IDS) as FunctionName[];

/** RANK_INDEX_URL as the template builds it: rediss:// (TLS), the cache's endpoint address and port. */
function rankIndexUrl(json: CfnTemplate) {
  const cache = ids(json).rankIndex;
  return {
    'Fn::Join': ['', ['rediss://', { 'Fn::GetAtt': [cache, 'Endpoint.Address'] }, ':', { 'Fn::GetAtt': [cache, 'Endpoint.Port'] }]],
  };
}

describe('functions', () => {
  it('run bootstrap on provided.al2023, arm64 by default', () => {
    const { json } = synthDefault();
    for (const name of NAMES) {
      const fn = functionProps(json, name);
      assert.equal(fn.Runtime, 'provided.al2023', name);
      assert.equal(fn.Handler, 'bootstrap', name);
      assert.deepEqual(fn.Architectures, ['arm64'], name);
    }
  });

  it('run on x86_64 when the architecture context says so', () => {
    const { json } = synth({ architecture: 'x86_64', lambdaZipDir: X86_64_ZIPS });
    for (const name of NAMES) assert.deepEqual(functionProps(json, name).Architectures, ['x86_64'], name);
  });

  it('take their code from <lambdaZipDir>/<bin>/bootstrap.zip, one asset per binary', () => {
    const { stack, json } = synthDefault();
    const keys = NAMES.map((name) => functionProps(json, name).Code.S3Key as string);
    assert.equal(new Set(keys).size, NAMES.length, `distinct zips give distinct assets: ${keys}`);
    // The staged asset is byte-for-byte the zip of that binary.
    const outdir = (stack.node.root as unknown as { outdir: string }).outdir;
    for (const [i, name] of NAMES.entries()) {
      const staged = fs.readFileSync(path.join(outdir, `asset.${keys[i]}`));
      assert.deepEqual(staged, fs.readFileSync(path.join(ARM64_ZIPS, name, 'bootstrap.zip')), name);
    }
  });

  it('are the binaries the dummy zips stand in for, one function each', () => {
    assert.deepEqual([...FUNCTION_BINARIES], [...BINARIES]);
    assert.deepEqual(NAMES, [...BINARIES]);
  });

  it('refuse zips built for the other architecture', () => {
    assert.throws(() => synth({ architecture: 'x86_64', lambdaZipDir: ARM64_ZIPS }), /built for arm64 but the functions are configured for x86_64/);
    assert.throws(() => synth({ lambdaZipDir: X86_64_ZIPS }), /built for x86_64 but the functions are configured for arm64/);
  });

  it('refuse a missing zip with a hint to run the packaging step', () => {
    const empty = path.join(TEMP_DIR, 'no-zips');
    fs.mkdirSync(empty, { recursive: true });
    assert.throws(() => synth({ lambdaZipDir: empty }), /ingest[/\\]bootstrap\.zip is missing: run "make package"/);
    // Also the new binaries: a zip directory from before the leaderboards is refused, naming them.
    const old = writeDummyZips(path.join(TEMP_DIR, 'zips-without-ranker'), 'arm64');
    fs.rmSync(path.join(old, 'ranker'), { recursive: true });
    assert.throws(
      () => synth({ lambdaZipDir: old }),
      /ranker[/\\]bootstrap\.zip is missing: .*<ingest\|processor\|notifier\|ranker\|boards>\/bootstrap\.zip/,
    );
  });

  it('refuse a bootstrap that is not executable', () => {
    const dir = writeDummyZips(path.join(TEMP_DIR, 'zips-not-executable'), 'arm64', { mode: 0o644 });
    assert.throws(() => synth({ lambdaZipDir: dir }), /not marked executable/);
  });

  it('take memory sizes and timeouts from context', () => {
    const sizes = {
      ingestMemoryMb: 384,
      ingestTimeoutSeconds: 12,
      processorMemoryMb: 1024,
      processorTimeoutSeconds: 45,
      notifierMemoryMb: 192,
      notifierTimeoutSeconds: 20,
      rankerMemoryMb: 512,
      rankerTimeoutSeconds: 60,
      boardsMemoryMb: 320,
      boardsTimeoutSeconds: 8,
    };
    const { json } = synth(sizes);
    for (const name of NAMES) {
      const fn = functionProps(json, name);
      assert.equal(fn.MemorySize, sizes[`${name}MemoryMb`], name);
      assert.equal(fn.Timeout, sizes[`${name}TimeoutSeconds`], name);
    }
  });

  it('keep ingest and boards within the HTTP API integration timeout', () => {
    assert.throws(() => synth({ ingestTimeoutSeconds: 30 }), /ingestTimeoutSeconds.*outside 1\.\.29/);
    assert.throws(() => synth({ boardsTimeoutSeconds: 30 }), /boardsTimeoutSeconds.*outside 1\.\.29/);
  });

  it('give the ranker room for a connection and a round of writes before its deadline', () => {
    assert.throws(() => synth({ rankerTimeoutSeconds: 4 }), /rankerTimeoutSeconds.*outside 5\.\.900/);
    assert.equal(functionProps(synth({ rankerTimeoutSeconds: 5 }).json, 'ranker').Timeout, 5);
    assert.equal(functionProps(synthDefault().json, 'ranker').Timeout, DEFAULTS.rankerTimeoutSeconds);
  });

  it('log to their own log group with the stage retention', () => {
    const { json } = synth({ logRetentionDays: 30 });
    const groups = new Set<string>();
    for (const name of NAMES) {
      const group = refTarget(functionProps(json, name).LoggingConfig.LogGroup);
      assert.ok(group !== undefined, name);
      assert.equal(resource(json, group).Type, 'AWS::Logs::LogGroup');
      assert.equal(resource(json, group).Properties.RetentionInDays, 30, name);
      groups.add(group);
    }
    assert.equal(groups.size, NAMES.length);
  });

  it('log JSON: application lines at INFO by default, Lambda platform lines at WARN', () => {
    const { json } = synthDefault();
    for (const name of NAMES) {
      const logging = functionProps(json, name).LoggingConfig;
      assert.deepEqual(
        { ...logging, LogGroup: undefined },
        { LogFormat: 'JSON', ApplicationLogLevel: 'INFO', SystemLogLevel: 'WARN', LogGroup: undefined },
        name,
      );
      assert.equal(functionProps(json, name).Environment.Variables.RUST_LOG, 'info', `${name} keeps RUST_LOG`);
    }
  });

  it('raise the application log level to what RUST_LOG lets through, so Lambda drops none of it', () => {
    const { json } = synth({ rustLog: 'warn,processor=debug' });
    for (const name of NAMES) {
      assert.equal(functionProps(json, name).LoggingConfig.ApplicationLogLevel, 'DEBUG', name);
      assert.equal(functionProps(json, name).Environment.Variables.RUST_LOG, 'warn,processor=debug', name);
    }
  });

  it('map RUST_LOG to the most verbose level it names, never above INFO', () => {
    const cases: [string, string][] = [
      ['info', 'INFO'],
      ['INFO', 'INFO'],
      ['warn', 'INFO'], // never stricter: the EMF metric lines take this level as theirs and stay INFO
      ['error', 'INFO'],
      ['off', 'INFO'],
      ['debug', 'DEBUG'],
      ['debug,hyper=info', 'DEBUG'],
      ['info,aws_smithy_runtime=debug', 'DEBUG'],
      ['info,[request{id=7}]=debug', 'DEBUG'],
      ['trace', 'TRACE'],
      ['info,processor', 'TRACE'], // a bare target enables all its levels
      ['info,processor=verbose', 'TRACE'], // unknown: let everything through
      ['4', 'DEBUG'],
      [' info , ', 'INFO'],
    ];
    for (const [rustLog, expected] of cases) assert.equal(applicationLogLevelFor(rustLog), expected, rustLog);
  });

  it('trace actively with X-Ray', () => {
    const { json } = synthDefault();
    for (const name of NAMES) assert.deepEqual(functionProps(json, name).TracingConfig, { Mode: 'Active' }, name);
  });
});

describe('environment', () => {
  it('passes an identity provider JWKS URL instead of a public key', () => {
    const url = 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example/.well-known/jwks.json';
    const { json } = synth({ jwtPublicKeyFile: undefined, jwtJwksUrl: url });
    const env = functionProps(json, 'ingest').Environment.Variables;
    assert.equal(env.JWT_JWKS_URL, url);
    assert.equal(env.JWT_PUBLIC_KEY_PEM, undefined);
  });

  it('refuses a JWKS URL that is not https, and a JWKS URL beside a public key', () => {
    assert.throws(() => synth({ jwtPublicKeyFile: undefined, jwtJwksUrl: 'http://idp.example/jwks.json' }), /https/);
    assert.throws(() => synth({ jwtJwksUrl: 'https://idp.example/jwks.json' }), /one of/);
  });

  it('gives ingest exactly its token, queue, table and metrics settings', () => {
    const { json } = synth({ rustLog: 'debug,hyper=info', jwtLeewaySeconds: 10, jwtKeyId: 'key-2026' });
    const r = ids(json);
    const env = functionProps(json, 'ingest').Environment.Variables;
    assert.deepEqual(Object.keys(env).sort(), [
      'JWT_ALGORITHM',
      'JWT_AUDIENCE',
      'JWT_ISSUER',
      'JWT_KEY_ID',
      'JWT_LEEWAY_SECONDS',
      'JWT_PUBLIC_KEY_PEM',
      'METRICS_NAMESPACE',
      'METRICS_STAGE',
      'RUST_LOG',
      'SUBMISSIONS_QUEUE_URL',
      'SUBMISSIONS_TABLE',
    ]);
    assert.equal(env.JWT_ALGORITHM, TOKEN_CONTEXT.jwtAlgorithm);
    assert.equal(env.JWT_ISSUER, TOKEN_CONTEXT.jwtIssuer);
    assert.equal(env.JWT_AUDIENCE, TOKEN_CONTEXT.jwtAudience);
    assert.equal(env.JWT_PUBLIC_KEY_PEM, fs.readFileSync(PUBLIC_KEY_FILE, 'utf8'));
    assert.equal(env.JWT_LEEWAY_SECONDS, '10');
    assert.equal(env.JWT_KEY_ID, 'key-2026');
    assert.equal(env.RUST_LOG, 'debug,hyper=info');
    assert.equal(env.METRICS_NAMESPACE, METRICS_NAMESPACE);
    assert.equal(env.METRICS_STAGE, 'dev');
    assert.deepEqual(env.SUBMISSIONS_QUEUE_URL, { Ref: r.submissionsQueue }, 'a queue Ref is its URL');
    assert.deepEqual(env.SUBMISSIONS_TABLE, { Ref: r.submissionsTable }, 'a table Ref is its name');
  });

  it('gives the processor its tables, rejections queue, cache TTL, quota settings (counted in the cache) and receive count', () => {
    const { json } = synth({ userCacheTtlSeconds: 0, userQuotaLimit: 500, userQuotaWindowSeconds: '3600' });
    const r = ids(json);
    const env = functionProps(json, 'processor').Environment.Variables;
    assert.deepEqual(env, {
      SUBMISSIONS_TABLE: { Ref: r.submissionsTable },
      USERS_TABLE: { Ref: r.usersTable },
      QUOTA_COUNTER: 'cache',
      RANK_INDEX_URL: rankIndexUrl(json),
      REJECTIONS_QUEUE_URL: { Ref: r.rejectionsQueue },
      USER_CACHE_TTL_SECONDS: '0',
      USER_QUOTA_LIMIT: '500',
      USER_QUOTA_WINDOW_SECONDS: '3600',
      MAX_RECEIVE_COUNT: String(DEFAULTS.maxReceiveCount),
      METRICS_NAMESPACE,
      METRICS_STAGE: 'dev',
      RUST_LOG: 'info',
    });
  });

  it('gives the processor the quotas table instead of the rank index URL when the quota is counted in the table', () => {
    const { json } = synth({ quotaCounter: 'table', userCacheTtlSeconds: 0, userQuotaLimit: 500, userQuotaWindowSeconds: '3600' });
    const r = ids(json);
    const env = functionProps(json, 'processor').Environment.Variables;
    assert.deepEqual(env, {
      SUBMISSIONS_TABLE: { Ref: r.submissionsTable },
      USERS_TABLE: { Ref: r.usersTable },
      QUOTA_COUNTER: 'table',
      QUOTAS_TABLE: { Ref: r.quotasTable },
      REJECTIONS_QUEUE_URL: { Ref: r.rejectionsQueue },
      USER_CACHE_TTL_SECONDS: '0',
      USER_QUOTA_LIMIT: '500',
      USER_QUOTA_WINDOW_SECONDS: '3600',
      MAX_RECEIVE_COUNT: String(DEFAULTS.maxReceiveCount),
      METRICS_NAMESPACE,
      METRICS_STAGE: 'dev',
      RUST_LOG: 'info',
    });
  });

  it('gives the processor the default quota, and a limit of 0 (quota off) as given, its counter still named', () => {
    const defaults = functionProps(synthDefault().json, 'processor').Environment.Variables;
    assert.equal(defaults.USER_QUOTA_LIMIT, String(DEFAULTS.userQuotaLimit));
    assert.equal(defaults.USER_QUOTA_WINDOW_SECONDS, String(DEFAULTS.userQuotaWindowSeconds));
    const cache = synth({ userQuotaLimit: '0' }).json;
    const off = functionProps(cache, 'processor').Environment.Variables;
    assert.equal(off.USER_QUOTA_LIMIT, '0');
    assert.equal(off.QUOTA_COUNTER, 'cache', 'the counter stays while the quota is off');
    assert.deepEqual(off.RANK_INDEX_URL, rankIndexUrl(cache));
    const { json } = synth({ userQuotaLimit: '0', quotaCounter: 'table' });
    const tableOff = functionProps(json, 'processor').Environment.Variables;
    assert.equal(tableOff.USER_QUOTA_LIMIT, '0');
    assert.deepEqual(tableOff.QUOTAS_TABLE, { Ref: ids(json).quotasTable }, 'the table stays named while the quota is off');
  });

  it("gives the processor MAX_RECEIVE_COUNT equal to the submissions queue's maxReceiveCount, also when overridden", () => {
    const cases = [
      { context: {}, expected: DEFAULTS.maxReceiveCount },
      { context: { maxReceiveCount: '9' }, expected: 9 },
      { context: { stages: { dev: { maxReceiveCount: 2 } } }, expected: 2 },
    ];
    for (const { context, expected } of cases) {
      const { json } = synth(context);
      const redrive = resource(json, ids(json).submissionsQueue).Properties.RedrivePolicy;
      assert.equal(redrive.maxReceiveCount, expected, JSON.stringify(context));
      const env = functionProps(json, 'processor').Environment.Variables;
      assert.equal(env[ENV.maxReceiveCount], String(redrive.maxReceiveCount), JSON.stringify(context));
    }
    // Only the processor counts receives.
    const { json } = synthDefault();
    for (const name of ['ingest', 'notifier'] as const) {
      assert.equal(functionProps(json, name).Environment.Variables[ENV.maxReceiveCount], undefined, name);
    }
  });

  it('gives only the processor the quota settings', () => {
    const { json } = synthDefault();
    for (const name of ['ingest', 'notifier'] as const) {
      const env = functionProps(json, name).Environment.Variables;
      for (const variable of [ENV.quotaCounter, ENV.quotasTable, ENV.userQuotaLimit, ENV.userQuotaWindowSeconds]) {
        assert.equal(env[variable], undefined, `${name} ${variable}`);
      }
    }
  });

  it('refuses quota settings out of range before building anything', () => {
    assert.throws(() => synth({ userQuotaLimit: 10_001 }), /context "userQuotaLimit": 10001 is outside 0\.\.10000/);
    assert.throws(() => synth({ userQuotaWindowSeconds: 0 }), /context "userQuotaWindowSeconds": 0 is outside 1\.\.86400/);
  });

  it('gives the notifier the topic ARN and the submissions table (its outbox)', () => {
    const { json } = synthDefault();
    const env = functionProps(json, 'notifier').Environment.Variables;
    assert.deepEqual(env, {
      REJECTIONS_TOPIC_ARN: { Ref: ids(json).rejectionsTopic },
      SUBMISSIONS_TABLE: { Ref: ids(json).submissionsTable },
      METRICS_NAMESPACE,
      METRICS_STAGE: 'dev',
      RUST_LOG: 'info',
    });
  });

  it('gives the ranker the rank index URL, built from the cache endpoint, and its metrics settings only', () => {
    const { json } = synthDefault();
    assert.deepEqual(functionProps(json, 'ranker').Environment.Variables, {
      RANK_INDEX_URL: rankIndexUrl(json),
      METRICS_NAMESPACE,
      METRICS_STAGE: 'dev',
      RUST_LOG: 'info',
    });
    assert.equal(ENV.rankIndexUrl, 'RANK_INDEX_URL');
  });

  it('gives the boards function the token settings, the rank index URL and its metrics settings only', () => {
    const { json } = synth({ jwtLeewaySeconds: 10, jwtKeyId: 'key-2026' });
    const env = functionProps(json, 'boards').Environment.Variables;
    assert.deepEqual(Object.keys(env).sort(), [
      'JWT_ALGORITHM',
      'JWT_AUDIENCE',
      'JWT_ISSUER',
      'JWT_KEY_ID',
      'JWT_LEEWAY_SECONDS',
      'JWT_PUBLIC_KEY_PEM',
      'METRICS_NAMESPACE',
      'METRICS_STAGE',
      'RANK_INDEX_URL',
      'RUST_LOG',
    ]);
    // The same token settings as ingest, so a token ingest accepts the boards accept too.
    const ingest = functionProps(json, 'ingest').Environment.Variables;
    for (const name of Object.keys(env).filter((n) => n.startsWith('JWT_'))) assert.equal(env[name], ingest[name], name);
    assert.deepEqual(env.RANK_INDEX_URL, rankIndexUrl(json));
    assert.equal(env.METRICS_NAMESPACE, METRICS_NAMESPACE);
    assert.equal(env.METRICS_STAGE, 'dev');
  });

  it('gives the rank index URL to the ranker, boards and (counting quotas in the cache) the processor only', () => {
    const { json } = synthDefault();
    for (const name of ['ingest', 'notifier'] as const) {
      assert.equal(functionProps(json, name).Environment.Variables[ENV.rankIndexUrl], undefined, name);
    }
    for (const name of ['ranker', 'boards', 'processor'] as const) {
      assert.deepEqual(functionProps(json, name).Environment.Variables[ENV.rankIndexUrl], rankIndexUrl(json), name);
    }
    const table = synth({ quotaCounter: 'table' }).json;
    for (const name of ['ingest', 'processor', 'notifier'] as const) {
      assert.equal(functionProps(table, name).Environment.Variables[ENV.rankIndexUrl], undefined, `${name} (table counter)`);
    }
  });

  it('tells every function where to put its metrics (ingest its ColdStart): the namespace and the stage', () => {
    assert.equal(METRICS_NAMESPACE, 'ScorePipeline');
    const { json } = synth({ stage: 'staging' });
    for (const name of NAMES) {
      const env = functionProps(json, name).Environment.Variables;
      assert.equal(env[ENV.metricsNamespace], METRICS_NAMESPACE, name);
      // Not left to the Rust default (Stage=default), which the dashboard does not show.
      assert.equal(env[ENV.metricsStage], 'staging', name);
    }
  });

  it('accepts the public key inline instead of from a file', () => {
    const pem = fs.readFileSync(PUBLIC_KEY_FILE, 'utf8');
    const { json } = synth({ jwtPublicKeyFile: undefined, jwtPublicKeyPem: pem, jwtAlgorithm: 'RS256' });
    const env = functionProps(json, 'ingest').Environment.Variables;
    assert.equal(env.JWT_PUBLIC_KEY_PEM, pem);
    assert.equal(env.JWT_ALGORITHM, 'RS256');
  });

  it('puts an HS256 secret (and no key) into a dev stage', () => {
    const secret = 'x'.repeat(40);
    const { json } = synth({ jwtAlgorithm: 'HS256', jwtPublicKeyFile: undefined, jwtSecret: secret });
    const env = functionProps(json, 'ingest').Environment.Variables;
    assert.equal(env.JWT_ALGORITHM, 'HS256');
    assert.equal(env.JWT_SECRET, secret);
    assert.equal(env.JWT_PUBLIC_KEY_PEM, undefined);
  });

  it('refuses HS256 for a production stage unless explicitly allowed', () => {
    const hs256 = { stage: 'prod', jwtAlgorithm: 'HS256', jwtPublicKeyFile: undefined, jwtSecret: 's'.repeat(32) };
    assert.throws(() => synth(hs256), /HS256 .* production stage "prod"/);
    const { json } = synth({ ...hs256, allowHs256InProduction: 'true' });
    assert.equal(functionProps(json, 'ingest').Environment.Variables.JWT_ALGORITHM, 'HS256');
  });

  it('refuses short secrets, private keys and mixed-up key settings', () => {
    assert.throws(() => synth({ jwtAlgorithm: 'HS256', jwtPublicKeyFile: undefined, jwtSecret: 'short' }), /jwtSecret.*at least 32 bytes/);
    assert.throws(() => synth({ jwtAlgorithm: 'HS256' }), /public key was given but jwtAlgorithm is HS256/);
    assert.throws(() => synth({ jwtSecret: 'x'.repeat(32) }), /secret was given but jwtAlgorithm is ES256/);
    const privateKey = path.join(TEMP_DIR, 'private.pem');
    fs.writeFileSync(privateKey, '-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n-----END PRIVATE KEY-----\n');
    assert.throws(() => synth({ jwtPublicKeyFile: privateKey }), /PRIVATE key/);
    assert.throws(() => synth({ jwtPublicKeyFile: path.join(TEMP_DIR, 'absent.pem') }), /cannot read/);
  });

  it('synthesizes a dev stage without token settings, warns, and leaves them out', () => {
    const s = synth({}, { withTokens: false });
    const env = functionProps(s.json, 'ingest').Environment.Variables;
    for (const name of ['JWT_ISSUER', 'JWT_AUDIENCE', 'JWT_PUBLIC_KEY_PEM', 'JWT_SECRET']) assert.equal(env[name], undefined, name);
    const warnings = warningsOf(s).join('\n');
    assert.match(warnings, /ingest function will refuse to start/);
    assert.match(warnings, /boards function will refuse to start/);
    assert.equal(functionProps(s.json, 'boards').Environment.Variables.JWT_ISSUER, undefined);
    assert.match(warnings, /jwtIssuer/);
    assert.equal(warningsOf(synthDefault()).length, 0, 'complete settings give no warning');
  });

  it('refuses a production stage without complete token settings', () => {
    assert.throws(() => synth({ stage: 'prod' }, { withTokens: false }), /production stage "prod" needs complete token settings/);
    assert.throws(() => synth({ stage: 'prod', jwtAudience: undefined }), /missing: jwtAudience/);
  });

  it('finds the API function by its role in the template, not by accident of naming', () => {
    // Guards the helpers above: the function named Ingest is the one the API integrates with.
    const { json } = synthDefault();
    const integration = Object.values(json.Resources).find((r) => r.Type === 'AWS::ApiGatewayV2::Integration');
    assert.equal(refTarget(integration?.Properties.IntegrationUri), logicalId(json, 'AWS::Lambda::Function', 'Ingest'));
  });
});
