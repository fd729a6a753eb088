// Synthesizes the app the way `cdk synth` does (same context from cdk.json, same entry point
// `addScorePipeline`), with dummy zips and a throwaway public key, and offers small queries over
// the resulting template.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { App } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { addScorePipeline, SUBMISSIONS_TABLE_ID, type ScorePipelineStack } from '../../lib/score-pipeline-stack.ts';
import { throwawayPublicKeyPem, writeDummyZips } from './dummy-assets.ts';

export const INFRA_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const REPO_DIR = path.resolve(INFRA_DIR, '..');

const CDK_JSON_CONTEXT: Record<string, unknown> = JSON.parse(fs.readFileSync(path.join(INFRA_DIR, 'cdk.json'), 'utf8')).context;

/** One temp dir per test process, removed when it exits. */
export const TEMP_DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'score-infra-test-'));
process.on('exit', () => fs.rmSync(TEMP_DIR, { recursive: true, force: true }));

export const ARM64_ZIPS = writeDummyZips(path.join(TEMP_DIR, 'zips-arm64'), 'arm64');
export const X86_64_ZIPS = writeDummyZips(path.join(TEMP_DIR, 'zips-x86_64'), 'x86_64');
export const PUBLIC_KEY_FILE = path.join(TEMP_DIR, 'jwt-public.pem');
fs.writeFileSync(PUBLIC_KEY_FILE, throwawayPublicKeyPem());

/** Complete, valid token settings for any stage. */
export const TOKEN_CONTEXT = {
  jwtAlgorithm: 'ES256',
  jwtIssuer: 'https://issuer.example.test/',
  jwtAudience: 'score-api-test',
  jwtPublicKeyFile: PUBLIC_KEY_FILE,
};

export interface Synthesized {
  readonly stack: ScorePipelineStack;
  readonly template: Template;
  readonly json: CfnTemplate;
}

export interface CfnTemplate {
  Resources: Record<string, CfnResource>;
  Outputs?: Record<string, { Value: unknown; Description?: string }>;
}

export interface CfnResource {
  Type: string;
  Properties?: any;
  DeletionPolicy?: string;
  UpdateReplacePolicy?: string;
}

let appCounter = 0;

/** The stack for `context` (on top of cdk.json's context, arm64 dummy zips and TOKEN_CONTEXT). */
export function synth(context: Record<string, unknown> = {}, options: { withTokens?: boolean } = {}): Synthesized {
  const app = new App({
    outdir: path.join(TEMP_DIR, `cdk.out-${appCounter++}`),
    context: {
      ...CDK_JSON_CONTEXT,
      lambdaZipDir: ARM64_ZIPS,
      ...(options.withTokens === false ? {} : TOKEN_CONTEXT),
      ...context,
    },
  });
  const stack = addScorePipeline(app);
  const template = Template.fromStack(stack);
  return { stack, template, json: template.toJSON() as CfnTemplate };
}

/** Memoized synth of the default dev stage, shared by tests that only read it. */
let defaultSynth: Synthesized | undefined;
export function synthDefault(): Synthesized {
  defaultSynth ??= synth();
  return defaultSynth;
}

export function warningsOf(s: Synthesized): string[] {
  return Annotations.fromStack(s.stack)
    .findWarning('*', Match.anyValue())
    .map((w) => String(w.entry.data));
}

// ---------------------------------------------------------------------------------------------
// Template queries

export function resourcesOfType(t: CfnTemplate, type: string): [string, CfnResource][] {
  return Object.entries(t.Resources).filter(([, r]) => r.Type === type);
}

/** The one resource of `type` whose logical id starts with `prefix` (the construct id). */
export function logicalId(t: CfnTemplate, type: string, prefix: string): string {
  const ids = resourcesOfType(t, type)
    .map(([id]) => id)
    .filter((id) => id.startsWith(prefix) && /^[0-9A-F]{8}$/.test(id.slice(prefix.length)));
  if (ids.length !== 1) throw new Error(`expected one ${type} named ${prefix}, found ${JSON.stringify(ids)}`);
  return ids[0]!;
}

export function resource(t: CfnTemplate, id: string): CfnResource {
  const r = t.Resources[id];
  if (r === undefined) throw new Error(`no resource ${id}`);
  return r;
}

/** The logical id a `{Ref}` or `{Fn::GetAtt}` points at, or undefined for anything else. */
export function refTarget(value: unknown): string | undefined {
  if (value !== null && typeof value === 'object') {
    const v = value as Record<string, unknown>;
    if (typeof v.Ref === 'string') return v.Ref;
    const getAtt = v['Fn::GetAtt'];
    if (Array.isArray(getAtt) && typeof getAtt[0] === 'string') return getAtt[0];
  }
  return undefined;
}

export const FUNCTION_IDS = { ingest: 'Ingest', processor: 'Processor', notifier: 'Notifier', ranker: 'Ranker', boards: 'Boards' } as const;
export type FunctionName = keyof typeof FUNCTION_IDS;

export function functionId(t: CfnTemplate, name: FunctionName): string {
  return logicalId(t, 'AWS::Lambda::Function', FUNCTION_IDS[name]);
}

export function functionProps(t: CfnTemplate, name: FunctionName): any {
  return resource(t, functionId(t, name)).Properties;
}

/** The logical id of the one resource of `type` (for a top-level L1 resource, whose id has no hash). */
export function onlyOfType(t: CfnTemplate, type: string): string {
  const found = resourcesOfType(t, type);
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${JSON.stringify(found.map(([id]) => id))}`);
  return found[0]![0];
}

/** The logical ids of the stack's queues, tables, topics and rank index, found by construct id. */
export function ids(t: CfnTemplate) {
  return {
    rankerFailureQueue: logicalId(t, 'AWS::SQS::Queue', 'RankerFailureQueue'),
    rankIndex: onlyOfType(t, 'AWS::ElastiCache::ServerlessCache'),
    rankIndexVpc: logicalId(t, 'AWS::EC2::VPC', 'RankIndexVpc'),
    rankIndexSecurityGroup: logicalId(t, 'AWS::EC2::SecurityGroup', 'RankIndexSecurityGroup'),
    rankIndexClientSecurityGroup: logicalId(t, 'AWS::EC2::SecurityGroup', 'RankIndexClientSecurityGroup'),
    submissionsQueue: logicalId(t, 'AWS::SQS::Queue', 'SubmissionsQueue'),
    submissionsDlq: logicalId(t, 'AWS::SQS::Queue', 'SubmissionsDeadLetterQueue'),
    rejectionsQueue: logicalId(t, 'AWS::SQS::Queue', 'RejectionsQueue'),
    rejectionsDlq: logicalId(t, 'AWS::SQS::Queue', 'RejectionsDeadLetterQueue'),
    submissionsTable: logicalId(t, 'AWS::DynamoDB::Table', SUBMISSIONS_TABLE_ID),
    usersTable: logicalId(t, 'AWS::DynamoDB::Table', 'UsersTable'),
    quotasTable: logicalId(t, 'AWS::DynamoDB::Table', 'QuotasTable'),
    rejectionsTopic: logicalId(t, 'AWS::SNS::Topic', 'RejectionsTopic'),
    alarmTopic: logicalId(t, 'AWS::SNS::Topic', 'AlarmTopic'),
    api: logicalId(t, 'AWS::ApiGatewayV2::Api', 'Api'),
    topicKey: logicalId(t, 'AWS::KMS::Key', 'TopicKey'),
  };
}

// ---------------------------------------------------------------------------------------------
// IAM

export interface Statement {
  readonly effect: string;
  readonly actions: string[];
  /**
   * Logical ids for references (`<id>.<attribute>` for an attribute other than Arn, e.g. a table's
   * StreamArn), `<table id>/index/<name>` for a table's index ARN, the literal string (e.g. "*"),
   * an ARN joined from pieces written out (`arn:${AWS::Partition}:ec2:...:subnet/${<subnet id>}`),
   * or else the JSON of the value.
   */
  readonly resources: string[];
}

/** The role a function runs as. */
export function roleOf(t: CfnTemplate, name: FunctionName): string {
  const role = refTarget(functionProps(t, name).Role);
  if (role === undefined) throw new Error(`${name} has no role reference`);
  return role;
}

/** Every identity-policy statement that applies to the role (inline policies and AWS::IAM::Policy). */
export function statementsOfRole(t: CfnTemplate, roleId: string): Statement[] {
  const role = resource(t, roleId);
  const documents: any[] = (role.Properties.Policies ?? []).map((p: any) => p.PolicyDocument);
  for (const [, policy] of resourcesOfType(t, 'AWS::IAM::Policy')) {
    if ((policy.Properties.Roles ?? []).some((r: unknown) => refTarget(r) === roleId)) {
      documents.push(policy.Properties.PolicyDocument);
    }
  }
  return documents.flatMap(statementsOfDocument);
}

/** The statements of the one AWS::IAM::ManagedPolicy whose logical id starts with `prefix`. */
export function statementsOfManagedPolicy(t: CfnTemplate, prefix: string): Statement[] {
  return statementsOfDocument(resource(t, logicalId(t, 'AWS::IAM::ManagedPolicy', prefix)).Properties.PolicyDocument);
}

/** The statements of a policy document as it stands in the template (a VPC endpoint's PolicyDocument, say). */
export function statementsOfDocument(doc: any): Statement[] {
  return (doc.Statement as any[]).map((s) => ({
    effect: s.Effect,
    actions: ([] as string[]).concat(s.Action),
    resources: ([] as unknown[]).concat(s.Resource).map(resourceString),
  }));
}

/** A resource as a string: see `Statement.resources`. */
export function resourceString(r: unknown): string {
  if (typeof r === 'string') return r;
  return referenceString(r) ?? indexArnString(r) ?? joinString(r) ?? JSON.stringify(r);
}

/** `<id>` for a Ref or an Arn attribute, `<id>.<attribute>` for another attribute; undefined for anything else. */
function referenceString(r: unknown): string | undefined {
  if (r === null || typeof r !== 'object' || Object.keys(r).length !== 1) return undefined;
  const v = r as Record<string, unknown>;
  if (typeof v.Ref === 'string') return v.Ref;
  const getAtt = v['Fn::GetAtt'];
  if (Array.isArray(getAtt) && getAtt.length === 2 && typeof getAtt[0] === 'string' && typeof getAtt[1] === 'string') {
    return getAtt[1] === 'Arn' ? getAtt[0] : `${getAtt[0]}.${getAtt[1]}`;
  }
  return undefined;
}

/** A `Fn::Join` with no separator written out, each reference as `${<referenceString>}`; undefined for anything else. */
function joinString(r: unknown): string | undefined {
  if (r === null || typeof r !== 'object' || Object.keys(r).length !== 1) return undefined;
  const join = (r as Record<string, unknown>)['Fn::Join'];
  if (!Array.isArray(join) || join.length !== 2 || join[0] !== '' || !Array.isArray(join[1])) return undefined;
  const parts = (join[1] as unknown[]).map((part) => (typeof part === 'string' ? part : referenceString(part)));
  if (parts.some((part) => part === undefined)) return undefined;
  return (join[1] as unknown[]).map((part, i) => (typeof part === 'string' ? part : `\${${parts[i]}}`)).join('');
}

/**
 * `<table id>/index/<name>` for a table's index ARN as CDK renders `${table.tableArn}/index/<name>`:
 * `{"Fn::Join": ["", [{"Fn::GetAtt": [<table id>, "Arn"]}, "/index/<name>"]]}`; undefined for
 * anything else.
 */
function indexArnString(r: unknown): string | undefined {
  if (r === null || typeof r !== 'object' || Object.keys(r).length !== 1) return undefined;
  const join = (r as Record<string, unknown>)['Fn::Join'];
  if (!Array.isArray(join) || join.length !== 2 || join[0] !== '') return undefined;
  const parts = join[1];
  if (!Array.isArray(parts) || parts.length !== 2) return undefined;
  const [arn, suffix] = parts as unknown[];
  if (arn === null || typeof arn !== 'object' || Object.keys(arn).length !== 1) return undefined;
  const getAtt = (arn as Record<string, unknown>)['Fn::GetAtt'];
  if (!Array.isArray(getAtt) || getAtt.length !== 2 || typeof getAtt[0] !== 'string' || getAtt[1] !== 'Arn') return undefined;
  if (typeof suffix !== 'string' || !/^\/index\/[^/]+$/.test(suffix)) return undefined;
  return `${getAtt[0]}${suffix}`;
}

/** IAM action matching: `pattern` may use * and ? wildcards, case-insensitively. */
export function actionMatches(pattern: string, action: string): boolean {
  const regex = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return regex.test(action);
}

/** Whether any Allow statement grants `action` on `resourceId` (or on every resource). */
export function allows(statements: Statement[], action: string, resourceId: string): boolean {
  return statements.some(
    (s) => s.effect === 'Allow' && s.actions.some((a) => actionMatches(a, action)) && s.resources.some((r) => r === resourceId || r === '*'),
  );
}

/** Every (action, resource) pair the statements allow, as "action on resource" strings, sorted. */
export function grants(statements: Statement[]): string[] {
  return statements
    .filter((s) => s.effect === 'Allow')
    .flatMap((s) => s.actions.flatMap((a) => s.resources.map((r) => `${a} on ${r}`)))
    .sort();
}
