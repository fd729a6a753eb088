// Least privilege: each function's role allows exactly the calls its code makes, on exactly the
// resources it makes them on (plus the X-Ray upload of active tracing, and for the functions in
// the rank index's VPC, the processor among them while it counts quotas in the cache, the
// network interface calls Lambda makes with their roles), and the operator policy exactly the
// calls of the users tool.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  actionMatches,
  allows,
  type CfnTemplate,
  FUNCTION_IDS,
  type FunctionName,
  functionProps,
  grants,
  ids,
  logicalId,
  refTarget,
  resource,
  resourcesOfType,
  roleOf,
  statementsOfManagedPolicy,
  statementsOfRole,
  synth,
  synthDefault,
} from './support/synth.ts';
import { processorNetworkIds } from './support/network.ts';

/** Every DynamoDB call that changes data (or the table). */
const DYNAMODB_WRITES = [
  'dynamodb:PutItem',
  'dynamodb:BatchWriteItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:TransactWriteItems',
  'dynamodb:PartiQLInsert',
  'dynamodb:PartiQLUpdate',
  'dynamodb:PartiQLDelete',
  'dynamodb:UpdateTable',
  'dynamodb:DeleteTable',
];
/** Every DynamoDB call that reads data. */
const DYNAMODB_READS = [
  'dynamodb:GetItem',
  'dynamodb:BatchGetItem',
  'dynamodb:Query',
  'dynamodb:Scan',
  'dynamodb:TransactGetItems',
  'dynamodb:PartiQLSelect',
];
const SQS_CONSUME = ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueAttributes'];

function statementsOf(json: CfnTemplate, fn: FunctionName) {
  return statementsOfRole(json, roleOf(json, fn));
}

function logGroupOf(json: CfnTemplate, fn: FunctionName): string {
  return refTarget(functionProps(json, fn).LoggingConfig.LogGroup)!;
}

const LOGS = (group: string) => [`logs:CreateLogStream on ${group}`, `logs:PutLogEvents on ${group}`];
/** Active tracing (CDK's grant): X-Ray has no resource-level permissions for these two actions. */
const XRAY = ['xray:PutTelemetryRecords on *', 'xray:PutTraceSegments on *'];
const CONSUME = (queue: string) =>
  ['sqs:ChangeMessageVisibility', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:ReceiveMessage'].map((a) => `${a} on ${queue}`);
/** An EC2 ARN of this stack's account and region, as statementsOfRole writes joined ARNs. */
const EC2_ARN = (resourceType: string, name: string) => `arn:\${AWS::Partition}:ec2:\${AWS::Region}:\${AWS::AccountId}:${resourceType}/${name}`;
const ANY_INTERFACE = EC2_ARN('network-interface', '*');
/**
 * What Lambda calls with a VPC function's role for its network interfaces: create them only in
 * the rank index subnets with the function's security group (the interface ids are not known in
 * advance), delete and re-address interfaces, and describe them (no resource-level permissions).
 */
function NETWORK_INTERFACES(json: CfnTemplate, securityGroup: string): string[] {
  return [
    `ec2:CreateNetworkInterface on ${ANY_INTERFACE}`,
    ...resourcesOfType(json, 'AWS::EC2::Subnet').map(([subnet]) => `ec2:CreateNetworkInterface on ${EC2_ARN('subnet', `\${${subnet}}`)}`),
    `ec2:CreateNetworkInterface on ${EC2_ARN('security-group', `\${${securityGroup}.GroupId}`)}`,
    `ec2:DeleteNetworkInterface on ${ANY_INTERFACE}`,
    `ec2:AssignPrivateIpAddresses on ${ANY_INTERFACE}`,
    `ec2:UnassignPrivateIpAddresses on ${ANY_INTERFACE}`,
    'ec2:DescribeNetworkInterfaces on *',
  ];
}
/**
 * What the DynamoDB stream event source reads with the consumer's role (CDK's grantStreamRead):
 * the stream itself, and ListStreams, which takes no resource.
 */
const STREAM_READ = (table: string) => [
  `dynamodb:DescribeStream on ${table}.StreamArn`,
  `dynamodb:GetRecords on ${table}.StreamArn`,
  `dynamodb:GetShardIterator on ${table}.StreamArn`,
  'dynamodb:ListStreams on *',
];
/** The actions a function may have on "*": they take no resource-level permissions. */
const STAR_ACTIONS: Record<FunctionName, string[]> = {
  ingest: ['xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
  // In the rank index VPC while it counts quotas in the cache (the default).
  processor: ['ec2:DescribeNetworkInterfaces', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
  notifier: ['xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
  ranker: ['dynamodb:ListStreams', 'ec2:DescribeNetworkInterfaces', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
  boards: ['ec2:DescribeNetworkInterfaces', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
};

describe('IAM', () => {
  const { json } = synthDefault();
  const r = ids(json);

  it('gives each function its own role, assumable only by Lambda, without managed policies', () => {
    const roles = (Object.keys(FUNCTION_IDS) as FunctionName[]).map((fn) => roleOf(json, fn));
    assert.equal(new Set(roles).size, 5);
    for (const roleId of roles) {
      const role = resource(json, roleId).Properties;
      assert.deepEqual(role.AssumeRolePolicyDocument.Statement, [
        { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
      ]);
      assert.equal(
        role.ManagedPolicyArns,
        undefined,
        `${roleId} has no managed policies (not even AWSLambdaBasicExecutionRole or AWSLambdaVPCAccessExecutionRole)`,
      );
    }
    assert.equal(resourcesOfType(json, 'AWS::IAM::Role').length, 5, 'no other roles');
  });

  it('grants ingest exactly SendMessage on the submissions queue and GetItem on the submissions table', () => {
    assert.deepEqual(
      grants(statementsOf(json, 'ingest')),
      [
        ...LOGS(logGroupOf(json, 'ingest')),
        ...XRAY,
        `dynamodb:GetItem on ${r.submissionsTable}`,
        `sqs:SendMessage on ${r.submissionsQueue}`,
      ].sort(),
    );
  });

  it('lets ingest Query or Scan nothing: not the submissions table, users or quotas', () => {
    const statements = statementsOf(json, 'ingest');
    for (const target of [r.submissionsTable, r.usersTable, r.quotasTable]) {
      for (const action of ['dynamodb:Query', 'dynamodb:Scan']) {
        assert.equal(allows(statements, action, target), false, `ingest may ${action} on ${target}`);
      }
    }
    // allows() compares resources exactly, so also rule out patterns (`<table>/index/*`, `<table>*`).
    for (const s of statements.filter((s) => s.effect === 'Allow')) {
      assert.equal(
        s.actions.some((a) => actionMatches(a, 'dynamodb:Query') || actionMatches(a, 'dynamodb:Scan')),
        false,
        `${s.actions} on ${s.resources}`,
      );
    }
  });

  it('does not let ingest write to DynamoDB at all', () => {
    const statements = statementsOf(json, 'ingest');
    for (const action of DYNAMODB_WRITES) {
      for (const table of [r.submissionsTable, r.usersTable, r.quotasTable]) {
        assert.equal(allows(statements, action, table), false, `ingest may ${action} on ${table}`);
      }
    }
  });

  it('grants the processor its reads, writes, rejections, consume permissions and network interfaces only (quota counted in the cache)', () => {
    assert.deepEqual(
      grants(statementsOf(json, 'processor')),
      [
        ...LOGS(logGroupOf(json, 'processor')),
        ...XRAY,
        `dynamodb:BatchGetItem on ${r.usersTable}`,
        `dynamodb:BatchGetItem on ${r.submissionsTable}`,
        `dynamodb:GetItem on ${r.submissionsTable}`,
        `dynamodb:PutItem on ${r.submissionsTable}`,
        `sqs:SendMessage on ${r.rejectionsQueue}`,
        ...CONSUME(r.submissionsQueue),
        ...NETWORK_INTERFACES(json, processorNetworkIds(json).processorSecurityGroup),
      ].sort(),
    );
  });

  it('grants the processor its quotas table calls instead of network interfaces when it counts in the table', () => {
    const table = synth({ quotaCounter: 'table' }).json;
    const t = ids(table);
    assert.deepEqual(
      grants(statementsOf(table, 'processor')),
      [
        ...LOGS(logGroupOf(table, 'processor')),
        ...XRAY,
        `dynamodb:BatchGetItem on ${t.usersTable}`,
        `dynamodb:BatchGetItem on ${t.submissionsTable}`,
        `dynamodb:GetItem on ${t.submissionsTable}`,
        `dynamodb:PutItem on ${t.submissionsTable}`,
        `dynamodb:GetItem on ${t.quotasTable}`,
        `dynamodb:UpdateItem on ${t.quotasTable}`,
        `sqs:SendMessage on ${t.rejectionsQueue}`,
        ...CONSUME(t.submissionsQueue),
      ].sort(),
    );
    assert.deepEqual(
      grants(statementsOf(table, 'processor')).filter((g) => g.endsWith(' on *')),
      XRAY,
      'only the X-Ray upload on "*" outside the VPC',
    );
  });

  it('lets the processor PutItem, GetItem and BatchGetItem on the submissions table only: no BatchWriteItem, no index', () => {
    const processor = statementsOf(json, 'processor');
    const allowed = ['dynamodb:PutItem', 'dynamodb:GetItem', 'dynamodb:BatchGetItem'];
    assert.deepEqual(
      grants(processor).filter((g) => g.includes(` on ${r.submissionsTable}`)),
      allowed.map((a) => `${a} on ${r.submissionsTable}`).sort(),
    );
    // Conditional PutItem per submission replaced the batch writes (which cannot be conditional).
    assert.equal(allows(processor, 'dynamodb:BatchWriteItem', r.submissionsTable), false, 'processor may BatchWriteItem');
    for (const action of [...DYNAMODB_READS, ...DYNAMODB_WRITES].filter((a) => !allowed.includes(a))) {
      assert.equal(allows(processor, action, r.submissionsTable), false, `processor may ${action} on the submissions table`);
    }
    // The grant names the table itself: no index ARN (the table has none) or pattern resources.
    for (const s of processor.filter((s) => s.resources.some((res) => res.startsWith(r.submissionsTable)))) {
      assert.deepEqual(s.resources, [r.submissionsTable], `${s.actions} resources`);
    }
  });

  it('does not let the processor change the users directory', () => {
    const statements = statementsOf(json, 'processor');
    for (const action of DYNAMODB_WRITES) assert.equal(allows(statements, action, r.usersTable), false, action);
  });

  it('grants the ranker its stream reads, its failure queue and its network interfaces only', () => {
    assert.deepEqual(
      grants(statementsOf(json, 'ranker')),
      [
        ...LOGS(logGroupOf(json, 'ranker')),
        ...XRAY,
        ...STREAM_READ(r.submissionsTable),
        `sqs:SendMessage on ${r.rankerFailureQueue}`,
        ...NETWORK_INTERFACES(json, r.rankIndexClientSecurityGroup),
      ].sort(),
    );
  });

  it('lets the ranker read nothing of the table itself: the stream is its only DynamoDB access', () => {
    const ranker = statementsOf(json, 'ranker');
    for (const action of [...DYNAMODB_READS, ...DYNAMODB_WRITES]) {
      for (const table of [r.submissionsTable, r.usersTable, r.quotasTable]) {
        assert.equal(allows(ranker, action, table), false, `ranker may ${action} on ${table}`);
      }
    }
    // Its DynamoDB grants are the stream reads, on the submissions table's stream (ListStreams on "*").
    assert.deepEqual(grants(ranker).filter((g) => g.startsWith('dynamodb:')), STREAM_READ(r.submissionsTable).sort());
  });

  it('grants the boards function its logs, traces and network interfaces only: no DynamoDB, no SQS', () => {
    const boards = statementsOf(json, 'boards');
    assert.deepEqual(grants(boards), [...LOGS(logGroupOf(json, 'boards')), ...XRAY, ...NETWORK_INTERFACES(json, r.rankIndexClientSecurityGroup)].sort());
    assert.deepEqual(grants(boards).filter((g) => g.startsWith('dynamodb:') || g.startsWith('sqs:') || g.startsWith('sns:')), []);
  });

  it('lets only the VPC functions manage network interfaces, only in the rank index subnets with their own group', () => {
    for (const fn of ['ingest', 'notifier'] as const) {
      assert.deepEqual(grants(statementsOf(json, fn)).filter((g) => g.startsWith('ec2:')), [], fn);
    }
    const groups = { ranker: r.rankIndexClientSecurityGroup, boards: r.rankIndexClientSecurityGroup, processor: processorNetworkIds(json).processorSecurityGroup };
    for (const [fn, group] of Object.entries(groups) as [FunctionName, string][]) {
      const create = grants(statementsOf(json, fn)).filter((g) => g.startsWith('ec2:CreateNetworkInterface on '));
      // One network-interface pattern, the two subnets and the one group: nothing else of the account.
      assert.equal(create.length, 4, fn);
      assert.ok(create.every((g) => !g.includes(':subnet/*') && !g.includes(':security-group/*')), `${fn}: ${create}`);
      assert.equal(create.filter((g) => g.includes(':security-group/')).length, 1, fn);
      assert.ok(create.some((g) => g.includes(`:security-group/\${${group}.GroupId}`)), `${fn}: its own group`);
    }
    // Counting in the table, the processor stays outside and manages no interfaces.
    assert.deepEqual(grants(statementsOf(synth({ quotaCounter: 'table' }).json, 'processor')).filter((g) => g.startsWith('ec2:')), []);
  });

  it('lets no function touch the quotas table while the quota is counted in the cache', () => {
    for (const fn of Object.keys(FUNCTION_IDS) as FunctionName[]) {
      const statements = statementsOf(json, fn);
      for (const action of [...DYNAMODB_READS, ...DYNAMODB_WRITES]) {
        assert.equal(allows(statements, action, r.quotasTable), false, `${fn} may ${action} on the quotas table`);
      }
      assert.deepEqual(
        grants(statements).filter((g) => g.includes(r.quotasTable)),
        [],
        `${fn} has no grant at all on the quotas table`,
      );
    }
  });

  it('lets only the processor touch the quotas table when it counts there, with UpdateItem and GetItem only', () => {
    const table = synth({ quotaCounter: 'table' }).json;
    const t = ids(table);
    for (const fn of ['ingest', 'notifier', 'ranker', 'boards'] as const) {
      const statements = statementsOf(table, fn);
      for (const action of [...DYNAMODB_READS, ...DYNAMODB_WRITES]) {
        assert.equal(allows(statements, action, t.quotasTable), false, `${fn} may ${action} on the quotas table`);
      }
      assert.deepEqual(
        grants(statements).filter((g) => g.endsWith(` on ${t.quotasTable}`)),
        [],
        `${fn} has no grant at all on the quotas table`,
      );
    }
    const processor = statementsOf(table, 'processor');
    assert.deepEqual(
      grants(processor).filter((g) => g.endsWith(` on ${t.quotasTable}`)),
      [`dynamodb:GetItem on ${t.quotasTable}`, `dynamodb:UpdateItem on ${t.quotasTable}`],
    );
    for (const action of [...DYNAMODB_READS, ...DYNAMODB_WRITES].filter((a) => a !== 'dynamodb:GetItem' && a !== 'dynamodb:UpdateItem')) {
      assert.equal(allows(processor, action, t.quotasTable), false, `processor may ${action} on the quotas table`);
    }
    // The grant names the table itself: no index or stream ARNs (the table has neither).
    for (const s of processor.filter((s) => s.resources.includes(t.quotasTable))) {
      assert.deepEqual(s.resources, [t.quotasTable], `${s.actions} resources`);
    }
  });

  it('grants the notifier Publish on the topic, its key, its outbox reads and marks on the submissions table, and consume on the rejections queue only', () => {
    assert.deepEqual(
      grants(statementsOf(json, 'notifier')),
      [
        ...LOGS(logGroupOf(json, 'notifier')),
        ...XRAY,
        `dynamodb:BatchGetItem on ${r.submissionsTable}`,
        `dynamodb:UpdateItem on ${r.submissionsTable}`,
        `kms:Decrypt on ${r.topicKey}`,
        `kms:GenerateDataKey* on ${r.topicKey}`,
        `sns:Publish on ${r.rejectionsTopic}`,
        ...CONSUME(r.rejectionsQueue),
      ].sort(),
    );
  });

  it('lets the notifier BatchGetItem and UpdateItem the submissions table (its outbox) and nothing else in DynamoDB', () => {
    const notifier = statementsOf(json, 'notifier');
    const allowed = ['dynamodb:BatchGetItem', 'dynamodb:UpdateItem'];
    assert.deepEqual(
      grants(notifier).filter((g) => g.startsWith('dynamodb:')),
      allowed.map((a) => `${a} on ${r.submissionsTable}`).sort(),
    );
    for (const action of [...DYNAMODB_READS, ...DYNAMODB_WRITES].filter((a) => !allowed.includes(a))) {
      assert.equal(allows(notifier, action, r.submissionsTable), false, `notifier may ${action} on the submissions table`);
    }
    for (const action of [...DYNAMODB_READS, ...DYNAMODB_WRITES]) {
      assert.equal(allows(notifier, action, r.usersTable), false, `notifier may ${action} on the users table`);
    }
    // The table ARN only: not an index ARN (the table has none), not a pattern.
    for (const s of notifier.filter((s) => s.actions.some((a) => a.toLowerCase().startsWith('dynamodb:')))) {
      assert.deepEqual(s.resources, [r.submissionsTable], `${s.actions} resources`);
    }
  });

  it('does not let the notifier read (or touch) the submissions queue', () => {
    const statements = statementsOf(json, 'notifier');
    for (const action of [...SQS_CONSUME, 'sqs:SendMessage', 'sqs:PurgeQueue']) {
      assert.equal(allows(statements, action, r.submissionsQueue), false, `notifier may ${action} on the submissions queue`);
      assert.equal(allows(statements, action, r.submissionsDlq), false, `notifier may ${action} on the submissions DLQ`);
    }
    // The same through the only other route to a queue: its resource policy.
    for (const [, policy] of resourcesOfType(json, 'AWS::SQS::QueuePolicy')) {
      for (const s of policy.Properties.PolicyDocument.Statement) {
        assert.notEqual(s.Effect, 'Allow', 'queue policies only deny (plain HTTP)');
      }
    }
  });

  it('allows on every resource ("*") only actions without resource-level permissions, and grants no wildcard actions', () => {
    for (const fn of Object.keys(FUNCTION_IDS) as FunctionName[]) {
      for (const s of statementsOf(json, fn)) {
        if (s.resources.includes('*')) {
          assert.deepEqual(s.resources, ['*'], `${fn}: "*" in a statement of its own`);
          assert.equal(s.effect, 'Allow');
          for (const action of s.actions) assert.ok(STAR_ACTIONS[fn].includes(action), `${fn}: ${action} on "*"`);
        }
        for (const action of s.actions) {
          assert.ok(!action.includes('*') || action === 'kms:GenerateDataKey*', `${fn}: wildcard action ${action}`);
        }
      }
      assert.deepEqual(
        grants(statementsOf(json, fn)).filter((g) => g.endsWith(' on *')),
        STAR_ACTIONS[fn].map((a) => `${a} on *`),
        `${fn}: X-Ray upload (active tracing)${fn === 'ranker' || fn === 'boards' || fn === 'processor' ? ', DescribeNetworkInterfaces' : ''}${fn === 'ranker' ? ', ListStreams' : ''}`,
      );
    }
  });

  it('names no index of any table in any statement: the tables have none', () => {
    const everyStatement = [
      ...(Object.keys(FUNCTION_IDS) as FunctionName[]).flatMap((fn) => statementsOf(json, fn).map((s) => ({ who: fn, s }))),
      ...statementsOfManagedPolicy(json, 'OperatorPolicy').map((s) => ({ who: 'operators', s })),
    ];
    assert.ok(everyStatement.some(({ s }) => s.resources.includes(r.submissionsTable)), 'guard: the submissions table is granted somewhere');
    for (const { who, s } of everyStatement) {
      for (const res of s.resources) {
        // An index ARN reads `<table id>/index/<name>`, or keeps "/index/" in its JSON if built otherwise.
        assert.ok(!res.includes('/index/'), `${who}: ${s.actions} on ${res}`);
      }
    }
    // And no stray policy elsewhere (a bucket, queue or topic policy) names one.
    assert.ok(!JSON.stringify(json.Resources).includes('/index/'), 'the template names no index ARN');
  });

  it('matches IAM wildcards the way IAM does (guards the helpers above)', () => {
    assert.ok(actionMatches('dynamodb:*', 'dynamodb:PutItem'));
    assert.ok(actionMatches('dynamodb:Batch*', 'dynamodb:BatchWriteItem'));
    assert.ok(actionMatches('*', 'sqs:ReceiveMessage'));
    assert.ok(!actionMatches('dynamodb:GetItem', 'dynamodb:GetItems'));
    assert.ok(allows([{ effect: 'Allow', actions: ['sqs:*'], resources: ['*'] }], 'sqs:ReceiveMessage', 'AnyQueue'));
  });

  it('lets only CloudWatch alarms of this account publish to the alarm topic', () => {
    const policy = resourcesOfType(json, 'AWS::SNS::TopicPolicy')
      .map(([, p]) => p.Properties)
      .find((p) => p.Topics.some((t: unknown) => refTarget(t) === r.alarmTopic));
    const allowStatements = policy.PolicyDocument.Statement.filter((s: any) => s.Effect === 'Allow');
    assert.equal(allowStatements.length, 1);
    assert.deepEqual(allowStatements[0].Principal, { Service: 'cloudwatch.amazonaws.com' });
    assert.equal(allowStatements[0].Action, 'sns:Publish');
    assert.deepEqual(allowStatements[0].Condition.StringEquals['aws:SourceAccount'], { Ref: 'AWS::AccountId' });
    const keyPolicy = resource(json, r.topicKey).Properties.KeyPolicy.Statement;
    assert.ok(
      keyPolicy.some(
        (s: any) => s.Principal?.Service === 'cloudwatch.amazonaws.com' && ([] as string[]).concat(s.Action).includes('kms:GenerateDataKey*'),
      ),
      'CloudWatch may use the topic key',
    );
  });
});

describe('operator policy', () => {
  const { json } = synthDefault();
  const r = ids(json);
  const policyId = logicalId(json, 'AWS::IAM::ManagedPolicy', 'OperatorPolicy');
  const policy = resource(json, policyId).Properties;

  it('grants exactly the calls of the users tool: add, suspend, activate, list and suspend --revoke-scores', () => {
    assert.deepEqual(
      grants(statementsOfManagedPolicy(json, 'OperatorPolicy')),
      [
        // add: PutItem; suspend and activate: conditional UpdateItem; list: paginated Scan.
        `dynamodb:PutItem on ${r.usersTable}`,
        `dynamodb:UpdateItem on ${r.usersTable}`,
        `dynamodb:Scan on ${r.usersTable}`,
        // --revoke-scores: every page of the user's partition of the table (keyed by player,
        // no index), then BatchWriteItem puts.
        `dynamodb:Query on ${r.submissionsTable}`,
        `dynamodb:BatchWriteItem on ${r.submissionsTable}`,
      ].sort(),
    );
  });

  it('lets operators Query the submissions table itself, not an index', () => {
    const queries = statementsOfManagedPolicy(json, 'OperatorPolicy').filter((s) => s.actions.some((a) => actionMatches(a, 'dynamodb:Query')));
    assert.equal(queries.length, 1);
    assert.deepEqual(queries[0]!.actions, ['dynamodb:Query']);
    assert.deepEqual(queries[0]!.resources, [r.submissionsTable]);
    const raw = policy.PolicyDocument.Statement.find((s: any) => ([] as string[]).concat(s.Action).includes('dynamodb:Query'));
    assert.deepEqual(raw.Resource, { 'Fn::GetAtt': [r.submissionsTable, 'Arn'] }, 'the table ARN as is: no suffix');
  });

  it('is plain Allow statements: no Deny, conditions, NotAction or NotResource to misread', () => {
    for (const statement of policy.PolicyDocument.Statement) {
      assert.equal(statement.Effect, 'Allow');
      assert.deepEqual(Object.keys(statement).sort(), ['Action', 'Effect', 'Resource', 'Sid'], statement.Sid);
    }
  });

  it('lets operators read nothing else: not the quotas table, the table stream, nor submissions by id or by Scan', () => {
    const statements = statementsOfManagedPolicy(json, 'OperatorPolicy');
    for (const action of DYNAMODB_READS) {
      assert.equal(allows(statements, action, r.quotasTable), false, `operators may ${action} on the quotas table`);
      assert.equal(allows(statements, action, `${r.submissionsTable}/stream/*`), false, `operators may ${action} on the table's stream`);
      if (action !== 'dynamodb:Query') {
        assert.equal(allows(statements, action, r.submissionsTable), false, `operators may ${action} on the submissions table`);
      }
    }
  });

  it('is attached to nobody by the stack and has no fixed name (several stages share an account)', () => {
    assert.equal(policy.Roles, undefined);
    assert.equal(policy.Users, undefined);
    assert.equal(policy.Groups, undefined);
    assert.equal(policy.ManagedPolicyName, undefined);
    for (const [roleId] of resourcesOfType(json, 'AWS::IAM::Role')) {
      assert.equal(resource(json, roleId).Properties.ManagedPolicyArns, undefined, roleId);
    }
  });

  it('is given as the stack output OperatorPolicyArn', () => {
    assert.deepEqual(json.Outputs?.OperatorPolicyArn?.Value, { Ref: policyId }, 'a managed policy Ref is its ARN');
  });
});
