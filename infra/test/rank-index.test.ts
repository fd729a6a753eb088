// The players' leaderboards: the rank index (ElastiCache Serverless), the VPC it lives in, the
// security groups between it and its two clients, the dimension its metrics are watched by, and
// the ranker's stream event source. (The processor's place in that VPC, with quotaCounter=cache,
// is in quota-counter.test.ts; its alarms and graphs in alarms.test.ts and dashboard.test.ts.)

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RANK_INDEX_PORT, STATUS_ACCEPTED, STATUS_ATTRIBUTE, STATUS_REJECTED } from '../lib/score-pipeline-stack.ts';
import { DEFAULTS, defaultRankIndexMaxEcpuPerSecond } from '../lib/settings.ts';
import { dashboard, metricLines } from './support/dashboard.ts';
import { egressRules, ingressRules, processorNetworkIds, ruleString } from './support/network.ts';
import {
  type CfnTemplate,
  FUNCTION_IDS,
  type FunctionName,
  functionId,
  functionProps,
  ids,
  refTarget,
  resource,
  resourcesOfType,
  synth,
  synthDefault,
} from './support/synth.ts';

/** CDK's placeholder egress rule for a group that may send nothing: it matches no packet. */
const NO_TRAFFIC = { CidrIp: '255.255.255.255/32', Description: 'Disallow all traffic', FromPort: 252, IpProtocol: 'icmp', ToPort: 86 };

function subnetIds(json: CfnTemplate): string[] {
  return resourcesOfType(json, 'AWS::EC2::Subnet').map(([id]) => id);
}

function rankerEventSource(json: CfnTemplate) {
  const mappings = resourcesOfType(json, 'AWS::Lambda::EventSourceMapping')
    .map(([, m]) => m.Properties)
    .filter((m) => refTarget(m.FunctionName) === functionId(json, 'ranker'));
  assert.equal(mappings.length, 1, 'the ranker has one event source');
  return mappings[0];
}

/**
 * Whether an event filter pattern matches `event`, for the pattern forms the stack uses: a list of
 * values (the event's value is one of them) or an object (each of its keys matches).
 */
function matches(pattern: unknown, event: unknown): boolean {
  if (Array.isArray(pattern)) return pattern.some((value) => value === event);
  if (pattern === null || typeof pattern !== 'object') throw new Error(`unsupported pattern ${JSON.stringify(pattern)}`);
  if (event === null || typeof event !== 'object') return false;
  return Object.entries(pattern).every(([key, inner]) => matches(inner, (event as Record<string, unknown>)[key]));
}

/** A stream record of a submission whose status went from `before` to `after` (undefined: no image). */
function change(eventName: 'INSERT' | 'MODIFY' | 'REMOVE', before: string | undefined, after: string | undefined) {
  const image = (status: string) => ({ submissionId: { S: 'id-1' }, userId: { S: 'auth0|alice' }, [STATUS_ATTRIBUTE]: { S: status } });
  return {
    eventName,
    eventSource: 'aws:dynamodb',
    dynamodb: {
      Keys: { submissionId: { S: 'id-1' } },
      ...(before === undefined ? {} : { OldImage: image(before) }),
      ...(after === undefined ? {} : { NewImage: image(after) }),
      SequenceNumber: '100',
    },
  };
}

describe('rank index network', () => {
  const { json } = synthDefault();
  const r = ids(json);

  it('is one VPC of two isolated subnets in two availability zones', () => {
    assert.equal(resourcesOfType(json, 'AWS::EC2::VPC').length, 1);
    const subnets = resourcesOfType(json, 'AWS::EC2::Subnet').map(([, s]) => s.Properties);
    assert.equal(subnets.length, 2);
    for (const subnet of subnets) {
      assert.equal(refTarget(subnet.VpcId), r.rankIndexVpc);
      assert.equal(subnet.MapPublicIpOnLaunch, false);
      assert.ok(subnet.Tags.some((t: any) => t.Key === 'aws-cdk:subnet-type' && t.Value === 'Isolated'), 'isolated');
    }
    assert.deepEqual(
      subnets.map((s) => s.AvailabilityZone['Fn::Select'][0]).sort(),
      [0, 1],
      'one subnet in each of two zones',
    );
    // The cache endpoint's name resolves through the VPC's DNS.
    assert.equal(resource(json, r.rankIndexVpc).Properties.EnableDnsSupport, true);
  });

  it("has no way out but the processor's endpoints: no NAT, no internet gateway, no routes but the local one and the gateway endpoint's", () => {
    const table = synth({ quotaCounter: 'table' }).json;
    for (const t of [json, table]) {
      for (const type of [
        'AWS::EC2::NatGateway',
        'AWS::EC2::EIP',
        'AWS::EC2::InternetGateway',
        'AWS::EC2::VPCGatewayAttachment',
        'AWS::EC2::EgressOnlyInternetGateway',
        'AWS::EC2::TransitGatewayAttachment',
        'AWS::EC2::VPCPeeringConnection',
        'AWS::EC2::Route',
      ]) {
        assert.deepEqual(resourcesOfType(t, type), [], type);
      }
    }
    // The counter in the cache brings the processor's two endpoints; the table counter none.
    const n = processorNetworkIds(json);
    assert.deepEqual(resourcesOfType(json, 'AWS::EC2::VPCEndpoint').map(([id]) => id).sort(), [n.dynamodbEndpoint, n.sqsEndpoint].sort());
    assert.deepEqual(resourcesOfType(table, 'AWS::EC2::VPCEndpoint'), []);
  });

  it('adds no custom resources (the default security group is left alone: nothing uses it)', () => {
    const custom = Object.entries(json.Resources).filter(([, res]) => res.Type.startsWith('Custom::') || res.Type === 'AWS::CloudFormation::CustomResource');
    assert.deepEqual(custom, []);
    assert.equal(resourcesOfType(json, 'AWS::Lambda::Function').length, Object.keys(FUNCTION_IDS).length, 'only the pipeline functions');
  });

  it('lets the clients reach the rank index on its port, and nothing else in or out', () => {
    const n = processorNetworkIds(json);
    const groups = resourcesOfType(json, 'AWS::EC2::SecurityGroup');
    assert.deepEqual(
      groups.map(([id]) => id).sort(),
      [r.rankIndexClientSecurityGroup, r.rankIndexSecurityGroup, n.processorSecurityGroup, n.sqsEndpointSecurityGroup].sort(),
    );
    for (const [id, group] of groups) {
      assert.equal(refTarget(group.Properties.VpcId), r.rankIndexVpc, id);
      assert.equal(group.Properties.SecurityGroupIngress, undefined, `${id}: no inline ingress`);
    }
    // The clients' group: TCP on the rank index port to the cache's group, nothing else, nothing in.
    assert.deepEqual(
      egressRules(json, r.rankIndexClientSecurityGroup).map((rule) => ruleString(rule, 'to')),
      [`tcp ${RANK_INDEX_PORT} to sg:${r.rankIndexSecurityGroup}`],
    );
    assert.deepEqual(ingressRules(json, r.rankIndexClientSecurityGroup), []);
    // The cache's group sends nothing and takes the clients' group and (counting quotas) the processor's.
    assert.deepEqual(resource(json, r.rankIndexSecurityGroup).Properties.SecurityGroupEgress, [NO_TRAFFIC]);
    assert.deepEqual(
      ingressRules(json, r.rankIndexSecurityGroup).map((rule) => ruleString(rule, 'from')).sort(),
      [`tcp ${RANK_INDEX_PORT} from sg:${r.rankIndexClientSecurityGroup}`, `tcp ${RANK_INDEX_PORT} from sg:${n.processorSecurityGroup}`].sort(),
    );
  });

  it('with the quota counted in the table, has only the clients and cache groups and one rule each way', () => {
    const table = synth({ quotaCounter: 'table' }).json;
    const groups = resourcesOfType(table, 'AWS::EC2::SecurityGroup');
    assert.deepEqual(groups.map(([id]) => id).sort(), [r.rankIndexClientSecurityGroup, r.rankIndexSecurityGroup].sort());
    for (const [id, group] of groups) {
      assert.equal(refTarget(group.Properties.VpcId), r.rankIndexVpc, id);
      assert.equal(group.Properties.SecurityGroupIngress, undefined, `${id}: no inline ingress`);
    }
    // The clients' group has one egress rule, standalone (CloudFormation then drops the group's
    // default allow-all egress): TCP on the rank index port, to the cache's group.
    assert.equal(resource(table, r.rankIndexClientSecurityGroup).Properties.SecurityGroupEgress, undefined);
    const egress = resourcesOfType(table, 'AWS::EC2::SecurityGroupEgress').map(([, e]) => e.Properties);
    assert.equal(egress.length, 1);
    assert.deepEqual(
      { ...egress[0], GroupId: refTarget(egress[0].GroupId), DestinationSecurityGroupId: refTarget(egress[0].DestinationSecurityGroupId), Description: undefined },
      {
        GroupId: r.rankIndexClientSecurityGroup,
        DestinationSecurityGroupId: r.rankIndexSecurityGroup,
        IpProtocol: 'tcp',
        FromPort: RANK_INDEX_PORT,
        ToPort: RANK_INDEX_PORT,
        Description: undefined,
      },
    );
    // The cache's group sends nothing (answers need no rule) and takes the clients' group only.
    assert.deepEqual(resource(table, r.rankIndexSecurityGroup).Properties.SecurityGroupEgress, [NO_TRAFFIC]);
    const ingress = resourcesOfType(table, 'AWS::EC2::SecurityGroupIngress').map(([, i]) => i.Properties);
    assert.equal(ingress.length, 1);
    assert.deepEqual(
      { ...ingress[0], GroupId: refTarget(ingress[0].GroupId), SourceSecurityGroupId: refTarget(ingress[0].SourceSecurityGroupId), Description: undefined },
      {
        GroupId: r.rankIndexSecurityGroup,
        SourceSecurityGroupId: r.rankIndexClientSecurityGroup,
        IpProtocol: 'tcp',
        FromPort: RANK_INDEX_PORT,
        ToPort: RANK_INDEX_PORT,
        Description: undefined,
      },
    );
    assert.equal(RANK_INDEX_PORT, 6379, "a serverless cache's primary endpoint port");
  });

  it('holds the ranker and boards in its subnets with the clients security group, and the processor with its own; ingest and the notifier stay outside', () => {
    const table = synth({ quotaCounter: 'table' }).json;
    for (const t of [json, table]) {
      for (const fn of ['ranker', 'boards'] as const) {
        const vpc = functionProps(t, fn).VpcConfig;
        assert.deepEqual(vpc.SubnetIds.map(refTarget).sort(), subnetIds(t).sort(), fn);
        assert.deepEqual(vpc.SecurityGroupIds.map(refTarget), [r.rankIndexClientSecurityGroup], fn);
      }
      for (const fn of ['ingest', 'notifier'] as const) {
        assert.equal(functionProps(t, fn).VpcConfig, undefined, `${fn} needs no VPC (it calls AWS APIs only)`);
      }
    }
    // The processor joins to count quotas in the cache, with a group of its own.
    const processor = functionProps(json, 'processor').VpcConfig;
    assert.deepEqual(processor.SubnetIds.map(refTarget).sort(), subnetIds(json).sort());
    assert.deepEqual(processor.SecurityGroupIds.map(refTarget), [processorNetworkIds(json).processorSecurityGroup]);
    assert.equal(functionProps(table, 'processor').VpcConfig, undefined, 'the table counter needs no VPC (AWS APIs only)');
  });
});

describe('rank index', () => {
  const { json } = synthDefault();
  const r = ids(json);
  const cache = resource(json, r.rankIndex);

  it('is a serverless Valkey cache in the isolated subnets, behind its own security group', () => {
    const p = cache.Properties;
    assert.equal(p.Engine, 'valkey');
    assert.equal(p.MajorEngineVersion, '8');
    assert.deepEqual(p.SubnetIds.map(refTarget).sort(), subnetIds(json).sort());
    assert.deepEqual(p.SecurityGroupIds.map(refTarget), [r.rankIndexSecurityGroup]);
    assert.equal(p.ServerlessCacheName, 'score-ranks-dev');
    assert.equal(synth({ stage: 'staging' }).json.Resources[r.rankIndex]!.Properties.ServerlessCacheName, 'score-ranks-staging');
  });

  it('caps data storage and ECPUs and keeps daily snapshots, by default', () => {
    assert.deepEqual(cache.Properties.CacheUsageLimits, {
      DataStorage: { Maximum: DEFAULTS.rankIndexMaxDataStorageGb, Unit: 'GB' },
      ECPUPerSecond: { Maximum: 600_000 },
    });
    assert.equal(defaultRankIndexMaxEcpuPerSecond(DEFAULTS.apiRateLimit), 600_000, 'the default API throttle x 100 x 12');
    assert.equal(cache.Properties.SnapshotRetentionLimit, 1);
    const prod = synth({ stage: 'prod' }).json;
    assert.equal(prod.Resources[ids(prod).rankIndex]!.Properties.SnapshotRetentionLimit, 7, 'production keeps a week');
  });

  it('takes its limits and snapshot retention from context', () => {
    const custom = synth({ rankIndexMaxDataStorageGb: '20', rankIndexMaxEcpuPerSecond: 50_000, rankIndexSnapshotRetentionDays: 3 }).json;
    const p = custom.Resources[ids(custom).rankIndex]!.Properties;
    assert.deepEqual(p.CacheUsageLimits, { DataStorage: { Maximum: 20, Unit: 'GB' }, ECPUPerSecond: { Maximum: 50_000 } });
    assert.equal(p.SnapshotRetentionLimit, 3);
    assert.throws(() => synth({ rankIndexMaxDataStorageGb: 0 }), /rankIndexMaxDataStorageGb.*outside 1\.\.5000/);
    assert.throws(() => synth({ rankIndexMaxEcpuPerSecond: 999 }), /rankIndexMaxEcpuPerSecond.*outside 1000\.\.15000000/);
    assert.throws(() => synth({ apiRateLimit: 10, rankIndexMaxEcpuPerSecond: 15_000_001 }), /rankIndexMaxEcpuPerSecond.*outside 1000\.\.15000000/);
    assert.throws(() => synth({ rankIndexSnapshotRetentionDays: 0 }), /rankIndexSnapshotRetentionDays.*outside 1\.\.35/);
  });

  it('caps ECPUs by the API throttle unless given a cap', () => {
    const ecpuCap = (context: Record<string, unknown>) => {
      const json = synth(context).json;
      return json.Resources[ids(json).rankIndex]!.Properties.CacheUsageLimits.ECPUPerSecond.Maximum;
    };
    assert.equal(ecpuCap({ apiRateLimit: 10 }), 12_000);
    assert.equal(ecpuCap({ apiRateLimit: 100_000 }), 15_000_000, 'clamped at the ElastiCache maximum');
    assert.equal(ecpuCap({ apiRateLimit: 10, rankIndexMaxEcpuPerSecond: 7_000 }), 7_000, 'a given cap wins');
  });

  it('is deleted with a dev stack, and retained with the network it stands in by a production stack', () => {
    assert.equal(cache.DeletionPolicy, 'Delete');
    assert.equal(cache.UpdateReplacePolicy, 'Delete');
    const prod = synth({ stage: 'prod' }).json;
    const p = ids(prod);
    assert.equal(prod.Resources[p.rankIndex]!.DeletionPolicy, 'Retain');
    assert.equal(prod.Resources[p.rankIndex]!.UpdateReplacePolicy, 'Retain');
    // Its subnets and security group stay in use, so they stay too; the rules, the functions'
    // groups and the processor's endpoints go, so nothing retained refers to a deleted resource.
    const retained = ['AWS::EC2::VPC', 'AWS::EC2::Subnet', 'AWS::EC2::RouteTable', 'AWS::EC2::SubnetRouteTableAssociation'];
    for (const [id, res] of Object.entries(prod.Resources).filter(([, res]) => retained.includes(res.Type))) {
      assert.equal(res.DeletionPolicy, 'Retain', id);
    }
    assert.equal(prod.Resources[p.rankIndexSecurityGroup]!.DeletionPolicy, 'Retain');
    assert.equal(prod.Resources[p.rankIndexClientSecurityGroup]!.DeletionPolicy, undefined);
    const n = processorNetworkIds(prod);
    for (const id of [n.processorSecurityGroup, n.sqsEndpointSecurityGroup, n.dynamodbEndpoint, n.sqsEndpoint]) {
      assert.equal(prod.Resources[id]!.DeletionPolicy, undefined, id);
    }
    for (const type of ['AWS::EC2::SecurityGroupIngress', 'AWS::EC2::SecurityGroupEgress']) {
      for (const [id, res] of resourcesOfType(prod, type)) assert.equal(res.DeletionPolicy, undefined, id);
    }
    // A dev stack keeps nothing of it.
    for (const [id, res] of Object.entries(json.Resources).filter(([, res]) => res.Type.startsWith('AWS::EC2::'))) {
      assert.equal(res.DeletionPolicy, undefined, id);
    }
  });

  it('refuses stage names the cache name cannot hold', () => {
    assert.throws(() => synth({ stage: 'qa--1' }), /context "stage".*"--"/);
    assert.throws(() => synth({ stage: 'qa-' }), /context "stage".*end with "-"/);
  });
});

/** A metric of the template on AWS/ElastiCache: where it is, its dimensions' names and values. */
interface CacheMetric {
  where: string;
  names: string[];
  values: unknown[];
}

/**
 * Every AWS/ElastiCache metric in the template: any object with that Namespace (an alarm's metric,
 * or one in a metric math alarm's MetricStat), and every line of the dashboard on that namespace.
 */
function elastiCacheMetrics(t: CfnTemplate): CacheMetric[] {
  const found: CacheMetric[] = [];
  const walk = (value: unknown, where: string): void => {
    if (Array.isArray(value)) return value.forEach((v, i) => walk(v, `${where}[${i}]`));
    if (value === null || typeof value !== 'object') return;
    const o = value as Record<string, unknown>;
    if (o.Namespace === 'AWS/ElastiCache') {
      const dimensions = (o.Dimensions ?? []) as { Name: string; Value: unknown }[];
      found.push({ where, names: dimensions.map((d) => d.Name), values: dimensions.map((d) => d.Value) });
    }
    for (const [key, inner] of Object.entries(o)) walk(inner, `${where}.${key}`);
  };
  for (const [id, res] of Object.entries(t.Resources)) walk(res.Properties, id);
  for (const l of metricLines(dashboard(t)).filter((l) => l.namespace === 'AWS/ElastiCache')) {
    found.push({ where: `dashboard: ${l.widget}: ${l.name}`, names: Object.keys(l.dimensions), values: Object.values(l.dimensions) });
  }
  return found;
}

describe('rank index metrics', () => {
  const templates: [string, CfnTemplate][] = [
    ['dev', synthDefault().json],
    ['prod', synth({ stage: 'prod' }).json],
    ['quotaCounter=table', synth({ quotaCounter: 'table' }).json],
  ];

  it('are all watched by clusterId, the one dimension serverless caches publish under, valued by Ref of the cache (its name)', () => {
    for (const [what, t] of templates) {
      const metrics = elastiCacheMetrics(t);
      // Two alarms; six dashboard lines (ECPUs, bytes, throttled, read and write latency, commands).
      assert.equal(metrics.length, 2 + 6, what);
      for (const m of metrics) {
        assert.deepEqual(m.names, ['clusterId'], `${what}: ${m.where}`);
        const value = m.values[0];
        const target = typeof value === 'string' ? /^\$\{(.+)\}$/.exec(value)?.[1] : refTarget(value);
        assert.equal(target, ids(t).rankIndex, `${what}: ${m.where}: Ref of the cache, not a copy of its name`);
        if (typeof value !== 'string') assert.deepEqual(value, { Ref: ids(t).rankIndex }, `${what}: ${m.where}`);
      }
    }
  });

  it('never use CacheClusterId (node-based clusters) or ServerlessCacheName: a graph or alarm on either gets no data', () => {
    for (const [what, t] of templates) {
      for (const m of elastiCacheMetrics(t)) {
        for (const wrong of ['CacheClusterId', 'ServerlessCacheName']) assert.ok(!m.names.includes(wrong), `${what}: ${m.where} uses ${wrong}`);
      }
      // Nothing in the stack is a node-based cluster: the string has no business anywhere.
      assert.ok(!JSON.stringify(t).includes('CacheClusterId'), `${what}: CacheClusterId in the template`);
      // ServerlessCacheName is the cache's own property, and nothing else's.
      assert.ok(!dashboard(t).text.includes('ServerlessCacheName'), `${what}: ServerlessCacheName in the dashboard`);
      const alarms = resourcesOfType(t, 'AWS::CloudWatch::Alarm').map(([, a]) => JSON.stringify(a));
      assert.ok(!alarms.some((a) => a.includes('ServerlessCacheName')), `${what}: ServerlessCacheName in an alarm`);
    }
  });
});

describe('ranker event source', () => {
  it('reads the submissions table stream from the trim horizon, in order, reporting the first record to retry', () => {
    const { json } = synthDefault();
    const r = ids(json);
    const m = rankerEventSource(json);
    assert.deepEqual(m.EventSourceArn, { 'Fn::GetAtt': [r.submissionsTable, 'StreamArn'] });
    assert.equal(m.StartingPosition, 'TRIM_HORIZON');
    assert.equal(m.BatchSize, DEFAULTS.rankerBatchSize);
    assert.equal(m.BatchSize, 100);
    assert.equal(m.MaximumBatchingWindowInSeconds, 1);
    assert.deepEqual(m.FunctionResponseTypes, ['ReportBatchItemFailures']);
    assert.equal(m.ParallelizationFactor, 1);
    assert.equal(m.BisectBatchOnFunctionError, false);
    assert.equal(m.ScalingConfig, undefined, 'stream sources scale by shard');
    assert.equal(m.Enabled, undefined, 'enabled');
  });

  it('retries until a record is 6 hours old, then reports the batch to the ranker failure queue', () => {
    const { json } = synthDefault();
    const m = rankerEventSource(json);
    assert.equal(m.MaximumRetryAttempts, -1, 'infinite attempts');
    assert.equal(m.MaximumRecordAgeInSeconds, 6 * 3600);
    assert.deepEqual(m.DestinationConfig, { OnFailure: { Destination: { 'Fn::GetAtt': [ids(json).rankerFailureQueue, 'Arn'] } } });
  });

  it('takes the batch size, batching window and maximum record age from context', () => {
    const m = rankerEventSource(synth({ rankerBatchSize: '500', rankerBatchingWindowSeconds: 5, rankerMaxRecordAgeSeconds: 3600 }).json);
    assert.equal(m.BatchSize, 500);
    assert.equal(m.MaximumBatchingWindowInSeconds, 5);
    assert.equal(m.MaximumRecordAgeInSeconds, 3600);
    assert.equal(rankerEventSource(synth({ rankerBatchingWindowSeconds: 0 }).json).MaximumBatchingWindowInSeconds, undefined);
  });

  it('refuses settings Lambda or the stream cannot honour', () => {
    assert.throws(() => synth({ rankerBatchSize: 1001 }), /rankerBatchSize.*outside 1\.\.1000/);
    assert.throws(() => synth({ rankerBatchingWindowSeconds: 301 }), /rankerBatchingWindowSeconds.*outside 0\.\.300/);
    assert.throws(() => synth({ rankerMaxRecordAgeSeconds: 59 }), /rankerMaxRecordAgeSeconds.*outside 60\.\.86400/);
    assert.throws(() => synth({ rankerMaxRecordAgeSeconds: 86_401 }), /rankerMaxRecordAgeSeconds.*outside 60\.\.86400/);
  });

  it('invokes the ranker only for accepted items and revocations: exactly two filters', () => {
    const m = rankerEventSource(synthDefault().json);
    const patterns = m.FilterCriteria.Filters.map((f: { Pattern: string }) => JSON.parse(f.Pattern));
    assert.deepEqual(patterns, [
      { dynamodb: { NewImage: { [STATUS_ATTRIBUTE]: { S: [STATUS_ACCEPTED] } } } },
      {
        eventName: ['MODIFY'],
        dynamodb: { OldImage: { [STATUS_ATTRIBUTE]: { S: [STATUS_ACCEPTED] } }, NewImage: { [STATUS_ATTRIBUTE]: { S: [STATUS_REJECTED] } } },
      },
    ]);
    assert.deepEqual([STATUS_ATTRIBUTE, STATUS_ACCEPTED, STATUS_REJECTED], ['status', 'accepted', 'rejected']);
    // Lambda invokes for a record that any filter matches.
    const invoked = (record: unknown) => patterns.some((p: unknown) => matches(p, record));
    const cases: [string, unknown, boolean][] = [
      ['an accepted submission stored', change('INSERT', undefined, 'accepted'), true],
      ['a failed marker turned accepted', change('MODIFY', 'failed', 'accepted'), true],
      ['an accepted item put again', change('MODIFY', 'accepted', 'accepted'), true],
      ['an operator revocation', change('MODIFY', 'accepted', 'rejected'), true],
      ['a rejected submission stored', change('INSERT', undefined, 'rejected'), false],
      ['a failed marker', change('INSERT', undefined, 'failed'), false],
      ["the notifier's mark on a rejection", change('MODIFY', 'rejected', 'rejected'), false],
      ['a failed marker turned rejected', change('MODIFY', 'failed', 'rejected'), false],
      ['an item removed', change('REMOVE', 'accepted', undefined), false],
    ];
    for (const [what, record, expected] of cases) assert.equal(invoked(record), expected, what);
  });
});

describe('ranker failure queue', () => {
  it('is a queue of its own that nothing consumes', () => {
    const { json } = synthDefault();
    const queue = ids(json).rankerFailureQueue;
    assert.equal(resource(json, queue).Properties.RedrivePolicy, undefined);
    const consumers = resourcesOfType(json, 'AWS::Lambda::EventSourceMapping').filter(([, m]) => refTarget(m.Properties.EventSourceArn) === queue);
    assert.deepEqual(consumers, []);
    for (const fn of Object.keys(FUNCTION_IDS) as FunctionName[]) {
      if (fn !== 'ranker') assert.equal(JSON.stringify(functionProps(json, fn).Environment).includes(queue), false, fn);
    }
  });
});
