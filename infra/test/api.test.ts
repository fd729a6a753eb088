// The HTTP API in front of ingest and the boards function.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BOARDS_ROUTES } from '../lib/score-pipeline-stack.ts';
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

/** Each route's key and the function its integration invokes (AWS_PROXY, payload 2.0). */
function routeTargets(json: CfnTemplate): Record<string, string> {
  const targets: Record<string, string> = {};
  for (const [, route] of resourcesOfType(json, 'AWS::ApiGatewayV2::Route')) {
    const target = route.Properties.Target['Fn::Join'][1].map((p: unknown) => refTarget(p) ?? p).join('');
    const integrationId = /^integrations\/(.+)$/.exec(target)?.[1];
    const integration = resource(json, integrationId!).Properties;
    assert.equal(integration.IntegrationType, 'AWS_PROXY', route.Properties.RouteKey);
    assert.equal(integration.PayloadFormatVersion, '2.0', route.Properties.RouteKey);
    assert.equal(route.Properties.AuthorizationType, 'NONE', 'the functions check tokens themselves');
    targets[route.Properties.RouteKey] = refTarget(integration.IntegrationUri)!;
  }
  return targets;
}

describe('HTTP API', () => {
  it('is an API Gateway v2 HTTP API: the leaderboard routes go to boards, every other request to ingest (payload 2.0)', () => {
    const { json } = synthDefault();
    const apis = resourcesOfType(json, 'AWS::ApiGatewayV2::Api');
    assert.equal(apis.length, 1);
    assert.equal(apis[0]![1].Properties.ProtocolType, 'HTTP');
    for (const [, route] of resourcesOfType(json, 'AWS::ApiGatewayV2::Route')) {
      assert.equal(refTarget(route.Properties.ApiId), ids(json).api);
    }
    // The ingest router owns the other routes (404/405 as problem JSON), so the catch-all route
    // is its; the boards function, the only one in the rank index's network, gets its two routes.
    const ingest = functionId(json, 'ingest');
    const boards = functionId(json, 'boards');
    assert.deepEqual(routeTargets(json), {
      $default: ingest,
      'GET /v1/leaderboards/{heroId}': boards,
      'GET /v1/leaderboards/{heroId}/players/{userId}': boards,
    });
    assert.deepEqual(BOARDS_ROUTES, ['/v1/leaderboards/{heroId}', '/v1/leaderboards/{heroId}/players/{userId}']);
    // The old single-board route is gone; the integrations are one per function.
    assert.equal(Object.keys(routeTargets(json)).some((k) => k.includes('/v1/leaderboard/')), false);
    assert.equal(resourcesOfType(json, 'AWS::ApiGatewayV2::Integration').length, 2);
  });

  it('lets API Gateway (and only it) invoke ingest, and boards on its routes only', () => {
    const { json } = synthDefault();
    const permissions = resourcesOfType(json, 'AWS::Lambda::Permission').map(([, p]) => p.Properties);
    for (const p of permissions) {
      assert.equal(p.Principal, 'apigateway.amazonaws.com');
      assert.equal(p.Action, 'lambda:InvokeFunction');
      const parts: unknown[] = p.SourceArn['Fn::Join'][1];
      assert.ok(parts.includes(':execute-api:'), 'an execute-api ARN');
      assert.ok(parts.some((part) => refTarget(part) === ids(json).api), 'scoped to this API');
    }
    const forIngest = permissions.filter((p) => refTarget(p.FunctionName) === functionId(json, 'ingest'));
    assert.equal(forIngest.length, 1);
    assert.equal(forIngest[0].SourceArn['Fn::Join'][1].at(-1), '/*/*', 'every route ($default)');
    const forBoards = permissions.filter((p) => refTarget(p.FunctionName) === functionId(json, 'boards'));
    assert.deepEqual(
      forBoards.map((p) => p.SourceArn['Fn::Join'][1].at(-1)).sort(),
      BOARDS_ROUTES.map((route) => `/*/*${route}`).sort(),
      'each boards route only',
    );
    assert.equal(permissions.length, forIngest.length + forBoards.length, 'no other function is invocable by a service');
  });

  it('throttles the default stage with the rate and burst from context', () => {
    const { json } = synth({ apiRateLimit: 123, apiBurstLimit: 456 });
    const stages = resourcesOfType(json, 'AWS::ApiGatewayV2::Stage').map(([, s]) => s.Properties);
    assert.equal(stages.length, 1);
    assert.equal(stages[0].StageName, '$default');
    assert.equal(stages[0].AutoDeploy, true);
    assert.deepEqual(stages[0].DefaultRouteSettings, { ThrottlingRateLimit: 123, ThrottlingBurstLimit: 456 });
  });

  it('writes no access logs by default: no AccessLogSettings, no log group but the functions\'', () => {
    const { json } = synthDefault();
    const stage = onlyStage(json);
    assert.equal(stage.AccessLogSettings, undefined);
    assert.deepEqual(Object.keys(stage).filter((key) => /log/i.test(key)), [], 'no logging property on the stage');
    // Every log group is a function's own (its LoggingConfig names it): none is left for the API.
    const functionGroups = (Object.keys(FUNCTION_IDS) as FunctionName[]).map((name) => refTarget(functionProps(json, name).LoggingConfig.LogGroup)!);
    assert.deepEqual(logGroupIds(json), functionGroups.sort());
    assert.equal(logGroupIds(json).length, 5);
  });

  it('with apiAccessLogs=true writes compact JSON access logs to a log group of its own, with the configured retention', () => {
    for (const context of [{ apiAccessLogs: 'true' }, { apiAccessLogs: true }, { stages: { dev: { apiAccessLogs: true } } }]) {
      const { json } = synth({ ...context, logRetentionDays: 60 });
      const stage = onlyStage(json);
      const groupId = refTarget(stage.AccessLogSettings.DestinationArn)!;
      const group = resource(json, groupId);
      assert.equal(group.Type, 'AWS::Logs::LogGroup', JSON.stringify(context));
      assert.equal(group.Properties.RetentionInDays, 60);
      assert.equal(group.DeletionPolicy, 'Delete', 'a dev stage deletes it with the stack');
      assert.match(groupId, /^ApiAccessLogs[0-9A-F]{8}$/);
      // The functions' five groups and this one.
      assert.equal(logGroupIds(json).length, 6);
      assert.deepEqual(JSON.parse(stage.AccessLogSettings.Format), {
        requestId: '$context.requestId',
        ip: '$context.identity.sourceIp',
        request: '$context.httpMethod $context.path',
        status: '$context.status',
        latency: '$context.responseLatency',
        error: '$context.integrationErrorMessage',
      });
    }
  });

  it('keeps the access log group like the other logs on a production stage, and writes none when told so', () => {
    const prod = synth({ stage: 'prod', apiAccessLogs: 'true' }).json;
    const group = resource(prod, refTarget(onlyStage(prod).AccessLogSettings.DestinationArn)!);
    assert.equal(group.Properties.RetentionInDays, 90);
    assert.equal(group.DeletionPolicy, 'Retain');
    assert.equal(group.UpdateReplacePolicy, 'Retain');
    const off = synth({ stages: { dev: { apiAccessLogs: true } }, apiAccessLogs: 'false' }).json;
    assert.equal(onlyStage(off).AccessLogSettings, undefined, '-c apiAccessLogs=false wins over the stage block');
    assert.equal(logGroupIds(off).length, 5);
  });

  it('renders an access log line of realistic values in under 140 bytes (about $0.06 per million requests)', () => {
    const format: string = onlyStage(synth({ apiAccessLogs: 'true' }).json).AccessLogSettings.Format;
    const realistic = {
      '$context.requestId': 'JxP6vj3XoAMEb_w=',
      '$context.identity.sourceIp': '203.0.113.45',
      '$context.httpMethod': 'POST',
      '$context.path': '/v1/scores',
      '$context.status': '202',
      '$context.responseLatency': '12',
      '$context.integrationErrorMessage': '-',
    };
    const line = renderAccessLog(format, realistic);
    assert.deepEqual(JSON.parse(line), {
      requestId: 'JxP6vj3XoAMEb_w=',
      ip: '203.0.113.45',
      request: 'POST /v1/scores',
      status: '202',
      latency: '12',
      error: '-',
    });
    const bytes = Buffer.byteLength(line, 'utf8');
    assert.ok(bytes < ACCESS_LOG_LINE_BOUND, `${bytes} bytes (documented: 122): ${line}`);
    // The longest IPv4 address (the API's endpoint is IPv4 only) and a latency near the 30 s
    // integration limit stay under the bound too.
    const longest = renderAccessLog(format, { ...realistic, '$context.identity.sourceIp': '255.255.255.255', '$context.responseLatency': '29999' });
    assert.ok(Buffer.byteLength(longest, 'utf8') < ACCESS_LOG_LINE_BOUND, longest);
    // The renderer refuses a variable it has no value for, so a new field cannot go unmeasured.
    assert.throws(() => renderAccessLog('{"x":"$context.requestTime"}', realistic), /\$context\.requestTime/);
  });

  it('refuses an apiAccessLogs value other than true or false, naming the setting', () => {
    for (const value of ['on', 'yes', 'TRUE', 1]) {
      assert.throws(() => synth({ apiAccessLogs: value }), /context "apiAccessLogs": expected true or false/, String(value));
    }
  });
});

/** The bound on a rendered access log line (bytes): 140 bytes at $0.50 per GB is $0.07 per million requests. */
const ACCESS_LOG_LINE_BOUND = 140;

function onlyStage(json: CfnTemplate): any {
  const stages = resourcesOfType(json, 'AWS::ApiGatewayV2::Stage');
  assert.equal(stages.length, 1);
  return stages[0]![1].Properties;
}

function logGroupIds(json: CfnTemplate): string[] {
  return resourcesOfType(json, 'AWS::Logs::LogGroup')
    .map(([id]) => id)
    .sort();
}

/**
 * An access log line as API Gateway writes it: each `$context` variable replaced by its value
 * (as is, no JSON escaping). Throws on a variable without a value.
 */
function renderAccessLog(format: string, values: Record<string, string>): string {
  return format.replace(/\$context(?:\.[A-Za-z]+)+/g, (variable) => {
    const value = values[variable];
    if (value === undefined) throw new Error(`no value for ${variable}`);
    return value;
  });
}
