// The HTTP API in front of ingest.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { functionId, refTarget, resource, resourcesOfType, synth, synthDefault } from './support/synth.ts';

describe('HTTP API', () => {
  it('is an API Gateway v2 HTTP API whose every route goes to ingest (payload 2.0)', () => {
    const { json } = synthDefault();
    const apis = resourcesOfType(json, 'AWS::ApiGatewayV2::Api');
    assert.equal(apis.length, 1);
    assert.equal(apis[0]![1].Properties.ProtocolType, 'HTTP');
    const routes = resourcesOfType(json, 'AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties);
    assert.ok(routes.length > 0);
    const ingest = functionId(json, 'ingest');
    for (const route of routes) {
      const integrationId = /^integrations\/(.+)$/.exec(route.Target['Fn::Join'][1].map((p: unknown) => refTarget(p) ?? p).join(''))?.[1];
      const integration = resource(json, integrationId!).Properties;
      assert.equal(integration.IntegrationType, 'AWS_PROXY');
      assert.equal(integration.PayloadFormatVersion, '2.0');
      assert.equal(refTarget(integration.IntegrationUri), ingest);
    }
    // The ingest router owns routing (404/405 as problem JSON), so the catch-all route is there;
    // with explicit routes instead, each documented path would have to be listed.
    const keys = routes.map((r) => r.RouteKey);
    const documented = ['POST /v1/scores', 'POST /v1/scores/batch', 'GET /v1/submissions/{id}'];
    assert.ok(keys.includes('$default') || documented.every((k) => keys.includes(k)), `route keys: ${keys}`);
  });

  it('lets API Gateway (and only it) invoke ingest', () => {
    const { json } = synthDefault();
    const permissions = resourcesOfType(json, 'AWS::Lambda::Permission').map(([, p]) => p.Properties);
    const forIngest = permissions.filter((p) => refTarget(p.FunctionName) === functionId(json, 'ingest'));
    assert.equal(forIngest.length, 1);
    assert.equal(forIngest[0].Principal, 'apigateway.amazonaws.com');
    assert.equal(forIngest[0].Action, 'lambda:InvokeFunction');
    assert.ok(JSON.stringify(forIngest[0].SourceArn).includes('execute-api'), 'scoped to this API');
    assert.equal(permissions.length, forIngest.length, 'no other function is invocable by a service');
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
