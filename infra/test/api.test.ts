// The HTTP API in front of ingest and the boards function.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BOARDS_ROUTES } from '../lib/score-pipeline-stack.ts';
import { type CfnTemplate, functionId, ids, refTarget, resource, resourcesOfType, synth, synthDefault } from './support/synth.ts';

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

  it('writes JSON access logs with the request id to a log group with retention', () => {
    const { json } = synth({ logRetentionDays: 60 });
    const stage = resourcesOfType(json, 'AWS::ApiGatewayV2::Stage')[0]![1].Properties;
    const group = resource(json, refTarget(stage.AccessLogSettings.DestinationArn)!);
    assert.equal(group.Type, 'AWS::Logs::LogGroup');
    assert.equal(group.Properties.RetentionInDays, 60);
    const format = JSON.parse(stage.AccessLogSettings.Format);
    assert.equal(format.requestId, '$context.requestId');
    assert.equal(format.status, '$context.status');
  });
});
