// Queries over the rank index VPC in a synthesized template: security group rules (inline and
// standalone alike), VPC endpoints, the functions placed in the VPC, and the contract that every
// AWS API such a function calls from inside can be reached from there.

import {
  allows,
  type CfnTemplate,
  FUNCTION_IDS,
  type FunctionName,
  functionProps,
  logicalId,
  refTarget,
  resource,
  resourcesOfType,
  resourceString,
  roleOf,
  statementsOfDocument,
  statementsOfRole,
} from './synth.ts';

/** The logical ids of what quotaCounter=cache adds to the rank index VPC (throws when absent). */
export function processorNetworkIds(t: CfnTemplate) {
  return {
    processorSecurityGroup: logicalId(t, 'AWS::EC2::SecurityGroup', 'ProcessorSecurityGroup'),
    sqsEndpointSecurityGroup: logicalId(t, 'AWS::EC2::SecurityGroup', 'SqsEndpointSecurityGroup'),
    dynamodbEndpoint: logicalId(t, 'AWS::EC2::VPCEndpoint', 'DynamoDbGatewayEndpoint'),
    sqsEndpoint: logicalId(t, 'AWS::EC2::VPCEndpoint', 'SqsInterfaceEndpoint'),
  };
}

// ---------------------------------------------------------------------------------------------
// Security group rules

export interface Rule {
  /** The group the rule belongs to (logical id). */
  readonly group: string;
  readonly protocol: string;
  readonly fromPort?: number;
  readonly toPort?: number;
  /** The other side: a CIDR, `sg:<logical id>` or `pl:<prefix list id>`. */
  readonly peer: string;
}

/** A rule as `tcp 443 to 0.0.0.0/0`, `tcp 6379 from sg:<id>`: easy to compare as sorted lists. */
export function ruleString(rule: Rule, direction: 'to' | 'from'): string {
  const ports = rule.fromPort === rule.toPort ? `${rule.fromPort}` : `${rule.fromPort}-${rule.toPort}`;
  return `${rule.protocol} ${ports} ${direction} ${rule.peer}`;
}

function peerOf(r: any, groupKey: string, prefixListKey: string | undefined): string {
  if (r.CidrIp !== undefined) return r.CidrIp;
  if (r.CidrIpv6 !== undefined) return r.CidrIpv6;
  if (prefixListKey !== undefined && r[prefixListKey] !== undefined) return `pl:${JSON.stringify(r[prefixListKey])}`;
  const group = refTarget(r[groupKey]);
  if (group !== undefined) return `sg:${group}`;
  return JSON.stringify(r);
}

function rulesOf(t: CfnTemplate, groupId: string, direction: 'egress' | 'ingress'): Rule[] {
  const inlineKey = direction === 'egress' ? 'SecurityGroupEgress' : 'SecurityGroupIngress';
  const standaloneType = direction === 'egress' ? 'AWS::EC2::SecurityGroupEgress' : 'AWS::EC2::SecurityGroupIngress';
  const groupKey = direction === 'egress' ? 'DestinationSecurityGroupId' : 'SourceSecurityGroupId';
  const prefixListKey = direction === 'egress' ? 'DestinationPrefixListId' : 'SourcePrefixListId';
  const toRule = (r: any): Rule => ({
    group: groupId,
    protocol: String(r.IpProtocol),
    fromPort: r.FromPort,
    toPort: r.ToPort,
    peer: peerOf(r, groupKey, prefixListKey),
  });
  const inline = ((resource(t, groupId).Properties[inlineKey] ?? []) as any[]).map(toRule);
  const standalone = resourcesOfType(t, standaloneType)
    .map(([, r]) => r.Properties)
    .filter((p) => refTarget(p.GroupId) === groupId)
    .map(toRule);
  return [...inline, ...standalone];
}

/** Every egress rule of a group, inline and standalone, without CDK's "Disallow all traffic" placeholder. */
export function egressRules(t: CfnTemplate, groupId: string): Rule[] {
  return rulesOf(t, groupId, 'egress').filter((r) => !(r.peer === '255.255.255.255/32' && r.protocol === 'icmp'));
}

/** Every ingress rule of a group, inline and standalone. */
export function ingressRules(t: CfnTemplate, groupId: string): Rule[] {
  return rulesOf(t, groupId, 'ingress');
}

/** Whether a rule lets TCP to `port` through. */
export function coversTcpPort(rule: Rule, port: number): boolean {
  if (rule.protocol === '-1') return true;
  return rule.protocol === 'tcp' && (rule.fromPort ?? 0) <= port && port <= (rule.toPort ?? 65535);
}

// ---------------------------------------------------------------------------------------------
// VPC endpoints and the functions in a VPC

export interface Endpoint {
  readonly id: string;
  /** The last part of the service name: `dynamodb` of `com.amazonaws.<region>.dynamodb`. */
  readonly service: string;
  readonly type: 'Gateway' | 'Interface';
  readonly properties: any;
}

/** The last dot-separated part of a VPC endpoint's ServiceName, a string or a Fn::Join ending in a string. */
export function endpointServiceName(serviceName: unknown): string {
  let text: string | undefined;
  if (typeof serviceName === 'string') text = serviceName;
  const join = (serviceName as any)?.['Fn::Join'];
  if (Array.isArray(join) && Array.isArray(join[1])) {
    const last = join[1][join[1].length - 1];
    if (typeof last === 'string') text = last;
  }
  if (text === undefined) throw new Error(`cannot read the service of ${JSON.stringify(serviceName)}`);
  return text.slice(text.lastIndexOf('.') + 1);
}

/** The VPC endpoints of a VPC. */
export function endpointsOf(t: CfnTemplate, vpcId: string): Endpoint[] {
  return resourcesOfType(t, 'AWS::EC2::VPCEndpoint')
    .filter(([, e]) => refTarget(e.Properties.VpcId) === vpcId)
    .map(([id, e]) => ({
      id,
      service: endpointServiceName(e.Properties.ServiceName),
      type: (e.Properties.VpcEndpointType ?? 'Gateway') as 'Gateway' | 'Interface',
      properties: e.Properties,
    }));
}

export interface VpcFunction {
  readonly name: FunctionName;
  readonly vpc: string;
  readonly subnets: string[];
  readonly securityGroups: string[];
}

/** The pipeline functions that run in a VPC, with their subnets and groups. */
export function vpcFunctions(t: CfnTemplate): VpcFunction[] {
  return (Object.keys(FUNCTION_IDS) as FunctionName[]).flatMap((name) => {
    const config = functionProps(t, name).VpcConfig;
    if (config === undefined) return [];
    const subnets: string[] = config.SubnetIds.map((s: unknown) => refTarget(s)!);
    const vpcs = new Set(subnets.map((s) => refTarget(resource(t, s).Properties.VpcId)!));
    if (vpcs.size !== 1) throw new Error(`${name}: subnets in ${vpcs.size} VPCs`);
    return [{ name, vpc: [...vpcs][0]!, subnets, securityGroups: config.SecurityGroupIds.map((g: unknown) => refTarget(g)!) }];
  });
}

/** The route tables associated with `subnets`. */
export function routeTablesOf(t: CfnTemplate, subnets: string[]): string[] {
  return resourcesOfType(t, 'AWS::EC2::SubnetRouteTableAssociation')
    .map(([, a]) => a.Properties)
    .filter((a) => subnets.includes(refTarget(a.SubnetId)!))
    .map((a) => refTarget(a.RouteTableId)!);
}

// ---------------------------------------------------------------------------------------------
// The contract: what a VPC function calls from inside, its VPC lets out

/**
 * What Lambda calls with a VPC function's role for its network interfaces: Lambda's calls, made
 * from outside the VPC.
 */
export const NETWORK_INTERFACE_ACTIONS = [
  'ec2:CreateNetworkInterface',
  'ec2:DeleteNetworkInterface',
  'ec2:DescribeNetworkInterfaces',
  'ec2:AssignPrivateIpAddresses',
  'ec2:UnassignPrivateIpAddresses',
];
/** Services a function reaches through Lambda itself: its log lines (EMF metrics included) and X-Ray segments. */
const THROUGH_LAMBDA = ['logs', 'xray'];
/** IAM service prefixes whose VPC endpoint service has another name. */
const ENDPOINT_SERVICE_OF_PREFIX: Record<string, string> = { cloudwatch: 'monitoring' };

/** A call `fn` may make from inside its VPC: an allowed action on a resource, and its service. */
export interface VpcCall {
  readonly fn: FunctionName;
  readonly action: string;
  readonly resource: string;
  /** The VPC endpoint service the call needs (`dynamodb`, `sqs`, `monitoring` for `cloudwatch:`). */
  readonly service: string;
}

/**
 * The calls a VPC function's role allows that its code makes from inside the VPC: every allowed
 * action but Lambda's network interface calls, logs and X-Ray, and what Lambda's pollers do with
 * the role from outside: on each event source mapping's source (the stream reads, and
 * dynamodb:ListStreams, which takes "*", for a stream; the consume calls for a queue) and its
 * on-failure destination.
 */
export function vpcCalls(t: CfnTemplate, fn: VpcFunction): VpcCall[] {
  const functionLogicalId = logicalId(t, 'AWS::Lambda::Function', FUNCTION_IDS[fn.name]);
  const mappings = resourcesOfType(t, 'AWS::Lambda::EventSourceMapping')
    .map(([, m]) => m.Properties)
    .filter((m) => refTarget(m.FunctionName) === functionLogicalId);
  const polled = new Set<string>();
  let readsStream = false;
  for (const m of mappings) {
    polled.add(resourceString(m.EventSourceArn));
    if (resourceString(m.EventSourceArn).endsWith('.StreamArn')) readsStream = true;
    const onFailure = m.DestinationConfig?.OnFailure?.Destination;
    if (onFailure !== undefined) polled.add(resourceString(onFailure));
  }
  const calls: VpcCall[] = [];
  for (const s of statementsOfRole(t, roleOf(t, fn.name)).filter((s) => s.effect === 'Allow')) {
    for (const action of s.actions) {
      const prefix = action.split(':')[0]!.toLowerCase();
      if (THROUGH_LAMBDA.includes(prefix)) continue;
      if (NETWORK_INTERFACE_ACTIONS.some((a) => a.toLowerCase() === action.toLowerCase())) continue;
      for (const res of s.resources) {
        if (polled.has(res)) continue;
        if (readsStream && action === 'dynamodb:ListStreams' && res === '*') continue;
        calls.push({ fn: fn.name, action, resource: res, service: ENDPOINT_SERVICE_OF_PREFIX[prefix] ?? prefix });
      }
    }
  }
  return calls;
}

/** Whether a rule's peer is every IPv4 address (so it reaches whatever the routes do). */
const isEverywhere = (peer: string) => peer === '0.0.0.0/0';

/**
 * Why `call` cannot leave `fn`'s VPC, or undefined when an endpoint there takes it: an endpoint of
 * its service in the VPC whose policy (if any) allows it, that the function's groups reach on
 * 443. A gateway endpoint is reached through routes in the function's subnets' route tables and
 * an egress rule to its prefix list (or everywhere); an interface endpoint through private DNS,
 * an egress rule to its group (or everywhere) and an ingress rule of its group admitting the
 * function's group (or the VPC's CIDR, or everywhere).
 */
function unreachable(t: CfnTemplate, fn: VpcFunction, call: VpcCall): string | undefined {
  const endpoints = endpointsOf(t, fn.vpc).filter((e) => e.service === call.service);
  const what = `${fn.name}: ${call.action} on ${call.resource}`;
  if (endpoints.length === 0) return `${what}: no ${call.service} endpoint in its VPC`;
  const egress = fn.securityGroups.flatMap((g) => egressRules(t, g)).filter((r) => coversTcpPort(r, 443));
  const vpcCidr = resource(t, fn.vpc).Properties.CidrBlock;
  const reasons: string[] = [];
  for (const e of endpoints) {
    const policy = e.properties.PolicyDocument;
    if (policy !== undefined && !allows(statementsOfDocument(policy), call.action, call.resource)) {
      reasons.push(`${e.id}'s policy does not allow it`);
      continue;
    }
    if (e.type === 'Gateway') {
      const routeTables = (e.properties.RouteTableIds ?? []).map((r: unknown) => refTarget(r));
      const missing = routeTablesOf(t, fn.subnets).filter((r) => !routeTables.includes(r));
      if (missing.length > 0) {
        reasons.push(`${e.id} has no routes in ${missing.join(', ')}`);
        continue;
      }
      if (!egress.some((r) => r.peer.startsWith('pl:') || isEverywhere(r.peer))) {
        reasons.push(`no egress on 443 from ${fn.securityGroups.join(', ')} to a prefix list (or everywhere) for ${e.id}`);
        continue;
      }
      return undefined;
    }
    if (e.properties.PrivateDnsEnabled !== true) {
      reasons.push(`${e.id} has no private DNS: the SDK's default endpoint would not resolve to it`);
      continue;
    }
    const endpointGroups: string[] = (e.properties.SecurityGroupIds ?? []).map((g: unknown) => refTarget(g)!);
    if (!egress.some((r) => isEverywhere(r.peer) || endpointGroups.some((g) => r.peer === `sg:${g}`))) {
      reasons.push(`no egress on 443 from ${fn.securityGroups.join(', ')} to ${e.id}'s groups`);
      continue;
    }
    const admitted = endpointGroups
      .flatMap((g) => ingressRules(t, g))
      .filter((r) => coversTcpPort(r, 443))
      .some((r) => isEverywhere(r.peer) || r.peer === vpcCidr || fn.securityGroups.some((g) => r.peer === `sg:${g}`));
    if (!admitted) {
      reasons.push(`${e.id}'s groups do not admit ${fn.securityGroups.join(', ')} on 443`);
      continue;
    }
    return undefined;
  }
  return `${what}: ${reasons.join('; ')}`;
}

/** Every call of a VPC function that cannot leave its VPC (see `vpcCalls`, `unreachable`); empty when all can. */
export function vpcCallViolations(t: CfnTemplate): string[] {
  return vpcFunctions(t).flatMap((fn) =>
    vpcCalls(t, fn)
      .map((call) => unreachable(t, fn, call))
      .filter((v): v is string => v !== undefined),
  );
}
