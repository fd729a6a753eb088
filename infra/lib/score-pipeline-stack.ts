// The whole score ingest pipeline in one stack:
//
//   HTTP API -> ingest -> submissions queue (+DLQ) -> processor -> submissions table
//                                                      |  (reads the users table, counts
//                                                      |   per-user quotas: see below)
//                                                      v
//                                     rejections queue (+DLQ) -> notifier -> rejections topic
//                                                                  (marks each rejection notified
//                                                                   in the submissions table)
//
//   submissions table stream -> ranker -> rank index (ElastiCache Serverless, Valkey) <- boards <- HTTP API
//                                 |         (in a VPC of isolated subnets: no NAT, no internet)
//                                 v
//                      ranker failure queue (batches given up on)
//
// Where the processor counts the quotas is the `quotaCounter` setting:
//
//   cache (default)  in the rank index's cache. The processor then runs in the rank index VPC with
//                    a security group of its own, and reaches the AWS APIs it calls through VPC
//                    endpoints there: a DynamoDB gateway endpoint (free) and an SQS interface
//                    endpoint (about $0.01 an hour per availability zone, two zones: some $14.60
//                    a month, plus $0.01 per GB processed). The quotas table stays, unused.
//
//                      processor --6379--> rank index
//                          |--443--> DynamoDB gateway endpoint (route in the isolated subnets)
//                          '--443--> SQS interface endpoint (private DNS; its group admits the processor only)
//
//   table            in the quotas table (a conditional UpdateItem per user and batch, $0.625 per
//                    million in the worst case of one submission per batch): the processor stays
//                    outside the VPC and no endpoint exists, so no fixed cost. Below roughly 25
//                    million single submissions a month ($14.60 / $0.59 per million, what the
//                    cache saves net of its own cost per call: docs/COSTS.md) that is the
//                    cheaper choice; with batching clients, far beyond.
//
// plus log groups, alarms (to an alarm topic), a dashboard and outputs. Settings come from CDK
// context (lib/settings.ts). Each function gets its own role holding only the calls its code makes;
// operators get a managed policy holding only the calls of the users tool.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Annotations, App, CfnOutput, CfnResource, Duration, RemovalPolicy, Stack, type StackProps, Tags } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elasticache from 'aws-cdk-lib/aws-elasticache';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { checkBootstrap } from './lambda-zip.ts';
import {
  type ConsumerSettings,
  type FunctionSettings,
  readSettings,
  type Settings,
  stackName,
  type StreamConsumerSettings,
} from './settings.ts';

// ---------------------------------------------------------------------------------------------
// Names shared with the Rust code. Table keys mirror the attribute names of
// shared/src/aws/dynamodb/items.rs and dynamodb/quotas.rs, the tables as
// shared/src/aws/provision.rs creates them (SUBMISSIONS_TABLE_KEY there) and docs/DYNAMODB.md; no
// table has an index. Environment variable names mirror shared/src/config.rs; routes mirror the
// ingest and boards routers (ingest/src/lib.rs, ingest/src/boards.rs).

/**
 * The submissions table is keyed by the player (the token subject), then the submission id. Every
 * read knows the player, so the table needs no index: a status read is the caller's own, the
 * processor's and notifier's messages carry the user, and the operator's revocation Queries one
 * player's partition.
 */
export const SUBMISSIONS_TABLE_KEY = 'userId';
export const SUBMISSIONS_TABLE_SORT_KEY = 'submissionId';
/**
 * The submissions table's construct id. A key schema cannot change in place: this id is new with
 * the player key (it was `SubmissionsTable`, keyed by submission id alone), so CloudFormation
 * creates a new table and removes the old one from the stack: retained on production stages,
 * deleted on the others (docs/DYNAMODB.md, "Upgrading from the table keyed by submission id").
 */
export const SUBMISSIONS_TABLE_ID = 'SubmissionsByPlayerTable';
export const USERS_TABLE_KEY = 'userId';
/** The quotas table (shared/src/aws/dynamodb/quotas.rs `quota_attribute`): one item per user and window. */
export const QUOTAS_TABLE_KEY = 'userId';
/** Unix seconds at which the window starts (a number, so windows sort in time order). */
export const QUOTAS_TABLE_SORT_KEY = 'windowStart';
/** Unix seconds after which DynamoDB's TTL may delete the item (the window's end plus a day). */
export const QUOTAS_TABLE_TTL = 'expiresAt';
/**
 * A submission item's outcome attribute and the two outcomes the boards follow
 * (shared/src/aws/dynamodb/items.rs `attr::STATUS`, STATUS_ACCEPTED, STATUS_REJECTED): the ranker's
 * stream filters name them.
 */
export const STATUS_ATTRIBUTE = 'status';
export const STATUS_ACCEPTED = 'accepted';
export const STATUS_REJECTED = 'rejected';
/** The boards function's routes (ingest/src/boards.rs); every other request goes to ingest ($default). */
export const BOARDS_ROUTES = ['/v1/leaderboards/{heroId}', '/v1/leaderboards/{heroId}/players/{userId}'] as const;

export const ENV = {
  jwtAlgorithm: 'JWT_ALGORITHM',
  jwtSecret: 'JWT_SECRET',
  jwtPublicKeyPem: 'JWT_PUBLIC_KEY_PEM',
  jwtIssuer: 'JWT_ISSUER',
  jwtAudience: 'JWT_AUDIENCE',
  jwtLeewaySeconds: 'JWT_LEEWAY_SECONDS',
  jwtKeyId: 'JWT_KEY_ID',
  jwtJwksUrl: 'JWT_JWKS_URL',
  submissionsQueueUrl: 'SUBMISSIONS_QUEUE_URL',
  maxReceiveCount: 'MAX_RECEIVE_COUNT',
  submissionsTable: 'SUBMISSIONS_TABLE',
  usersTable: 'USERS_TABLE',
  quotasTable: 'QUOTAS_TABLE',
  quotaCounter: 'QUOTA_COUNTER',
  userQuotaLimit: 'USER_QUOTA_LIMIT',
  userQuotaWindowSeconds: 'USER_QUOTA_WINDOW_SECONDS',
  rejectionsQueueUrl: 'REJECTIONS_QUEUE_URL',
  rejectionsTopicArn: 'REJECTIONS_TOPIC_ARN',
  userCacheTtlSeconds: 'USER_CACHE_TTL_SECONDS',
  rankIndexUrl: 'RANK_INDEX_URL',
  metricsNamespace: 'METRICS_NAMESPACE',
  metricsStage: 'METRICS_STAGE',
  rustLog: 'RUST_LOG',
} as const;

/**
 * The functions' metrics (shared/src/metrics.rs), in the order each writes them: Embedded Metric
 * Format lines on stdout under this namespace with the one dimension set [Stage, Function]. The
 * processor and notifier write one line per SQS batch, the ranker one per stream batch
 * (processor/src/ranker.rs); ingest and boards write one line only, on the first request of an
 * execution environment. `ColdStart` (Count 1) is in the first line of each execution environment
 * only, `BatchDurationMs` is in milliseconds, the rest are counts.
 */
export const METRICS_NAMESPACE = 'ScorePipeline';
export const INGEST_METRICS = ['ColdStart'] as const;
export const PROCESSOR_METRICS = [
  'Records',
  'Submissions',
  'Accepted',
  'Rejected',
  'RateLimited',
  'AlreadyDecided',
  'IdempotencyConflicts',
  'Malformed',
  'UnreadableUserEntries',
  'MarkedFailed',
  'FailedRecords',
  'ColdStart',
  'BatchDurationMs',
] as const;
export const NOTIFIER_METRICS = [
  'Records',
  'Published',
  'AlreadyNotified',
  'UnmarkedNotifications',
  'Malformed',
  'FailedRecords',
  'ColdStart',
  'BatchDurationMs',
] as const;
export const RANKER_METRICS = [
  'ChangeRecords',
  'BoardOffers',
  'BoardRevocations',
  'BoardWrites',
  'UnreadableChanges',
  'FailedChangeBatches',
  'ColdStart',
  'BatchDurationMs',
] as const;
export const BOARDS_METRICS = ['ColdStart'] as const;
export const EMF_METRICS = {
  ingest: INGEST_METRICS,
  processor: PROCESSOR_METRICS,
  notifier: NOTIFIER_METRICS,
  ranker: RANKER_METRICS,
  boards: BOARDS_METRICS,
} as const;
type EmfMetricName<F extends Binary> = (typeof EMF_METRICS)[F][number];
/** A batch's outcome counts: what a consumer did with its records (not ColdStart, not BatchDurationMs). */
function batchOutcomes<F extends 'processor' | 'notifier' | 'ranker'>(fn: F): EmfMetricName<F>[] {
  return (EMF_METRICS[fn] as readonly EmfMetricName<F>[]).filter((name) => name !== 'ColdStart' && name !== 'BatchDurationMs');
}

/** The binaries the stack deploys, each from `<zip dir>/<bin>/bootstrap.zip` (`scripts/package.sh`). */
export const BINARIES = ['ingest', 'processor', 'notifier', 'ranker', 'boards'] as const;
export type Binary = (typeof BINARIES)[number];

// ---------------------------------------------------------------------------------------------
// Rules with a reason.

/**
 * AWS's rule for SQS event sources: the queue's visibility timeout is at least six times the
 * function timeout (plus the batching window), so a message is not handed to a second invocation
 * while Lambda is still retrying a throttled or failed first one.
 */
export const VISIBILITY_TIMEOUT_FACTOR = 6;
/**
 * The longest SQS keeps a message. The status API reports an id without a stored outcome as
 * `pending` for this long (README), and parked messages wait this long for an operator.
 */
const MESSAGE_RETENTION = Duration.days(14);
/**
 * The rank index: ElastiCache Serverless for Valkey (Redis OSS compatible, the cheaper serverless
 * engine), its newest major version CloudFormation accepts. TLS is always on for serverless
 * caches; the primary endpoint listens on 6379 (fixed). Its reader endpoint (6380) stays closed:
 * the Rust client (shared/src/redis_index.rs) reads from the primary.
 */
const RANK_INDEX_ENGINE = 'valkey';
const RANK_INDEX_MAJOR_ENGINE_VERSION = '8';
export const RANK_INDEX_PORT = 6379;
/**
 * The rank index's CloudWatch metrics: namespace AWS/ElastiCache, and for a serverless cache only
 * the dimension `clusterId` (camelCase) with the cache's name as its value. Not `CacheClusterId`
 * (node-based clusters) nor `ServerlessCacheName`: a graph or alarm on either finds no data, so
 * the graphs stay empty and the alarms never fire (cdklabs/cdk-monitoring-constructs#766).
 */
export const RANK_INDEX_METRICS_NAMESPACE = 'AWS/ElastiCache';
export const RANK_INDEX_METRICS_DIMENSION = 'clusterId';
/**
 * Bytes in a GB of `rankIndexMaxDataStorageGb` (the cache's `DataStorage` limit, unit "GB").
 * The CloudFormation and ElastiCache documentation say only "GB", not whether 10^9 or 2^30 bytes
 * (CDK's alpha ServerlessCache construct assumes GiB); 10^9 is the smaller, so the
 * storage alarm fires no later than its fraction of the cap either way (at 74.5 % of a cap of
 * 2^30-byte GB: AWS recommends alarming at 75 %).
 */
export const BYTES_PER_GB = 1_000_000_000;
/** The share of `rankIndexMaxDataStorageGb` at which the RankIndexStorageNearCap alarm fires. */
export const RANK_INDEX_STORAGE_ALARM_FRACTION = 0.8;
/** Alarm periods: short enough to page within minutes, long enough to smooth single blips. */
const ALARM_PERIOD = Duration.minutes(5);
const DLQ_ALARM_PERIOD = Duration.minutes(1);
/** Throttling of the rank index: a minute at a time, alarming on 2 of 3 (one blip is not a page). */
const THROTTLE_ALARM_PERIOD = Duration.minutes(1);
/** Dashboard graphs: a point a minute (SQS and Lambda publish at that resolution). */
const DASHBOARD_PERIOD = Duration.minutes(1);
const DASHBOARD_WIDGET_WIDTH = 8;
const DASHBOARD_WIDGET_HEIGHT = 6;
/**
 * The HTTP API's access log line, written only with `apiAccessLogs=true` (off by default). JSON
 * for Logs Insights, and only what the functions' own lines do not carry. Ingest writes a line for
 * each submission it accepts (with the correlation id) and for each request it refuses or fails
 * (method, path, status, source IP, error); the Api5xx alarm and the dashboard's 4xx/5xx graph
 * come from API Gateway's metrics. (Successful reads, status lookups and the boards function's
 * leaderboards, get no function line at the default level.) What is left is what only API Gateway
 * sees:
 *
 * - the requests it answers itself, which no function logs: throttling (429 past
 *   `apiRateLimit`/`apiBurstLimit`) and integration failures (a 5xx when Lambda could not be
 *   invoked, failed or timed out), with `status` and `error` (the integration's error message,
 *   `-` when there is none);
 * - the caller's source IP (`ip`) of every request; ingest logs it (`source_ip`) only on the
 *   lines of refused and failed requests;
 * - API Gateway's latency for the whole request (`latency`, ms), the integration's (and a cold
 *   start's) included;
 * - `requestId`, API Gateway's id of the request, which clients get as the `apigw-requestid`
 *   response header (ingest's correlation id is its own: the two lines meet by time and path);
 *   and `request` ("POST /v1/scores"), method and path in one string.
 *
 * Left out of the earlier 12-field line: requestTime (CloudWatch stamps each event), routeKey,
 * protocol, responseLength, and integrationLatency (the dashboard graphs its p99 from API
 * Gateway's metrics).
 *
 * Cost: rendered with realistic values (request id `JxP6vj3XoAMEb_w=`, IPv4 address
 * 203.0.113.45, `POST /v1/scores`, status 202, latency 12, error `-`) a line is 122 bytes, at
 * $0.50 per GB ingested about $0.061 per million requests; the earlier line, with the same kind
 * of values, was 290 bytes ($0.145). The API's endpoint is IPv4 only (no ipAddressType), so the
 * longest address adds 3 bytes; a line only grows much where `error` holds a message, which is
 * rare. test/api.test.ts renders the synthesized format and holds it under 140 bytes.
 */
const ACCESS_LOG_FORMAT = JSON.stringify({
  requestId: '$context.requestId',
  ip: '$context.identity.sourceIp',
  request: '$context.httpMethod $context.path',
  status: '$context.status',
  latency: '$context.responseLatency',
  error: '$context.integrationErrorMessage',
});

/**
 * Lambda's application log level for a RUST_LOG value. With the JSON log format Lambda filters
 * application lines again, on their `level` field, and counts a line without one (or without a
 * valid RFC 3339 `timestamp`) as INFO. The Rust JSON log lines carry both, so Lambda filters them
 * at the level they were logged at; the EMF metric lines carry a `timestamp` and, as `level`, this
 * application log level itself, never below INFO (shared/src/metrics.rs), so they pass at any
 * setting. So the level is the most verbose one RUST_LOG lets through (a directive naming only a
 * target, or a level it does not know, counts as TRACE), so that Lambda never drops a line the
 * Rust filter kept, and at least INFO: a stricter level would drop nothing RUST_LOG had not held
 * back already, and would only make the metric lines, which take it as their level, read as
 * warnings or errors.
 */
export function applicationLogLevelFor(rustLog: string): lambda.ApplicationLogLevel {
  const byVerbosity = [
    lambda.ApplicationLogLevel.INFO,
    lambda.ApplicationLogLevel.DEBUG,
    lambda.ApplicationLogLevel.TRACE,
  ];
  // tracing's LevelFilter names (and digits), least to most verbose; "off" enables nothing.
  const verbosity = (level: string): number => {
    switch (level.trim().toLowerCase()) {
      case 'off':
      case '0':
      case 'error':
      case '1':
      case 'warn':
      case '2':
      case 'info':
      case '3':
        return 0;
      case 'debug':
      case '4':
        return 1;
      default: // trace, 5, or anything else
        return 2;
    }
  };
  const levels = rustLog
    .split(',')
    .map((directive) => directive.trim())
    .filter((directive) => directive !== '')
    .map((directive) => {
      const equals = directive.lastIndexOf('=');
      if (equals >= 0) return verbosity(directive.slice(equals + 1));
      // A bare level, or a bare target (which enables every level of that target).
      return /^(off|error|warn|info|debug|trace|[0-5])$/i.test(directive) ? verbosity(directive) : 2;
    });
  return byVerbosity[Math.max(0, ...levels)]!;
}

/** Reads the settings from the app's context and adds the stack for that stage. */
export function addScorePipeline(app: App): ScorePipelineStack {
  const settings = readSettings((key) => app.node.tryGetContext(key));
  return new ScorePipelineStack(app, stackName(settings), {
    settings,
    description: `Score ingest pipeline (${settings.stage}): HTTP API, SQS, Lambda (Rust), DynamoDB, SNS`,
    // A production stack holds the only copy of accepted scores; deleting it takes two steps.
    terminationProtection: settings.production,
  });
}

export interface ScorePipelineStackProps extends StackProps {
  readonly settings: Settings;
}

interface QueueWithDeadLetters {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
}

interface TableOptions {
  readonly sortKey?: dynamodb.Attribute;
  /** The number attribute (Unix seconds) after which DynamoDB's TTL may delete an item. */
  readonly timeToLiveAttribute?: string;
  /** Default true; turn it off only for data that is worthless after a restore. */
  readonly pointInTimeRecovery?: boolean;
  /** The table's change stream, if it has one. */
  readonly stream?: dynamodb.StreamViewType;
}

interface RustFunction {
  readonly fn: lambda.Function;
  readonly role: iam.Role;
}

/** The rank index's network: isolated subnets, and a security group each for its clients and itself. */
interface RankIndexNetwork {
  readonly vpc: ec2.Vpc;
  readonly subnets: ec2.ISubnet[];
  /** The ranker's and the boards function's: out to the rank index port of `cache` only. */
  readonly clients: ec2.SecurityGroup;
  /** The rank index's: in from `clients` (and the processor's group, if any) on the rank index port only. */
  readonly cache: ec2.SecurityGroup;
}

/** Where a function runs in a VPC: its subnets and its security group. */
interface VpcPlacement {
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.ISubnet[];
  readonly securityGroup: ec2.SecurityGroup;
}

/**
 * The processor's place in the rank index VPC (quotaCounter=cache), and the VPC endpoints of the
 * AWS services it calls from there, by IAM service prefix (`dynamodb`, `sqs`).
 */
interface ProcessorNetwork {
  readonly placement: VpcPlacement;
  readonly endpoints: ReadonlyMap<string, ec2.VpcEndpoint>;
}

export class ScorePipelineStack extends Stack {
  private readonly settings: Settings;
  /** Stateful resources (tables, queues, keys, logs, the rank index) survive a production stack's deletion. */
  private readonly removalPolicy: RemovalPolicy;
  private readonly alarmAction: SnsAction;

  constructor(scope: Construct, id: string, props: ScorePipelineStackProps) {
    super(scope, id, props);
    const s = props.settings;
    this.settings = s;
    this.removalPolicy = s.production ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;
    Tags.of(this).add('project', 'score-pipeline');
    Tags.of(this).add('stage', s.stage);

    // --- Storage -----------------------------------------------------------------------------
    // Keyed by player and submission id, without an index: one write unit per write. Its stream
    // (both images: a revocation is an accepted item turned rejected) feeds the players'
    // leaderboards.
    const submissionsTable = this.table(SUBMISSIONS_TABLE_ID, SUBMISSIONS_TABLE_KEY, {
      sortKey: { name: SUBMISSIONS_TABLE_SORT_KEY, type: dynamodb.AttributeType.STRING },
      stream: dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
    });
    const usersTable = this.table('UsersTable', USERS_TABLE_KEY);
    // Short-lived counters that TTL deletes a day after their window: nothing worth restoring.
    const quotasTable = this.table('QuotasTable', QUOTAS_TABLE_KEY, {
      sortKey: { name: QUOTAS_TABLE_SORT_KEY, type: dynamodb.AttributeType.NUMBER },
      timeToLiveAttribute: QUOTAS_TABLE_TTL,
      pointInTimeRecovery: false,
    });

    // --- Queues and topics -------------------------------------------------------------------
    const submissions = this.queueWithDeadLetters('Submissions', s.processor);
    const rejections = this.queueWithDeadLetters('Rejections', s.notifier);

    // A customer managed key, because CloudWatch can only publish alarms to a topic whose key
    // policy lets it (the AWS managed aws/sns key cannot be changed).
    const topicKey = new kms.Key(this, 'TopicKey', {
      description: `Encrypts the score pipeline's SNS topics (${s.stage})`,
      enableKeyRotation: true,
      removalPolicy: this.removalPolicy,
      pendingWindow: Duration.days(7),
    });
    const rejectionsTopic = new sns.Topic(this, 'RejectionsTopic', {
      displayName: `Score rejections (${s.stage})`,
      masterKey: topicKey,
      enforceSSL: true,
    });
    const alarmTopic = this.alarmTopic(topicKey);
    this.alarmAction = new SnsAction(alarmTopic);

    // --- Rank index (the players' leaderboards) and its network -------------------------------
    // Before the functions: with quotaCounter=cache the processor joins this network too.
    const network = this.rankIndexNetwork();
    const processorNetwork = s.quotaCounter === 'cache' ? this.processorNetwork(network) : undefined;
    const rankIndex = this.rankIndex(network);
    // TLS is always on for a serverless cache, hence rediss://.
    const rankIndexUrl = `rediss://${rankIndex.attrEndpointAddress}:${rankIndex.attrEndpointPort}`;

    // --- Functions and their permissions ---------------------------------------------------
    const ingest = this.rustFunction('Ingest', 'ingest', s.ingest, {
      ...this.tokenEnvironment(),
      [ENV.submissionsQueueUrl]: submissions.queue.queueUrl,
      [ENV.submissionsTable]: submissionsTable.tableName,
      // Its ColdStart metric, on the first request of each execution environment.
      ...this.metricsEnvironment(),
    });
    // Enqueue (SendMessageBatch is authorized as SendMessage) and read one status by id.
    // Nothing else: ingest never writes the database.
    allow(ingest, ['sqs:SendMessage'], [submissions.queue.queueArn]);
    allow(ingest, ['dynamodb:GetItem'], [submissionsTable.tableArn]);

    // The quotas table stays in both modes (and stays named while the limit is 0): switching the
    // counter, or turning the quota off and on again, is a setting change, not a table
    // replacement. Only the table counter names it to the processor and grants it.
    const quotaEnvironment: Record<string, string> =
      s.quotaCounter === 'cache'
        ? {
            // The same cache and URL as the ranker's; no RANK_INDEX_NAMESPACE, like the ranker.
            [ENV.quotaCounter]: 'cache',
            [ENV.rankIndexUrl]: rankIndexUrl,
          }
        : { [ENV.quotaCounter]: 'table', [ENV.quotasTable]: quotasTable.tableName };
    const processor = this.rustFunction(
      'Processor',
      'processor',
      s.processor,
      {
        [ENV.submissionsTable]: submissionsTable.tableName,
        [ENV.usersTable]: usersTable.tableName,
        [ENV.rejectionsQueueUrl]: rejections.queue.queueUrl,
        [ENV.userCacheTtlSeconds]: String(s.userCacheTtlSeconds),
        ...quotaEnvironment,
        [ENV.userQuotaLimit]: String(s.userQuotaLimit),
        [ENV.userQuotaWindowSeconds]: String(s.userQuotaWindowSeconds),
        // The submissions queue's redrive count: on a record's last receive (ApproximateReceiveCount
        // >= this) the processor marks the submissions it could not finish `failed` before SQS
        // parks the message in the dead-letter queue.
        [ENV.maxReceiveCount]: String(s.maxReceiveCount),
        ...this.metricsEnvironment(),
      },
      processorNetwork?.placement,
    );
    // So that its first invocations find the endpoints in place: without the dependency
    // CloudFormation may create the function, and Lambda invoke it, before they exist.
    if (processorNetwork !== undefined) processor.fn.node.addDependency(...processorNetwork.endpoints.values());
    // The processor's calls to AWS APIs. In the VPC each also goes into the policy of the endpoint
    // it passes through, so that an endpoint lets through exactly what the processor may call (and
    // a call to a service without an endpoint there fails the synth).
    const processorCalls = (actions: string[], resources: string[]): void => {
      allow(processor, actions, resources);
      if (processorNetwork !== undefined) allowThroughEndpoint(processorNetwork.endpoints, actions, resources);
    };
    processorCalls(['dynamodb:BatchGetItem'], [usersTable.tableArn]);
    // PutItem stores each submission, conditionally (no item yet, or only a `failed` marker).
    // GetItem because a failed condition answers with the stored item
    // (ReturnValuesOnConditionCheckFailure=ALL_OLD), which reads it. BatchGetItem reads earlier
    // verdicts (strongly consistent) so that a stored verdict stands when a client retry arrives
    // in a later quota window. The table only: it has no index.
    processorCalls(['dynamodb:PutItem', 'dynamodb:GetItem', 'dynamodb:BatchGetItem'], [submissionsTable.tableArn]);
    if (s.quotaCounter === 'table') {
      // The conditional UpdateItem that adds a batch's ids to the window's set. GetItem because a
      // failed condition answers with the stored set (ReturnValuesOnConditionCheckFailure=ALL_OLD),
      // which reads the item; nothing else reads or writes the table. (The cache counter needs
      // no grant: network access to the cache, like the ranker's.)
      processorCalls(['dynamodb:UpdateItem', 'dynamodb:GetItem'], [quotasTable.tableArn]);
    }
    processorCalls(['sqs:SendMessage'], [rejections.queue.queueArn]);
    // Lambda polls the queue from outside the VPC: the consume permissions need no endpoint.
    this.consume(processor, submissions.queue, s.processor);

    const notifier = this.rustFunction('Notifier', 'notifier', s.notifier, {
      [ENV.rejectionsTopicArn]: rejectionsTopic.topicArn,
      [ENV.submissionsTable]: submissionsTable.tableName,
      ...this.metricsEnvironment(),
    });
    // sns:Publish (also covers PublishBatch) plus the topic key's data-key calls.
    rejectionsTopic.grantPublish(notifier.role);
    // The outbox: BatchGetItem reads which rejections were already notified (strongly
    // consistent), UpdateItem marks a rejection notified after publishing it. The table only.
    allow(notifier, ['dynamodb:BatchGetItem', 'dynamodb:UpdateItem'], [submissionsTable.tableArn]);
    this.consume(notifier, rejections.queue, s.notifier);

    // --- The rank index's own clients: the ranker and the boards function ----------------------
    // In its isolated subnets, with the clients' security group (egress to the cache only).
    const rankIndexClients: VpcPlacement = { vpc: network.vpc, subnets: network.subnets, securityGroup: network.clients };

    // Where the stream event source reports a batch it gave up on (records past the maximum
    // age): the shard and sequence numbers, for an operator to replay while the stream holds them.
    const rankerFailures = new sqs.Queue(this, 'RankerFailureQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: MESSAGE_RETENTION,
      removalPolicy: this.removalPolicy,
    });
    const ranker = this.rustFunction(
      'Ranker',
      'ranker',
      s.ranker,
      { [ENV.rankIndexUrl]: rankIndexUrl, ...this.metricsEnvironment() },
      rankIndexClients,
    );
    // The stream read permissions come with the event source; nothing else: the ranker calls the
    // rank index only.
    this.rankChanges(ranker, submissionsTable, rankerFailures, s.ranker);

    const boards = this.rustFunction(
      'Boards',
      'boards',
      s.boards,
      {
        // It checks the callers' tokens like ingest.
        ...this.tokenEnvironment(),
        [ENV.rankIndexUrl]: rankIndexUrl,
        // Its ColdStart metric, on the first request of each execution environment.
        ...this.metricsEnvironment(),
      },
      rankIndexClients,
    );
    // No grant: the boards function reads the rank index only (network access, no IAM).

    // --- Operators ---------------------------------------------------------------------------
    const operatorPolicy = this.operatorPolicy(usersTable, submissionsTable);

    // --- HTTP API ----------------------------------------------------------------------------
    const api = this.httpApi(ingest.fn, boards.fn);

    // --- Alarms ------------------------------------------------------------------------------
    this.queueAlarms('Submissions', submissions);
    this.queueAlarms('Rejections', rejections);
    this.functionAlarms('Ingest', ingest.fn);
    this.functionAlarms('Processor', processor.fn);
    this.functionAlarms('Notifier', notifier.fn);
    this.functionAlarms('Ranker', ranker.fn);
    this.functionAlarms('Boards', boards.fn);
    this.rankerAlarms(ranker.fn, rankerFailures);
    this.rankIndexAlarms(rankIndex);
    this.alarm('Api5xx', {
      metric: api.api.metricServerError({ period: ALARM_PERIOD, statistic: 'Sum' }),
      threshold: s.api5xxAlarmThreshold - 1, // alarms fire above the threshold: at api5xxAlarmThreshold or more
      description: `At least ${s.api5xxAlarmThreshold} HTTP API 5xx answers in 5 minutes (queue unavailable, ingest failing, or integration errors)`,
    });
    this.alarm('ProcessorFailedRecords', {
      metric: this.emfMetric('processor', 'FailedRecords', { period: ALARM_PERIOD }),
      threshold: s.processorFailedRecordsAlarmThreshold - 1, // at processorFailedRecordsAlarmThreshold or more
      description:
        `At least ${s.processorFailedRecordsAlarmThreshold} processor records failed in 5 minutes and went back to the queue ` +
        `(DynamoDB, quota ${s.quotaCounter === 'cache' ? 'cache' : 'table'} or rejections queue errors, or malformed messages); see the processor logs`,
    });

    // --- Dashboard ---------------------------------------------------------------------------
    this.dashboard({
      api: api.api,
      submissions,
      rejections,
      rankerFailures,
      rankIndex,
      functions: { ingest: ingest.fn, processor: processor.fn, notifier: notifier.fn, ranker: ranker.fn, boards: boards.fn },
    });

    // --- Outputs -----------------------------------------------------------------------------
    output(
      this,
      'ApiUrl',
      api.stage.url,
      'Base URL of the HTTP API (POST v1/scores, GET v1/submissions/{id}, GET v1/leaderboards/{heroId}; GET openapi.json lists every route)',
    );
    output(this, 'RejectionsTopicArn', rejectionsTopic.topicArn, 'Subscribe here for rejection notifications (filter on userId)');
    output(this, 'AlarmTopicArn', alarmTopic.topicArn, 'Alarm notifications');
    output(this, 'SubmissionsTableName', submissionsTable.tableName, 'Submissions table');
    output(this, 'UsersTableName', usersTable.tableName, 'Users directory table (operators write it)');
    output(
      this,
      'QuotasTableName',
      quotasTable.tableName,
      s.quotaCounter === 'table'
        ? 'Per-user submission quota counters (the processor writes it)'
        : 'Per-user submission quota counters with quotaCounter=table (unused: the processor counts in the rank index cache)',
    );
    output(this, 'SubmissionsQueueUrl', submissions.queue.queueUrl, 'Submissions queue');
    output(this, 'SubmissionsDeadLetterQueueUrl', submissions.deadLetterQueue.queueUrl, 'Submissions dead-letter queue');
    output(this, 'RejectionsQueueUrl', rejections.queue.queueUrl, 'Rejections queue');
    output(this, 'RejectionsDeadLetterQueueUrl', rejections.deadLetterQueue.queueUrl, 'Rejections dead-letter queue');
    output(this, 'IngestFunctionName', ingest.fn.functionName, 'Ingest function');
    output(this, 'ProcessorFunctionName', processor.fn.functionName, 'Processor function');
    output(this, 'NotifierFunctionName', notifier.fn.functionName, 'Notifier function');
    output(this, 'RankerFunctionName', ranker.fn.functionName, 'Ranker function (submissions table stream -> rank index)');
    output(this, 'BoardsFunctionName', boards.fn.functionName, 'Boards function (the leaderboard routes)');
    output(this, 'RankerFailureQueueUrl', rankerFailures.queueUrl, 'Stream batches the ranker gave up on (their shard and sequence numbers)');
    // Ref of a serverless cache is its name.
    output(this, 'RankIndexName', rankIndex.ref, 'The rank index (ElastiCache Serverless cache name)');
    output(
      this,
      'RankIndexEndpoint',
      `${rankIndex.attrEndpointAddress}:${rankIndex.attrEndpointPort}`,
      'The rank index endpoint (TLS; reachable from the rank index VPC only)',
    );
    output(this, 'OperatorPolicyArn', operatorPolicy.managedPolicyArn, 'Attach to the users and roles that run the users operator tool');

    if (s.missingJwtSettings.length > 0) {
      Annotations.of(ingest.fn).addWarningV2(
        'score-pipeline:incomplete-token-settings',
        `The ingest function will refuse to start (and so every request) until the token settings are given: ` +
          `${s.missingJwtSettings.join(', ')}. See infra/README.md.`,
      );
      Annotations.of(boards.fn).addWarningV2(
        'score-pipeline:incomplete-token-settings',
        `The boards function will refuse to start (and so every leaderboard request) until the token settings are given: ` +
          `${s.missingJwtSettings.join(', ')}. See infra/README.md.`,
      );
    }
  }

  // -------------------------------------------------------------------------------------------

  /**
   * An on-demand table with a string partition key, the sort key of `options` if any, and (unless
   * `options` turn it off) point-in-time recovery. In production it has deletion protection and
   * is retained: a table the stack drops or replaces (a new construct id) stays in the account.
   */
  private table(id: string, partitionKey: string, options: TableOptions = {}): dynamodb.Table {
    return new dynamodb.Table(this, id, {
      partitionKey: { name: partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: options.sortKey,
      timeToLiveAttribute: options.timeToLiveAttribute,
      stream: options.stream,
      // Traffic is bursty and client driven: on-demand removes capacity planning.
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: options.pointInTimeRecovery ?? true },
      deletionProtection: this.settings.production,
      removalPolicy: this.removalPolicy,
    });
  }

  /** A queue for `consumer` and the dead-letter queue it parks poison messages in. */
  private queueWithDeadLetters(name: string, consumer: ConsumerSettings): QueueWithDeadLetters {
    const deadLetterQueue = new sqs.Queue(this, `${name}DeadLetterQueue`, {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: MESSAGE_RETENTION,
      removalPolicy: this.removalPolicy,
    });
    const queue = new sqs.Queue(this, `${name}Queue`, {
      // SSE-SQS: encrypted at rest with no key for producers and consumers to be granted.
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: MESSAGE_RETENTION,
      visibilityTimeout: visibilityTimeoutFor(consumer),
      deadLetterQueue: { queue: deadLetterQueue, maxReceiveCount: this.settings.maxReceiveCount },
      removalPolicy: this.removalPolicy,
    });
    return { queue, deadLetterQueue };
  }

  /** The alarm topic: CloudWatch may publish to it (and use its key), nobody else needs to. */
  private alarmTopic(key: kms.Key): sns.Topic {
    const topic = new sns.Topic(this, 'AlarmTopic', {
      displayName: `Score pipeline alarms (${this.settings.stage})`,
      masterKey: key,
    });
    const cloudwatchPrincipal = new iam.ServicePrincipal('cloudwatch.amazonaws.com');
    topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [cloudwatchPrincipal],
        actions: ['sns:Publish'],
        resources: [topic.topicArn],
        // Only alarms of this account (confused-deputy protection).
        conditions: {
          StringEquals: { 'aws:SourceAccount': this.account },
          ArnLike: { 'aws:SourceArn': `arn:${this.partition}:cloudwatch:${this.region}:${this.account}:alarm:*` },
        },
      }),
    );
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsUseTopicKey',
        principals: [cloudwatchPrincipal],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
      }),
    );
    if (this.settings.alarmEmail !== undefined) {
      topic.addSubscription(new EmailSubscription(this.settings.alarmEmail));
    }
    return topic;
  }

  /**
   * A Rust function from cargo-lambda's zip, with its own role (no managed policies: the only
   * logging permission is writing to its own log group) and a log group with retention. With a
   * `placement`, it runs in those subnets with that security group.
   */
  private rustFunction(
    id: string,
    binary: Binary,
    sizing: FunctionSettings,
    environment: Record<string, string>,
    placement?: VpcPlacement,
  ): RustFunction {
    const s = this.settings;
    const zip = path.join(s.lambdaZipDir, binary, 'bootstrap.zip');
    if (!fs.existsSync(zip)) {
      throw new Error(
        `${zip} is missing: run "make package" (scripts/package.sh) first, ` +
          `or point -c lambdaZipDir=DIR at a directory holding <${BINARIES.join('|')}>/bootstrap.zip`,
      );
    }
    checkBootstrap(zip, s.architecture);

    const role = new iam.Role(this, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `The ${binary} function of the score pipeline (${s.stage})`,
    });
    const logGroup = new logs.LogGroup(this, `${id}Logs`, {
      retention: s.logRetentionDays as logs.RetentionDays,
      removalPolicy: this.removalPolicy,
    });
    logGroup.grantWrite(role);
    const fn = new lambda.Function(this, id, {
      description: `Score pipeline ${binary} (${s.stage})`,
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: s.architecture === 'arm64' ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64,
      handler: 'bootstrap',
      code: lambda.Code.fromAsset(zip),
      memorySize: sizing.memoryMb,
      timeout: Duration.seconds(sizing.timeoutSeconds),
      role,
      logGroup,
      // JSON lines pass through as they are (the Rust code writes JSON under Lambda, EMF lines
      // included); Lambda's own platform lines become JSON too, and only warnings of those are kept.
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: applicationLogLevelFor(s.rustLog),
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
      // Adds xray:PutTraceSegments and xray:PutTelemetryRecords (on "*") to the role.
      tracing: lambda.Tracing.ACTIVE,
      environment: { ...environment, [ENV.rustLog]: s.rustLog },
      // A role given here gets no managed policy from CDK (not AWSLambdaVPCAccessExecutionRole
      // either): the network interface permissions are the explicit statements below.
      ...(placement === undefined
        ? {}
        : { vpc: placement.vpc, vpcSubnets: { subnets: placement.subnets }, securityGroups: [placement.securityGroup] }),
    });
    const target = { fn, role };
    if (placement !== undefined) this.allowNetworkInterfaces(target, placement);
    return target;
  }

  /**
   * What Lambda calls with a VPC function's role to give it its network interfaces at `placement`
   * (AWSLambdaVPCAccessExecutionRole's EC2 actions but DescribeSubnets, which the Lambda
   * developer guide does not list, scoped where EC2 allows it). CreateNetworkInterface is
   * authorized on the new interface (`network-interface/*`: Lambda's own check of the role, when
   * the function is created or updated, asks for that resource) and on the subnet and security
   * group it names, so interfaces can only be made in these subnets with the function's own
   * group. Interface ids are not known in advance: deleting and re-addressing them is allowed on
   * any interface of this account and region. DescribeNetworkInterfaces has no resource-level
   * permissions, so it needs "*".
   */
  private allowNetworkInterfaces(target: RustFunction, placement: VpcPlacement): void {
    const arn = (resource: string, resourceName: string) => this.formatArn({ service: 'ec2', resource, resourceName });
    const anyInterface = arn('network-interface', '*');
    allow(
      target,
      ['ec2:CreateNetworkInterface'],
      [
        anyInterface,
        ...placement.subnets.map((subnet) => arn('subnet', subnet.subnetId)),
        arn('security-group', placement.securityGroup.securityGroupId),
      ],
    );
    allow(target, ['ec2:DeleteNetworkInterface', 'ec2:AssignPrivateIpAddresses', 'ec2:UnassignPrivateIpAddresses'], [anyInterface]);
    allow(target, ['ec2:DescribeNetworkInterfaces'], ['*']);
  }

  /**
   * The rank index's network: two availability zones of isolated subnets only. No NAT gateway,
   * no internet gateway: the ranker and boards functions talk to the rank index and nothing else
   * (Lambda polls the stream and API Gateway invokes them from outside). The processor's
   * endpoints, with quotaCounter=cache, are the only other way out (`processorNetwork`).
   */
  private rankIndexNetwork(): RankIndexNetwork {
    const vpc = new ec2.Vpc(this, 'RankIndexVpc', {
      maxAzs: 2,
      natGateways: 0,
      createInternetGateway: false,
      subnetConfiguration: [{ name: 'RankIndex', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 }],
      // Restricting the default security group takes a custom resource (a Lambda function and a
      // role in the template). Nothing here uses the default group: the functions and the cache
      // each get their own below, so its default rules reach nothing.
      restrictDefaultSecurityGroup: false,
    });
    const clients = new ec2.SecurityGroup(this, 'RankIndexClientSecurityGroup', {
      vpc,
      description: `The ranker and boards functions (${this.settings.stage}): out to the rank index only`,
      allowAllOutbound: false,
    });
    const cache = new ec2.SecurityGroup(this, 'RankIndexSecurityGroup', {
      vpc,
      description: `The rank index (${this.settings.stage}): in from the ranker and boards functions only`,
      // It starts no connection (answers leave on the connection they belong to).
      allowAllOutbound: false,
    });
    const port = ec2.Port.tcp(RANK_INDEX_PORT);
    // Rules naming another group are standalone resources; adding the egress one makes
    // CloudFormation drop the clients' group's default allow-all egress, so this is its only one.
    clients.addEgressRule(cache, port, 'To the rank index');
    cache.addIngressRule(clients, port, 'From the ranker and boards functions');
    return { vpc, subnets: vpc.isolatedSubnets, clients, cache };
  }

  /**
   * The processor's place in the rank index VPC when it counts quotas in the cache: its own
   * security group, admitted by the cache's group on the rank index port, and the VPC endpoints
   * of the two AWS services it calls, DynamoDB (a gateway endpoint: free) and SQS (an interface
   * endpoint: billed by the hour in each zone, see README.md, Costs). Nothing else leaves the
   * VPC: CloudWatch Logs (its JSON lines, EMF metrics included) and X-Ray go through Lambda
   * itself, as for the ranker, and Lambda polls the submissions queue from outside.
   *
   * The group's egress is three rules: the rank index port to the cache's group, HTTPS to the
   * SQS endpoint's group, and HTTPS to 0.0.0.0/0 for DynamoDB. That last one would better name
   * the region's DynamoDB prefix list (`pl-...`, what the gateway endpoint's routes point at),
   * but nothing in CloudFormation returns its id: an AWS::EC2::VPCEndpoint has no such attribute,
   * AWS::EC2::PrefixList only makes customer managed lists, and `ec2.PrefixList.fromLookup`
   * needs a concrete account and region and a lookup at synth (this app is environment agnostic
   * and synthesizes offline); a custom resource would add a Lambda function. 0.0.0.0/0 on 443
   * reaches nothing more: the isolated subnets' route tables have only the local route and the
   * gateway endpoint's DynamoDB routes (no internet, NAT, transit or peering gateway; the tests
   * check it), and in the VPC only the SQS endpoint admits 443 (from this group only).
   * DNS needs no rule: security groups do not filter the VPC's Amazon DNS server.
   */
  private processorNetwork(network: RankIndexNetwork): ProcessorNetwork {
    const stage = this.settings.stage;
    const { vpc, subnets } = network;
    const https = ec2.Port.tcp(443);
    const group = new ec2.SecurityGroup(this, 'ProcessorSecurityGroup', {
      vpc,
      description: `The processor function (${stage}): out to the rank index, and to DynamoDB and SQS through their VPC endpoints only`,
      allowAllOutbound: false,
    });
    const port = ec2.Port.tcp(RANK_INDEX_PORT);
    group.addEgressRule(network.cache, port, 'To the rank index (quota counters)');
    // The cache's group keeps its description, which still names only the ranker and boards: a
    // group's description cannot change in place (a new one replaces the group). The rule's own
    // description says whom it admits.
    network.cache.addIngressRule(group, port, 'From the processor (quota counters)');

    // At the stack's scope, not the VPC's: the endpoints are not retained with the rank index's
    // network on production stages (see rankIndex): they hold no data, bill by the hour, and
    // nothing retained refers to them.
    const dynamodbEndpoint = new ec2.GatewayVpcEndpoint(this, 'DynamoDbGatewayEndpoint', {
      vpc,
      service: ec2.GatewayVpcEndpointAwsService.DYNAMODB,
      // Adds the DynamoDB prefix list's routes to these subnets' route tables.
      subnets: [{ subnets }],
    });
    group.addEgressRule(ec2.Peer.anyIpv4(), https, 'To DynamoDB through the gateway endpoint (the only route out of the isolated subnets)');

    const sqsEndpointGroup = new ec2.SecurityGroup(this, 'SqsEndpointSecurityGroup', {
      vpc,
      description: `The SQS interface endpoint of the rank index VPC (${stage}): in from the processor on 443 only`,
      // It starts no connection (answers leave on the connection they belong to).
      allowAllOutbound: false,
    });
    sqsEndpointGroup.addIngressRule(group, https, 'From the processor');
    group.addEgressRule(sqsEndpointGroup, https, 'To the SQS endpoint');
    const sqsEndpoint = new ec2.InterfaceVpcEndpoint(this, 'SqsInterfaceEndpoint', {
      vpc,
      service: ec2.InterfaceVpcEndpointAwsService.SQS,
      // One interface per zone, where the processor's interfaces are.
      subnets: { subnets },
      // sqs.<region>.amazonaws.com resolves to the endpoint inside the VPC.
      privateDnsEnabled: true,
      securityGroups: [sqsEndpointGroup],
      // No ingress from the whole VPC (CDK's default): only the rule above.
      open: false,
    });
    return {
      placement: { vpc, subnets, securityGroup: group },
      endpoints: new Map<string, ec2.VpcEndpoint>([
        ['dynamodb', dynamodbEndpoint],
        ['sqs', sqsEndpoint],
      ]),
    };
  }

  /**
   * The rank index: a serverless Valkey cache in the isolated subnets, behind its own security
   * group, capped in storage and ECPUs, with daily snapshots (the stream holds only 24 hours of
   * changes, so a snapshot is what a lost cache is restored from).
   */
  private rankIndex(network: RankIndexNetwork): elasticache.CfnServerlessCache {
    const s = this.settings;
    const cache = new elasticache.CfnServerlessCache(this, 'RankIndex', {
      // Unique per account and region: one stage per stack, and the stage allows the name's
      // characters (settings.ts). At most 12 + 20 = 32 of the 40 characters allowed.
      serverlessCacheName: `score-ranks-${s.stage}`,
      description: `Score pipeline rank index: the players' leaderboards (${s.stage})`,
      engine: RANK_INDEX_ENGINE,
      majorEngineVersion: RANK_INDEX_MAJOR_ENGINE_VERSION,
      cacheUsageLimits: {
        dataStorage: { maximum: s.rankIndex.maxDataStorageGb, unit: 'GB' },
        ecpuPerSecond: { maximum: s.rankIndex.maxEcpuPerSecond },
      },
      subnetIds: network.subnets.map((subnet) => subnet.subnetId),
      securityGroupIds: [network.cache.securityGroupId],
      snapshotRetentionLimit: s.rankIndex.snapshotRetentionDays,
    });
    cache.applyRemovalPolicy(this.removalPolicy);
    // A retained cache keeps its subnets and security group in use; retaining the network with it
    // lets a production stack's deletion finish instead of failing on them. What only refers to
    // that network goes: the ingress rules on the cache's group (else the groups they admit
    // could not be deleted), the functions' security groups, and the processor's VPC endpoints
    // (stack scope, so not found here; skipped all the same should one move under the VPC): a
    // deleted endpoint takes its routes and interfaces out of the retained route tables and
    // subnets, and a retained one would go on billing.
    if (this.removalPolicy === RemovalPolicy.RETAIN) {
      for (const child of [...network.vpc.node.findAll(), ...network.cache.node.findAll()]) {
        if (child instanceof CfnResource && !(child instanceof ec2.CfnSecurityGroupIngress) && !(child instanceof ec2.CfnVPCEndpoint)) {
          child.applyRemovalPolicy(RemovalPolicy.RETAIN);
        }
      }
    }
    return cache;
  }

  /**
   * Feeds the ranker the submissions table's stream: only the changes that move a board, in
   * order (one batch per shard at a time), partial batch responses, retried until a record is
   * `maxRecordAgeSeconds` old and then reported to `failures`.
   */
  private rankChanges(ranker: RustFunction, table: dynamodb.Table, failures: sqs.Queue, settings: StreamConsumerSettings): void {
    const status = (value: string) => ({ [STATUS_ATTRIBUTE]: { S: lambda.FilterRule.isEqual(value) } });
    ranker.fn.addEventSource(
      // Grants the stream reads (dynamodb:DescribeStream, GetRecords, GetShardIterator on the
      // stream, ListStreams on "*", which takes no resource) to the ranker's role.
      new DynamoEventSource(table, {
        // The oldest change the stream still holds: a new ranker starts from the last 24 hours.
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize: settings.batchSize,
        maxBatchingWindow: settings.batchingWindowSeconds > 0 ? Duration.seconds(settings.batchingWindowSeconds) : undefined,
        // The ranker names the first record it did not apply; Lambda delivers from there again.
        reportBatchItemFailures: true,
        // One batch per shard at a time: one item's changes reach the rank index in order.
        parallelizationFactor: 1,
        // Halving a batch cannot help: the ranker already names where to start again.
        bisectBatchOnError: false,
        // A rank index outage must not drop changes: retry until the records are too old.
        retryAttempts: -1,
        maxRecordAge: Duration.seconds(settings.maxRecordAgeSeconds),
        onFailure: new OnFailureQueue(failures, ranker),
        filters: [
          // Offers: an item that is now accepted (the processor's put of an accepted submission).
          lambda.FilterCriteria.filter({ dynamodb: { NewImage: status(STATUS_ACCEPTED) } }),
          // Revocations: an accepted item rewritten as rejected (users suspend --revoke-scores).
          lambda.FilterCriteria.filter({
            eventName: lambda.FilterRule.isEqual('MODIFY'),
            dynamodb: { OldImage: status(STATUS_ACCEPTED), NewImage: status(STATUS_REJECTED) },
          }),
        ],
      }),
    );
  }

  /** The token settings (ingest's and the boards function's); absent values are left out (they then refuse to start). */
  private tokenEnvironment(): Record<string, string> {
    const jwt = this.settings.jwt;
    const env: Record<string, string> = { [ENV.jwtAlgorithm]: jwt.algorithm };
    const set = (name: string, value: string | number | undefined) => {
      if (value !== undefined) env[name] = String(value);
    };
    set(ENV.jwtIssuer, jwt.issuer);
    set(ENV.jwtAudience, jwt.audience);
    set(ENV.jwtPublicKeyPem, jwt.publicKeyPem);
    set(ENV.jwtSecret, jwt.secret);
    set(ENV.jwtLeewaySeconds, jwt.leewaySeconds);
    set(ENV.jwtKeyId, jwt.keyId);
    set(ENV.jwtJwksUrl, jwt.jwksUrl);
    return env;
  }

  /**
   * Where every function puts its EMF metrics: this stack's namespace and stage. Without them a
   * function's metrics land under the Rust default, Stage=default.
   */
  private metricsEnvironment(): Record<string, string> {
    return { [ENV.metricsNamespace]: METRICS_NAMESPACE, [ENV.metricsStage]: this.settings.stage };
  }

  /** Lets `consumer` take batches from `queue`, reporting only the failed records back. */
  private consume(consumer: RustFunction, queue: sqs.Queue, settings: ConsumerSettings): void {
    consumer.fn.addEventSource(
      new SqsEventSource(queue, {
        batchSize: settings.batchSize,
        maxBatchingWindow: settings.batchingWindowSeconds > 0 ? Duration.seconds(settings.batchingWindowSeconds) : undefined,
        // One bad record must not send its whole batch back (the handlers return batchItemFailures).
        reportBatchItemFailures: true,
        // Caps the load on DynamoDB and SNS and leaves account concurrency for ingest.
        maxConcurrency: settings.maxConcurrency,
      }),
    );
  }

  /**
   * What the `users` operator tool (tests/src/bin/users.rs) calls, for an admin to attach to the
   * people and roles who run it; nothing in the stack uses it. The users table: `add` is a PutItem,
   * `suspend`/`activate` a conditional UpdateItem, `list` a paginated Scan. `suspend
   * --revoke-scores` Queries the user's partition of the submissions table (every page; the table
   * is keyed by player and has no index) and rewrites the user's accepted submissions with
   * BatchWriteItem puts on the table. No name, so that several stages can live in one account.
   */
  private operatorPolicy(usersTable: dynamodb.Table, submissionsTable: dynamodb.Table): iam.ManagedPolicy {
    return new iam.ManagedPolicy(this, 'OperatorPolicy', {
      description: `Runs the users operator tool against the score pipeline (${this.settings.stage}): manage users, revoke a suspended user's scores`,
      statements: [
        new iam.PolicyStatement({
          sid: 'ManageUsers',
          actions: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Scan'],
          resources: [usersTable.tableArn],
        }),
        new iam.PolicyStatement({
          sid: 'ReadSubmissionsOfUser',
          actions: ['dynamodb:Query'],
          resources: [submissionsTable.tableArn],
        }),
        new iam.PolicyStatement({
          sid: 'RewriteRevokedSubmissions',
          actions: ['dynamodb:BatchWriteItem'],
          resources: [submissionsTable.tableArn],
        }),
      ],
    });
  }

  /**
   * The HTTP API: the leaderboard routes go to the boards function (the only one in the rank
   * index's network), every other request to ingest, whose router owns the other routes, 404/405
   * and problem JSON.
   */
  private httpApi(ingest: lambda.Function, boards: lambda.Function): { api: apigw.HttpApi; stage: apigw.HttpStage } {
    const s = this.settings;
    // No X-Ray here: HTTP APIs (API Gateway v2) do not support tracing; traces start at ingest.
    const api = new apigw.HttpApi(this, 'Api', {
      description: `Score ingest API (${s.stage})`,
      // One $default route: new routes in the ingest router need no infrastructure change.
      defaultIntegration: new HttpLambdaIntegration('IngestIntegration', ingest, {
        payloadFormatVersion: apigw.PayloadFormatVersion.VERSION_2_0,
      }),
      // The stage is declared below so it can carry throttling (and access logs, when on).
      createDefaultStage: false,
    });
    const boardsIntegration = new HttpLambdaIntegration('BoardsIntegration', boards, {
      payloadFormatVersion: apigw.PayloadFormatVersion.VERSION_2_0,
    });
    for (const routePath of BOARDS_ROUTES) {
      api.addRoutes({ path: routePath, methods: [apigw.HttpMethod.GET], integration: boardsIntegration });
    }
    // Access logs only on request (`apiAccessLogs`): off, the stage has no log group and no
    // AccessLogSettings. See ACCESS_LOG_FORMAT for what a line holds and costs.
    const accessLogSettings: apigw.IAccessLogSettings | undefined = s.apiAccessLogs
      ? {
          destination: new apigw.LogGroupLogDestination(
            new logs.LogGroup(this, 'ApiAccessLogs', {
              retention: s.logRetentionDays as logs.RetentionDays,
              removalPolicy: this.removalPolicy,
            }),
          ),
          format: AccessLogFormat.custom(ACCESS_LOG_FORMAT),
        }
      : undefined;
    const stage = new apigw.HttpStage(this, 'ApiDefaultStage', {
      httpApi: api,
      stageName: '$default',
      autoDeploy: true,
      // Protects the queue and the account's Lambda concurrency from a runaway client.
      throttle: { rateLimit: s.apiRateLimit, burstLimit: s.apiBurstLimit },
      accessLogSettings,
    });
    return { api, stage };
  }

  /** A message in the DLQ means a submission or rejection waits for an operator; age means lag. */
  private queueAlarms(name: string, q: QueueWithDeadLetters): void {
    const s = this.settings;
    this.alarm(`${name}DeadLetterQueueNotEmpty`, {
      metric: q.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: DLQ_ALARM_PERIOD, statistic: 'Maximum' }),
      threshold: 0,
      description: `${name} messages were parked in the dead-letter queue after ${s.maxReceiveCount} receives; inspect and redrive them`,
    });
    this.alarm(`${name}QueueOldestMessageAge`, {
      metric: q.queue.metricApproximateAgeOfOldestMessage({ period: ALARM_PERIOD, statistic: 'Maximum' }),
      threshold: s.queueAgeAlarmSeconds,
      description: `The oldest ${name.toLowerCase()} message is older than ${s.queueAgeAlarmSeconds}s: its consumer is failing or falling behind`,
    });
  }

  /** Handler errors are answered or reported per record, so any function error is unexpected. */
  private functionAlarms(name: string, fn: lambda.Function): void {
    this.alarm(`${name}Errors`, {
      metric: fn.metricErrors({ period: ALARM_PERIOD, statistic: 'Sum' }),
      threshold: 0,
      description: `The ${name.toLowerCase()} function failed invocations (crash, timeout or a failed cold start)`,
    });
    this.alarm(`${name}Throttles`, {
      metric: fn.metricThrottles({ period: ALARM_PERIOD, statistic: 'Sum' }),
      threshold: 0,
      description: `The ${name.toLowerCase()} function was throttled (account or reserved concurrency exhausted)`,
    });
  }

  /**
   * The ranker's own trouble: changes it could not read (their boards miss them for good), a
   * stream falling behind (the boards lag by as much), and batches given up on.
   */
  private rankerAlarms(ranker: lambda.Function, failures: sqs.Queue): void {
    const s = this.settings;
    this.alarm('RankerUnreadableChanges', {
      metric: this.emfMetric('ranker', 'UnreadableChanges', { period: ALARM_PERIOD }),
      threshold: 0,
      description: 'The ranker skipped changed submissions it could not read; their boards miss them (see the ranker logs)',
    });
    this.alarm('RankerIteratorAge', {
      // Milliseconds: the age of the last record of each batch when the ranker received it.
      metric: ranker.metric('IteratorAge', { period: ALARM_PERIOD, statistic: 'Maximum' }),
      threshold: s.rankerIteratorAgeAlarmSeconds * 1000,
      description:
        `The ranker is more than ${s.rankerIteratorAgeAlarmSeconds}s behind the submissions table's stream ` +
        `(rank index failing or slow); past ${s.ranker.maxRecordAgeSeconds}s it gives changes up`,
    });
    this.alarm('RankerFailureQueueNotEmpty', {
      metric: failures.metricApproximateNumberOfMessagesVisible({ period: DLQ_ALARM_PERIOD, statistic: 'Maximum' }),
      threshold: 0,
      description:
        `The ranker gave up on stream batches older than ${s.ranker.maxRecordAgeSeconds}s; their boards miss them ` +
        `(the messages name the shard and sequence numbers to replay while the stream still holds them)`,
    });
  }

  /**
   * The rank index nearing or at its caps (it holds the boards and, with quotaCounter=cache, the
   * quota counters): commands throttled (past `rankIndexMaxEcpuPerSecond`, or load growing faster
   * than the serverless cache scales), and stored data near `rankIndexMaxDataStorageGb`, where
   * ElastiCache first evicts keys with an expiry (daily and weekly boards, quota windows; the
   * all-time boards have none) and then refuses writes. Eviction takes single keys, so it can
   * split a board's order from its players: the alarm fires well before.
   */
  private rankIndexAlarms(cache: elasticache.CfnServerlessCache): void {
    const limits = this.settings.rankIndex;
    this.alarm('RankIndexThrottled', {
      metric: this.rankIndexMetric(cache, 'ThrottledCmds', { period: THROTTLE_ALARM_PERIOD, statistic: 'Sum' }),
      threshold: 0,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      description:
        `The rank index throttled commands in 2 of the last 3 minutes: the boards lag (the ranker retries) and quota counting is retried; ` +
        `raise rankIndexMaxEcpuPerSecond (now ${limits.maxEcpuPerSecond}) or look for a runaway caller (ElastiCacheProcessingUnits and TotalCmdsCount on the dashboard)`,
    });
    this.alarm('RankIndexStorageNearCap', {
      metric: this.rankIndexMetric(cache, 'BytesUsedForCache', { period: ALARM_PERIOD, statistic: 'Maximum' }),
      threshold: rankIndexStorageAlarmBytes(limits.maxDataStorageGb),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      description:
        `The rank index holds at least ${RANK_INDEX_STORAGE_ALARM_FRACTION * 100} % of its ${limits.maxDataStorageGb} GB storage cap; ` +
        `at the cap it evicts daily and weekly boards and quota windows and then refuses writes (boards stop updating, quota counting fails): ` +
        `raise rankIndexMaxDataStorageGb or shorten the boards' retention (shared/src/period.rs)`,
    });
  }

  /** One of the rank index's ElastiCache metrics, by the dimension serverless caches publish under. */
  private rankIndexMetric(cache: elasticache.CfnServerlessCache, metricName: string, options: cloudwatch.MetricOptions): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: RANK_INDEX_METRICS_NAMESPACE,
      metricName,
      // Ref of a serverless cache is its name: the dimension follows the resource, never a copy
      // of the name string (and the alarms and dashboard depend on the cache).
      dimensionsMap: { [RANK_INDEX_METRICS_DIMENSION]: cache.serverlessCacheRef.serverlessCacheName },
      ...options,
    });
  }

  /** One of this stage's EMF metrics of `fn` (summed unless `options` say otherwise). */
  private emfMetric<F extends Binary>(fn: F, metricName: EmfMetricName<F>, options: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName,
      dimensionsMap: { Stage: this.settings.stage, Function: fn },
      statistic: 'Sum',
      ...options,
    });
  }

  /**
   * The operator's view, `ScorePipeline-<stage>`, one row per part of the pipeline: the HTTP API,
   * the queues, what the processor and notifier did with their batches (their EMF metrics), the
   * ranker's changes and stream lag, the rank index (ECPUs, storage against its cap, throttled
   * commands, latency and commands: ElastiCache's metrics), the functions' health, and the
   * functions' cold starts (each one's ColdStart EMF metric).
   */
  private dashboard(parts: {
    api: apigw.HttpApi;
    submissions: QueueWithDeadLetters;
    rejections: QueueWithDeadLetters;
    rankerFailures: sqs.Queue;
    rankIndex: elasticache.CfnServerlessCache;
    functions: Record<Binary, lambda.Function>;
  }): cloudwatch.Dashboard {
    const period = DASHBOARD_PERIOD;
    const sum = { period, statistic: 'Sum' };
    const max = { period, statistic: 'Maximum' };
    const p99 = { period, statistic: 'p99' };
    const graph = (title: string, left: cloudwatch.IMetric[], leftYAxis?: cloudwatch.YAxisProps, leftAnnotations?: cloudwatch.HorizontalAnnotation[]) =>
      new cloudwatch.GraphWidget({ title, left, leftYAxis, leftAnnotations, width: DASHBOARD_WIDGET_WIDTH, height: DASHBOARD_WIDGET_HEIGHT });
    const queues = { submissions: parts.submissions, rejections: parts.rejections };
    const functions = Object.entries(parts.functions) as [Binary, lambda.Function][];
    const zero = { min: 0 };

    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: stackName(this.settings),
    });
    dashboard.addWidgets(
      new cloudwatch.TextWidget({
        markdown:
          `# Score pipeline (${this.settings.stage})\n` +
          `Managed by the CloudFormation stack ${this.stackName} (infra/ in the repository): edit the CDK app, not this dashboard. ` +
          `Processor, notifier and ranker batch figures and the cold starts are the functions' EMF metrics (namespace ${METRICS_NAMESPACE}, Stage=${this.settings.stage}); ` +
          `the rank index graphs are ElastiCache's (namespace ${RANK_INDEX_METRICS_NAMESPACE}, ${RANK_INDEX_METRICS_DIMENSION}=${parts.rankIndex.serverlessCacheRef.serverlessCacheName}).`,
        width: 3 * DASHBOARD_WIDGET_WIDTH,
        height: 2,
      }),
    );
    dashboard.addWidgets(
      graph('API requests', [parts.api.metricCount({ ...sum, label: 'requests' })], zero),
      graph('API 4xx and 5xx answers', [
        parts.api.metricClientError({ ...sum, label: '4xx' }),
        parts.api.metricServerError({ ...sum, label: '5xx' }),
      ], zero),
      graph('API latency (ms)', [
        parts.api.metricLatency({ period, statistic: 'p50', label: 'p50' }),
        parts.api.metricLatency({ ...p99, label: 'p99' }),
        parts.api.metricIntegrationLatency({ ...p99, label: 'integration p99' }),
      ], zero),
    );
    dashboard.addWidgets(
      graph(
        'Queue depth (visible messages)',
        Object.entries(queues).map(([name, q]) => q.queue.metricApproximateNumberOfMessagesVisible({ ...max, label: name })),
        zero,
      ),
      graph(
        'Age of the oldest message (s)',
        Object.entries(queues).map(([name, q]) => q.queue.metricApproximateAgeOfOldestMessage({ ...max, label: name })),
        zero,
      ),
      graph(
        'Dead-letter and failure queues (visible messages)',
        [
          ...Object.entries(queues).map(([name, q]) => q.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ ...max, label: `${name} DLQ` })),
          parts.rankerFailures.metricApproximateNumberOfMessagesVisible({ ...max, label: 'ranker failures' }),
        ],
        zero,
      ),
    );
    dashboard.addWidgets(
      graph(
        'Processor: records per batch outcome',
        batchOutcomes('processor').map((name) => this.emfMetric('processor', name, { ...sum, label: name })),
        zero,
      ),
      graph(
        'Notifier: records per batch outcome',
        batchOutcomes('notifier').map((name) => this.emfMetric('notifier', name, { ...sum, label: name })),
        zero,
      ),
      graph(
        'Batch duration p99 (ms)',
        (['processor', 'notifier', 'ranker'] as const).map((fn) => this.emfMetric(fn, 'BatchDurationMs', { ...p99, label: fn })),
        zero,
      ),
    );
    dashboard.addWidgets(
      graph(
        'Ranker: changes per batch outcome',
        batchOutcomes('ranker').map((name) => this.emfMetric('ranker', name, { ...sum, label: name })),
        zero,
      ),
      // How far the boards lag behind the submissions table.
      graph('Ranker stream lag (iterator age, ms)', [parts.functions.ranker.metric('IteratorAge', { ...max, label: 'iterator age max' })], zero),
    );
    // The rank index. ECPUs are the only exact figure for its request bill (docs/COSTS.md); the
    // cap is per second, so a minute's sum meets it only at the cap every second of the minute
    // (throttling starts sooner in bursts): it is in the title rather than drawn, like the other
    // graphs (no annotations) but storage, whose line is the alarm's.
    const rankIndex = (metricName: string, options: cloudwatch.MetricOptions) => this.rankIndexMetric(parts.rankIndex, metricName, options);
    const limits = this.settings.rankIndex;
    const storageAlarmBytes = rankIndexStorageAlarmBytes(limits.maxDataStorageGb);
    dashboard.addWidgets(
      graph(
        `Rank index ECPUs per minute (cap ${thousands(limits.maxEcpuPerSecond)}/s, ${thousands(limits.maxEcpuPerSecond * 60)} a minute)`,
        [rankIndex('ElastiCacheProcessingUnits', { ...sum, label: 'ECPUs' })],
        zero,
      ),
      graph(
        `Rank index data stored (bytes; cap ${limits.maxDataStorageGb} GB)`,
        [rankIndex('BytesUsedForCache', { ...max, label: 'bytes used max' })],
        zero,
        [{ value: storageAlarmBytes, label: `alarm: ${RANK_INDEX_STORAGE_ALARM_FRACTION * 100} % of the ${limits.maxDataStorageGb} GB cap` }],
      ),
      graph('Rank index throttled commands', [rankIndex('ThrottledCmds', { ...sum, label: 'throttled' })], zero),
    );
    dashboard.addWidgets(
      graph(
        'Rank index latency p99 (µs)',
        [
          rankIndex('SuccessfulReadRequestLatency', { ...p99, label: 'read p99' }),
          rankIndex('SuccessfulWriteRequestLatency', { ...p99, label: 'write p99' }),
        ],
        zero,
      ),
      graph('Rank index commands', [rankIndex('TotalCmdsCount', { ...sum, label: 'commands' })], zero),
    );
    dashboard.addWidgets(
      graph('Function errors', functions.map(([name, fn]) => fn.metricErrors({ ...sum, label: name })), zero),
      graph('Function throttles', functions.map(([name, fn]) => fn.metricThrottles({ ...sum, label: name })), zero),
      graph('Function duration p99 (ms)', functions.map(([name, fn]) => fn.metricDuration({ ...p99, label: name })), zero),
    );
    // New execution environments per function: scaling out, or an environment replaced after a
    // crash or a deploy. A graph only; a cold start is normal, so no alarm.
    dashboard.addWidgets(
      graph('Cold starts (new execution environments)', functions.map(([name]) => this.emfMetric(name, 'ColdStart', { ...sum, label: name })), zero),
    );
    return dashboard;
  }

  /**
   * An alarm when `metric` exceeds `threshold` (or meets it, with GREATER_THAN_OR_EQUAL_TO_THRESHOLD)
   * in one period, or in `datapointsToAlarm` of the last `evaluationPeriods`, notifying the alarm
   * topic on alarm and recovery.
   */
  private alarm(
    id: string,
    props: {
      metric: cloudwatch.IMetric;
      threshold: number;
      description: string;
      comparisonOperator?: cloudwatch.ComparisonOperator;
      evaluationPeriods?: number;
      datapointsToAlarm?: number;
    },
  ): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, id, {
      metric: props.metric,
      threshold: props.threshold,
      comparisonOperator: props.comparisonOperator ?? cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: props.evaluationPeriods ?? 1,
      datapointsToAlarm: props.datapointsToAlarm,
      // No data means no traffic (or an empty queue), not a problem.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: `${props.description} (${this.settings.stage})`,
    });
    alarm.addAlarmAction(this.alarmAction);
    alarm.addOkAction(this.alarmAction);
    return alarm;
  }
}

/** The rank index's stored bytes that raise RankIndexStorageNearCap: the alarm's share of the cap. */
export function rankIndexStorageAlarmBytes(maxDataStorageGb: number): number {
  return Math.round(RANK_INDEX_STORAGE_ALARM_FRACTION * maxDataStorageGb * BYTES_PER_GB);
}

/** 36000000 as "36,000,000", whatever the machine's locale. */
function thousands(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** At least VISIBILITY_TIMEOUT_FACTOR x the consumer's timeout, plus its batching window. */
function visibilityTimeoutFor(consumer: ConsumerSettings): Duration {
  return Duration.seconds(VISIBILITY_TIMEOUT_FACTOR * consumer.timeoutSeconds + consumer.batchingWindowSeconds);
}

/**
 * A stream event source's on-failure destination that grants the consumer only what Lambda calls
 * with its role to report a batch: sqs:SendMessage on the queue. (CDK's SqsDlq also grants
 * GetQueueAttributes and GetQueueUrl, which it does not call.)
 */
class OnFailureQueue implements lambda.IEventSourceDlq {
  private readonly queue: sqs.Queue;
  private readonly consumer: RustFunction;

  constructor(queue: sqs.Queue, consumer: RustFunction) {
    this.queue = queue;
    this.consumer = consumer;
  }

  bind(): lambda.DlqDestinationConfig {
    allow(this.consumer, ['sqs:SendMessage'], [this.queue.queueArn]);
    return { destination: this.queue.queueArn };
  }
}

/** Adds one least-privilege statement to a function's role. */
function allow(target: RustFunction, actions: string[], resources: string[]): void {
  target.role.addToPrincipalPolicy(new iam.PolicyStatement({ actions, resources }));
}

/**
 * Lets `actions` on `resources` through the VPC endpoint of their service (the actions' IAM
 * prefix, one per call): an endpoint with a policy passes only what its statements allow, for
 * any principal (the callers' own policies still apply). Fails the synth when the VPC has no
 * endpoint for that service: the call could not leave the isolated subnets.
 */
export function allowThroughEndpoint(endpoints: ReadonlyMap<string, ec2.VpcEndpoint>, actions: string[], resources: string[]): void {
  const services = new Set(actions.map((action) => action.split(':')[0]!.toLowerCase()));
  if (services.size !== 1) throw new Error(`one service per endpoint statement, got ${actions.join(', ')}`);
  const [service] = services;
  const endpoint = endpoints.get(service!);
  if (endpoint === undefined) {
    throw new Error(
      `${actions.join(', ')}: the rank index VPC has no ${service} endpoint (it has ${[...endpoints.keys()].join(', ')}); ` +
        'add one in processorNetwork() before calling the service from the VPC',
    );
  }
  endpoint.addToPolicy(new iam.PolicyStatement({ principals: [new iam.AnyPrincipal()], actions, resources }));
}

function output(stack: Stack, id: string, value: string, description: string): void {
  new CfnOutput(stack, id, { value, description });
}
