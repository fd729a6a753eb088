// Where the processor counts the per-user quota (the quotaCounter setting): in the rank index's
// cache (the default: the processor joins the rank index VPC, which gets a DynamoDB gateway
// endpoint and an SQS interface endpoint) or in the quotas table (the processor stays outside).
// And the contract for every function in the VPC: each AWS API it calls can be reached from there.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { allowThroughEndpoint, ENV, RANK_INDEX_PORT } from '../lib/score-pipeline-stack.ts';
import {
  egressRules,
  endpointsOf,
  ingressRules,
  NETWORK_INTERFACE_ACTIONS,
  processorNetworkIds,
  routeTablesOf,
  ruleString,
  vpcCallViolations,
  vpcCalls,
  vpcFunctions,
} from './support/network.ts';
import {
  type CfnTemplate,
  functionId,
  functionProps,
  grants,
  ids,
  refTarget,
  resource,
  resourcesOfType,
  roleOf,
  statementsOfDocument,
  statementsOfRole,
  synth,
  synthDefault,
} from './support/synth.ts';

const EC2_ARN = (resourceType: string, name: string) => `arn:\${AWS::Partition}:ec2:\${AWS::Region}:\${AWS::AccountId}:${resourceType}/${name}`;

function subnetIds(json: CfnTemplate): string[] {
  return resourcesOfType(json, 'AWS::EC2::Subnet').map(([id]) => id);
}

/** The logical ids a resource's properties refer to (Ref, Fn::GetAtt), pseudo parameters left out. */
function referencesOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(referencesOf);
  if (value === null || typeof value !== 'object') return [];
  const target = refTarget(value);
  if (target !== undefined) return target.startsWith('AWS::') ? [] : [target];
  return Object.values(value).flatMap(referencesOf);
}

/** The same template with one more statement in the processor role's default policy. */
function withProcessorStatement(json: CfnTemplate, statement: unknown): CfnTemplate {
  const copy = structuredClone(json);
  const role = roleOf(copy, 'processor');
  const policy = resourcesOfType(copy, 'AWS::IAM::Policy').find(([, p]) => p.Properties.Roles.some((r: unknown) => refTarget(r) === role));
  assert.ok(policy, 'the processor role has a policy');
  policy[1].Properties.PolicyDocument.Statement.push(statement);
  return copy;
}

describe('quota counter in the cache (the default)', () => {
  const { json } = synthDefault();
  const r = ids(json);
  const n = processorNetworkIds(json);

  it('puts the processor in the rank index subnets with a security group of its own', () => {
    const vpc = functionProps(json, 'processor').VpcConfig;
    assert.deepEqual(vpc.SubnetIds.map(refTarget).sort(), subnetIds(json).sort());
    assert.deepEqual(vpc.SecurityGroupIds.map(refTarget), [n.processorSecurityGroup]);
    assert.notEqual(n.processorSecurityGroup, r.rankIndexClientSecurityGroup, 'not the ranker and boards group');
    assert.equal(refTarget(resource(json, n.processorSecurityGroup).Properties.VpcId), r.rankIndexVpc);
    for (const [, s] of resourcesOfType(json, 'AWS::EC2::Subnet')) {
      assert.ok(s.Properties.Tags.some((t: any) => t.Key === 'aws-cdk:subnet-type' && t.Value === 'Isolated'), 'isolated subnets');
    }
  });

  it("gives the processor QUOTA_COUNTER=cache and the ranker's RANK_INDEX_URL, and no QUOTAS_TABLE", () => {
    const env = functionProps(json, 'processor').Environment.Variables;
    assert.equal(env[ENV.quotaCounter], 'cache');
    assert.equal(ENV.quotaCounter, 'QUOTA_COUNTER');
    assert.ok(env[ENV.rankIndexUrl] !== undefined, 'RANK_INDEX_URL is set');
    assert.deepEqual(env[ENV.rankIndexUrl], functionProps(json, 'ranker').Environment.Variables[ENV.rankIndexUrl], "the ranker's URL");
    assert.ok(JSON.stringify(env[ENV.rankIndexUrl]).includes(r.rankIndex), 'built from the rank index');
    assert.equal(env[ENV.quotasTable], undefined, 'no QUOTAS_TABLE');
    assert.equal(env.RANK_INDEX_NAMESPACE, undefined, 'no namespace, like the ranker');
    assert.ok(!JSON.stringify(env).includes(r.quotasTable), 'the quotas table is not named anywhere in its environment');
  });

  it('grants the processor nothing on the quotas table, which stays', () => {
    const statements = statementsOfRole(json, roleOf(json, 'processor'));
    assert.deepEqual(
      statements.filter((s) => s.resources.some((res) => res.startsWith(r.quotasTable))),
      [],
      'no statement names the quotas table',
    );
    assert.equal(resource(json, r.quotasTable).Type, 'AWS::DynamoDB::Table', 'the table itself stays');
  });

  it("lets the processor's group out to the rank index port, the SQS endpoint's group on 443 and 443 for DynamoDB, nothing else", () => {
    assert.deepEqual(
      egressRules(json, n.processorSecurityGroup).map((rule) => ruleString(rule, 'to')).sort(),
      [
        // DynamoDB through the gateway endpoint: its prefix list id is not known at synth (see
        // processorNetwork), and the isolated subnets route 443 nowhere else (test below).
        'tcp 443 to 0.0.0.0/0',
        `tcp 443 to sg:${n.sqsEndpointSecurityGroup}`,
        `tcp ${RANK_INDEX_PORT} to sg:${r.rankIndexSecurityGroup}`,
      ].sort(),
    );
    assert.deepEqual(ingressRules(json, n.processorSecurityGroup), [], 'no ingress: Lambda invokes it from outside');
    assert.equal(resource(json, n.processorSecurityGroup).Properties.SecurityGroupEgress.length, 1, 'only the 0.0.0.0/0 rule inline: no allow-all default');
  });

  it("admits the processor's group to the rank index on its port, beside the ranker and boards group", () => {
    assert.deepEqual(
      ingressRules(json, r.rankIndexSecurityGroup).map((rule) => ruleString(rule, 'from')).sort(),
      [`tcp ${RANK_INDEX_PORT} from sg:${r.rankIndexClientSecurityGroup}`, `tcp ${RANK_INDEX_PORT} from sg:${n.processorSecurityGroup}`].sort(),
    );
    assert.deepEqual(egressRules(json, r.rankIndexSecurityGroup), [], 'the cache sends nothing');
  });

  it('creates exactly one DynamoDB gateway endpoint, on the isolated subnets, and one SQS interface endpoint with private DNS in them', () => {
    const endpoints = endpointsOf(json, r.rankIndexVpc);
    assert.equal(resourcesOfType(json, 'AWS::EC2::VPCEndpoint').length, 2, 'no other endpoint anywhere');
    assert.deepEqual(
      endpoints.map((e) => `${e.type} ${e.service} ${e.id}`).sort(),
      [`Gateway dynamodb ${n.dynamodbEndpoint}`, `Interface sqs ${n.sqsEndpoint}`].sort(),
    );
    const dynamodb = resource(json, n.dynamodbEndpoint).Properties;
    assert.equal(dynamodb.VpcEndpointType, 'Gateway');
    assert.deepEqual(dynamodb.RouteTableIds.map(refTarget).sort(), routeTablesOf(json, subnetIds(json)).sort(), "the isolated subnets' route tables");
    assert.equal(routeTablesOf(json, subnetIds(json)).length, 2);
    const sqs = resource(json, n.sqsEndpoint).Properties;
    assert.equal(sqs.VpcEndpointType, 'Interface');
    assert.equal(sqs.PrivateDnsEnabled, true, 'sqs.<region>.amazonaws.com resolves to it');
    assert.deepEqual(sqs.SubnetIds.map(refTarget).sort(), subnetIds(json).sort(), 'one interface in each zone');
    assert.deepEqual(sqs.SecurityGroupIds.map(refTarget), [n.sqsEndpointSecurityGroup]);
    // Private DNS for an interface endpoint takes DNS support and hostnames in the VPC.
    assert.equal(resource(json, r.rankIndexVpc).Properties.EnableDnsSupport, true);
    assert.equal(resource(json, r.rankIndexVpc).Properties.EnableDnsHostnames, true);
  });

  it("lets only the processor's group into the SQS endpoint, on 443 only, and the endpoint out to nothing", () => {
    assert.deepEqual(
      ingressRules(json, n.sqsEndpointSecurityGroup).map((rule) => ruleString(rule, 'from')),
      [`tcp 443 from sg:${n.processorSecurityGroup}`],
    );
    assert.deepEqual(egressRules(json, n.sqsEndpointSecurityGroup), []);
    assert.equal(refTarget(resource(json, n.sqsEndpointSecurityGroup).Properties.VpcId), r.rankIndexVpc);
  });

  it('can reach nothing but the endpoints on 443: no route to an internet, NAT, transit, peering or VPN gateway', () => {
    for (const type of [
      'AWS::EC2::Route',
      'AWS::EC2::InternetGateway',
      'AWS::EC2::EgressOnlyInternetGateway',
      'AWS::EC2::NatGateway',
      'AWS::EC2::VPCGatewayAttachment',
      'AWS::EC2::VPNGateway',
      'AWS::EC2::VPNGatewayRoutePropagation',
      'AWS::EC2::TransitGatewayAttachment',
      'AWS::EC2::TransitGatewayVpcAttachment',
      'AWS::EC2::VPCPeeringConnection',
      'AWS::EC2::CarrierGateway',
    ]) {
      assert.deepEqual(resourcesOfType(json, type), [], type);
    }
    // The route tables are the isolated subnets' own, and only the gateway endpoint adds routes
    // to them (its prefix list's): the local route and DynamoDB are all 0.0.0.0/0:443 can reach.
    const routeTables = resourcesOfType(json, 'AWS::EC2::RouteTable').map(([id]) => id);
    assert.deepEqual(routeTables.sort(), routeTablesOf(json, subnetIds(json)).sort());
    const routing = resourcesOfType(json, 'AWS::EC2::VPCEndpoint').filter(([, e]) => e.Properties.RouteTableIds !== undefined);
    assert.deepEqual(routing.map(([id]) => id), [n.dynamodbEndpoint]);
    // Inside the VPC, only the SQS endpoint takes 443, from the processor's group alone.
    const https = resourcesOfType(json, 'AWS::EC2::SecurityGroup').flatMap(([id]) =>
      ingressRules(json, id).filter((rule) => rule.protocol === '-1' || (rule.fromPort! <= 443 && 443 <= rule.toPort!)),
    );
    assert.deepEqual(
      https.map((rule) => `${rule.group} ${ruleString(rule, 'from')}`),
      [`${n.sqsEndpointSecurityGroup} tcp 443 from sg:${n.processorSecurityGroup}`],
    );
    // And the processor's group is the only one with a rule out to everywhere.
    const everywhere = resourcesOfType(json, 'AWS::EC2::SecurityGroup').flatMap(([id]) => egressRules(json, id).filter((rule) => rule.peer === '0.0.0.0/0'));
    assert.deepEqual(everywhere.map((rule) => `${rule.group} ${ruleString(rule, 'to')}`), [`${n.processorSecurityGroup} tcp 443 to 0.0.0.0/0`]);
  });

  it('gives the processor role the network interface statements, for its subnets and its own group only', () => {
    const processor = grants(statementsOfRole(json, roleOf(json, 'processor'))).filter((g) => g.startsWith('ec2:'));
    const anyInterface = EC2_ARN('network-interface', '*');
    assert.deepEqual(
      processor,
      [
        `ec2:CreateNetworkInterface on ${anyInterface}`,
        ...subnetIds(json).map((subnet) => `ec2:CreateNetworkInterface on ${EC2_ARN('subnet', `\${${subnet}}`)}`),
        `ec2:CreateNetworkInterface on ${EC2_ARN('security-group', `\${${n.processorSecurityGroup}.GroupId}`)}`,
        `ec2:DeleteNetworkInterface on ${anyInterface}`,
        `ec2:AssignPrivateIpAddresses on ${anyInterface}`,
        `ec2:UnassignPrivateIpAddresses on ${anyInterface}`,
        'ec2:DescribeNetworkInterfaces on *',
      ].sort(),
    );
    assert.ok(!processor.some((g) => g.includes(r.rankIndexClientSecurityGroup)), 'not the clients group');
    assert.deepEqual([...new Set(processor.map((g) => g.split(' ')[0]))].sort(), [...NETWORK_INTERFACE_ACTIONS].sort());
    assert.equal(resource(json, roleOf(json, 'processor')).Properties.ManagedPolicyArns, undefined, 'not AWSLambdaVPCAccessExecutionRole');
  });

  it("restricts each endpoint's policy to exactly the processor's calls through it", () => {
    const policy = (id: string) => grants(statementsOfDocument(resource(json, id).Properties.PolicyDocument));
    assert.deepEqual(policy(n.dynamodbEndpoint), [
      `dynamodb:BatchGetItem on ${r.submissionsTable}`,
      `dynamodb:BatchGetItem on ${r.usersTable}`,
      `dynamodb:GetItem on ${r.submissionsTable}`,
      `dynamodb:PutItem on ${r.submissionsTable}`,
    ].sort());
    assert.deepEqual(policy(n.sqsEndpoint), [`sqs:SendMessage on ${r.rejectionsQueue}`]);
    // The same calls the processor's role allows it to make from inside (see vpcCalls).
    const processor = vpcFunctions(json).find((f) => f.name === 'processor')!;
    const calls = vpcCalls(json, processor).map((c) => `${c.action} on ${c.resource}`).sort();
    assert.deepEqual([...policy(n.dynamodbEndpoint), ...policy(n.sqsEndpoint)].sort(), calls);
    // Any principal: the callers' own policies still decide who may call.
    for (const id of [n.dynamodbEndpoint, n.sqsEndpoint]) {
      for (const s of resource(json, id).Properties.PolicyDocument.Statement) {
        assert.deepEqual(s.Principal, { AWS: '*' }, id);
        assert.equal(s.Effect, 'Allow', id);
      }
    }
  });

  it('creates the processor after its endpoints (so that it is not invoked before they exist)', () => {
    const dependsOn: string[] = (json.Resources[functionId(json, 'processor')] as any).DependsOn ?? [];
    assert.ok(dependsOn.includes(n.dynamodbEndpoint), `${dependsOn}`);
    assert.ok(dependsOn.includes(n.sqsEndpoint), `${dependsOn}`);
  });

  it("retains none of the processor's network on production stages, and nothing retained refers to what is deleted", () => {
    const prod = synth({ stage: 'prod' }).json;
    const p = processorNetworkIds(prod);
    for (const id of Object.values(p)) {
      assert.equal(prod.Resources[id]!.DeletionPolicy, undefined, `${id} goes with the stack (no data; an endpoint bills by the hour)`);
    }
    for (const type of ['AWS::EC2::SecurityGroupIngress', 'AWS::EC2::SecurityGroupEgress']) {
      for (const [id, res] of resourcesOfType(prod, type)) assert.equal(res.DeletionPolicy, undefined, id);
    }
    assert.equal(prod.Resources[ids(prod).rankIndexSecurityGroup]!.DeletionPolicy, 'Retain', "the cache's group stays with the cache");
    // Deleting the stack never deletes what a retained resource still names (a retained cache
    // would keep its subnets from being deleted). The other way round is fine: a deleted endpoint
    // takes its routes out of the retained route tables and its interfaces out of the subnets.
    for (const [id, res] of Object.entries(prod.Resources).filter(([, res]) => res.DeletionPolicy === 'Retain')) {
      for (const target of referencesOf(res.Properties)) {
        assert.equal(prod.Resources[target]?.DeletionPolicy, 'Retain', `retained ${id} refers to ${target}, which is deleted`);
      }
    }
  });
});

describe('quota counter in the table', () => {
  const { json } = synth({ quotaCounter: 'table' });
  const r = ids(json);

  it('leaves the processor outside the VPC, with QUOTA_COUNTER=table and QUOTAS_TABLE, and no RANK_INDEX_URL', () => {
    assert.equal(functionProps(json, 'processor').VpcConfig, undefined);
    const env = functionProps(json, 'processor').Environment.Variables;
    assert.equal(env[ENV.quotaCounter], 'table');
    assert.deepEqual(env[ENV.quotasTable], { Ref: r.quotasTable }, 'a table Ref is its name');
    assert.equal(env[ENV.rankIndexUrl], undefined);
    assert.deepEqual(vpcFunctions(json).map((f) => f.name), ['ranker', 'boards']);
  });

  it('grants the processor UpdateItem and GetItem on the quotas table, and no network interfaces', () => {
    const processor = grants(statementsOfRole(json, roleOf(json, 'processor')));
    assert.deepEqual(
      processor.filter((g) => g.endsWith(` on ${r.quotasTable}`)),
      [`dynamodb:GetItem on ${r.quotasTable}`, `dynamodb:UpdateItem on ${r.quotasTable}`],
    );
    assert.deepEqual(processor.filter((g) => g.startsWith('ec2:')), []);
  });

  it('creates no VPC endpoint, no processor or endpoint security group, and no rule for them', () => {
    assert.deepEqual(resourcesOfType(json, 'AWS::EC2::VPCEndpoint'), []);
    assert.throws(() => processorNetworkIds(json), /expected one AWS::EC2::SecurityGroup named ProcessorSecurityGroup/);
    assert.deepEqual(
      resourcesOfType(json, 'AWS::EC2::SecurityGroup').map(([id]) => id).sort(),
      [r.rankIndexClientSecurityGroup, r.rankIndexSecurityGroup].sort(),
    );
    assert.deepEqual(
      ingressRules(json, r.rankIndexSecurityGroup).map((rule) => ruleString(rule, 'from')),
      [`tcp ${RANK_INDEX_PORT} from sg:${r.rankIndexClientSecurityGroup}`],
    );
    assert.equal(resourcesOfType(json, 'AWS::EC2::SecurityGroupEgress').length, 1, "the clients' rule only");
  });

  it('keeps the same quotas table, and the same rank index network, as the cache counter', () => {
    const cache = synthDefault().json;
    assert.equal(ids(cache).quotasTable, r.quotasTable, 'same logical id');
    assert.deepEqual(cache.Resources[r.quotasTable], json.Resources[r.quotasTable], 'same table: switching counters replaces nothing');
    for (const id of [r.rankIndexVpc, r.rankIndex, r.rankIndexSecurityGroup, r.rankIndexClientSecurityGroup, ...subnetIds(json)]) {
      assert.deepEqual(cache.Resources[id], json.Resources[id], id);
    }
  });
});

describe('VPC functions reach every AWS API they call', () => {
  it('has an endpoint, routes and rules for every call of every function in the VPC, whatever the counter and stage', () => {
    for (const context of [{}, { quotaCounter: 'table' }, { stage: 'prod' }, { stage: 'prod', quotaCounter: 'table' }]) {
      const json = Object.keys(context).length === 0 ? synthDefault().json : synth(context).json;
      assert.deepEqual(vpcCallViolations(json), [], JSON.stringify(context));
    }
  });

  it('sees the calls made from inside: DynamoDB and SQS of the processor, none of the ranker (its stream and failure queue are Lambda\'s) or boards', () => {
    const { json } = synthDefault();
    const r = ids(json);
    const services = Object.fromEntries(vpcFunctions(json).map((fn) => [fn.name, [...new Set(vpcCalls(json, fn).map((c) => c.service))].sort()]));
    assert.deepEqual(services, { processor: ['dynamodb', 'sqs'], ranker: [], boards: [] });
    // Guards the exclusions: the ranker's role does allow the stream reads and the failure queue,
    // and the processor's the consume calls on the submissions queue; Lambda's pollers make them.
    const ranker = grants(statementsOfRole(json, roleOf(json, 'ranker')));
    assert.ok(ranker.includes(`dynamodb:GetRecords on ${r.submissionsTable}.StreamArn`));
    assert.ok(ranker.includes('dynamodb:ListStreams on *'));
    assert.ok(ranker.includes(`sqs:SendMessage on ${r.rankerFailureQueue}`));
    assert.ok(grants(statementsOfRole(json, roleOf(json, 'processor'))).includes(`sqs:ReceiveMessage on ${r.submissionsQueue}`));
  });

  it('fails a call to a service the VPC has no endpoint for (sns:Publish by the processor)', () => {
    const { json } = synthDefault();
    const r = ids(json);
    const violations = vpcCallViolations(withProcessorStatement(json, { Effect: 'Allow', Action: 'sns:Publish', Resource: { Ref: r.rejectionsTopic } }));
    assert.deepEqual(violations, [`processor: sns:Publish on ${r.rejectionsTopic}: no sns endpoint in its VPC`]);
    // Also a call through an endpoint that exists but whose policy leaves it out.
    const outside = vpcCallViolations(withProcessorStatement(json, { Effect: 'Allow', Action: 'dynamodb:Query', Resource: { 'Fn::GetAtt': [r.usersTable, 'Arn'] } }));
    assert.equal(outside.length, 1);
    assert.match(outside[0]!, /^processor: dynamodb:Query on UsersTable.*policy does not allow it$/);
    // And a non-network ec2 call: only Lambda's network interface calls are left out.
    assert.equal(vpcCallViolations(withProcessorStatement(json, { Effect: 'Allow', Action: 'ec2:DescribeInstances', Resource: '*' })).length, 1);
  });

  it('fails when an endpoint is there but out of reach: no egress to it, no ingress from the function, no route', () => {
    const { json } = synthDefault();
    const r = ids(json);
    const n = processorNetworkIds(json);
    // The SQS endpoint's group no longer admits the processor.
    const noIngress = structuredClone(json);
    for (const [id, rule] of resourcesOfType(noIngress, 'AWS::EC2::SecurityGroupIngress')) {
      if (refTarget(rule.Properties.GroupId) === n.sqsEndpointSecurityGroup) delete noIngress.Resources[id];
    }
    assert.deepEqual(vpcCallViolations(noIngress), [
      `processor: sqs:SendMessage on ${r.rejectionsQueue}: ${n.sqsEndpoint}'s groups do not admit ${n.processorSecurityGroup} on 443`,
    ]);
    // The processor's group sends nothing on 443 (neither to everywhere nor to the endpoint).
    const noEgress = structuredClone(json);
    noEgress.Resources[n.processorSecurityGroup]!.Properties.SecurityGroupEgress = [];
    for (const [id, rule] of resourcesOfType(noEgress, 'AWS::EC2::SecurityGroupEgress')) {
      if (refTarget(rule.Properties.GroupId) === n.processorSecurityGroup && rule.Properties.FromPort === 443) delete noEgress.Resources[id];
    }
    const violations = vpcCallViolations(noEgress);
    assert.equal(violations.length, 5, violations.join('\n'));
    assert.ok(violations.filter((v) => v.includes('dynamodb:')).every((v) => v.includes('to a prefix list (or everywhere)')));
    assert.ok(violations.filter((v) => v.includes('sqs:')).every((v) => v.includes(`to ${n.sqsEndpoint}'s groups`)));
    // The gateway endpoint no longer routes from one of the subnets.
    const noRoute = structuredClone(json);
    noRoute.Resources[n.dynamodbEndpoint]!.Properties.RouteTableIds.pop();
    assert.equal(vpcCallViolations(noRoute).length, 4, 'the four DynamoDB calls');
    // No private DNS: the SDK would call the public endpoint, which the subnets cannot reach.
    const noDns = structuredClone(json);
    noDns.Resources[n.sqsEndpoint]!.Properties.PrivateDnsEnabled = false;
    assert.equal(vpcCallViolations(noDns).length, 1);
  });

  it('refuses at synth a call through the VPC to a service without an endpoint there', () => {
    const stack = new Stack(new App(), 'EndpointPolicy');
    const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'Isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] });
    const endpoint = vpc.addGatewayEndpoint('DynamoDb', { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB });
    const endpoints = new Map<string, ec2.VpcEndpoint>([['dynamodb', endpoint]]);
    assert.throws(() => allowThroughEndpoint(endpoints, ['sns:Publish'], ['arn:aws:sns:eu-west-1:1:topic']), /no sns endpoint/);
    assert.throws(() => allowThroughEndpoint(endpoints, ['dynamodb:GetItem', 'sqs:SendMessage'], ['*']), /one service per endpoint statement/);
    allowThroughEndpoint(endpoints, ['dynamodb:GetItem'], ['arn:aws:dynamodb:eu-west-1:1:table/t']);
    const found = Object.values(Template.fromStack(stack).findResources('AWS::EC2::VPCEndpoint')) as any[];
    assert.equal(found.length, 1);
    assert.deepEqual(found[0].Properties.PolicyDocument.Statement, [
      { Action: 'dynamodb:GetItem', Effect: 'Allow', Principal: { AWS: '*' }, Resource: 'arn:aws:dynamodb:eu-west-1:1:table/t' },
    ]);
  });
});
