// Queues, dead-letter queues, the SQS event sources and topics (the ranker's stream source: rank-index.test.ts).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type CfnTemplate, functionId, functionProps, ids, refTarget, resource, resourcesOfType, synth, synthDefault } from './support/synth.ts';

const FOURTEEN_DAYS = 14 * 24 * 3600;

function eventSource(json: CfnTemplate, fn: 'processor' | 'notifier') {
  const mappings = resourcesOfType(json, 'AWS::Lambda::EventSourceMapping')
    .map(([, m]) => m.Properties)
    .filter((m) => refTarget(m.FunctionName) === functionId(json, fn));
  assert.equal(mappings.length, 1, `${fn} has one event source`);
  return mappings[0];
}

/** Asserts AWS's rule for a queue feeding `fn`: visibility >= 6 x timeout + batching window. */
function assertVisibilityRule(json: CfnTemplate, queueId: string, fn: 'processor' | 'notifier') {
  const timeout: number = functionProps(json, fn).Timeout;
  const window: number = eventSource(json, fn).MaximumBatchingWindowInSeconds ?? 0;
  const visibility: number = resource(json, queueId).Properties.VisibilityTimeout;
  assert.ok(visibility >= 6 * timeout + window, `${queueId}: visibility ${visibility}s < 6 x ${timeout}s + ${window}s`);
}

describe('queues', () => {
  it('are encrypted, TLS-only, and keep messages 14 days', () => {
    const { json } = synthDefault();
    const queues = resourcesOfType(json, 'AWS::SQS::Queue');
    // Two queues, their two DLQs, and the ranker's failure queue.
    assert.equal(queues.length, 5);
    for (const [id, q] of queues) {
      assert.ok(q.Properties.SqsManagedSseEnabled === true || q.Properties.KmsMasterKeyId !== undefined, `${id} is encrypted`);
      assert.equal(q.Properties.MessageRetentionPeriod, FOURTEEN_DAYS, id);
    }
    const policies = resourcesOfType(json, 'AWS::SQS::QueuePolicy').map(([, p]) => p.Properties);
    for (const [id] of queues) {
      const policy = policies.find((p) => p.Queues.some((q: unknown) => refTarget(q) === id));
      const denyPlainHttp = policy?.PolicyDocument.Statement.find(
        (s: any) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false',
      );
      assert.ok(denyPlainHttp, `${id} refuses requests without TLS`);
    }
  });

  it('redrive to their own dead-letter queue after 5 receives by default', () => {
    const { json } = synthDefault();
    const r = ids(json);
    for (const [queue, dlq] of [
      [r.submissionsQueue, r.submissionsDlq],
      [r.rejectionsQueue, r.rejectionsDlq],
    ] as const) {
      const redrive = resource(json, queue).Properties.RedrivePolicy;
      assert.equal(refTarget(redrive.deadLetterTargetArn), dlq);
      assert.equal(redrive.maxReceiveCount, 5);
      assert.equal(resource(json, dlq).Properties.RedrivePolicy, undefined, 'a DLQ does not redrive further');
    }
  });

  it('take maxReceiveCount from context', () => {
    const { json } = synth({ maxReceiveCount: '9' });
    const r = ids(json);
    for (const queue of [r.submissionsQueue, r.rejectionsQueue]) {
      assert.equal(resource(json, queue).Properties.RedrivePolicy.maxReceiveCount, 9);
    }
    assert.throws(() => synth({ maxReceiveCount: 0 }), /maxReceiveCount/);
  });

  it('have a visibility timeout of at least 6x their consumer timeout plus the batching window', () => {
    const { json } = synthDefault();
    const r = ids(json);
    assertVisibilityRule(json, r.submissionsQueue, 'processor');
    assertVisibilityRule(json, r.rejectionsQueue, 'notifier');
  });

  it('keep the visibility rule when timeouts and windows change by context', () => {
    for (const context of [
      { processorTimeoutSeconds: 120, processorBatchingWindowSeconds: 20, notifierTimeoutSeconds: 90, notifierBatchingWindowSeconds: 5 },
      { processorTimeoutSeconds: 900, processorBatchingWindowSeconds: 300, notifierTimeoutSeconds: 1 },
    ]) {
      const { json } = synth(context);
      const r = ids(json);
      assert.equal(functionProps(json, 'processor').Timeout, context.processorTimeoutSeconds);
      assertVisibilityRule(json, r.submissionsQueue, 'processor');
      assertVisibilityRule(json, r.rejectionsQueue, 'notifier');
    }
  });
});

describe('event sources', () => {
  it('feed the processor from the submissions queue with the context settings', () => {
    const { json } = synth({ processorBatchSize: 64, processorBatchingWindowSeconds: 7, processorMaxConcurrency: 33 });
    const m = eventSource(json, 'processor');
    assert.equal(refTarget(m.EventSourceArn), ids(json).submissionsQueue);
    assert.equal(m.BatchSize, 64);
    assert.equal(m.MaximumBatchingWindowInSeconds, 7);
    assert.deepEqual(m.FunctionResponseTypes, ['ReportBatchItemFailures']);
    assert.deepEqual(m.ScalingConfig, { MaximumConcurrency: 33 });
  });

  it('default the processor to batches of 100 with a window and a concurrency cap', () => {
    const m = eventSource(synthDefault().json, 'processor');
    assert.equal(m.BatchSize, 100);
    assert.ok(m.MaximumBatchingWindowInSeconds >= 1, 'SQS needs a window for batches over 10');
    assert.deepEqual(m.FunctionResponseTypes, ['ReportBatchItemFailures']);
    assert.ok(m.ScalingConfig.MaximumConcurrency >= 2);
  });

  it('feed the notifier from the rejections queue, reporting item failures', () => {
    const { json } = synth({ notifierBatchSize: 30, notifierBatchingWindowSeconds: 3, notifierMaxConcurrency: 4 });
    const m = eventSource(json, 'notifier');
    assert.equal(refTarget(m.EventSourceArn), ids(json).rejectionsQueue);
    assert.equal(m.BatchSize, 30);
    assert.equal(m.MaximumBatchingWindowInSeconds, 3);
    assert.deepEqual(m.FunctionResponseTypes, ['ReportBatchItemFailures']);
    assert.deepEqual(m.ScalingConfig, { MaximumConcurrency: 4 });
  });

  it('refuse batch sizes the processor is not built for, and big batches without a window', () => {
    assert.throws(() => synth({ processorBatchSize: 101 }), /processorBatchSize.*outside 1\.\.100/);
    assert.throws(() => synth({ processorBatchSize: 50, processorBatchingWindowSeconds: 0 }), /processorBatchingWindowSeconds.*at least 1/);
    assert.throws(() => synth({ processorMaxConcurrency: 1 }), /processorMaxConcurrency/);
  });
});

describe('topics', () => {
  it('encrypt the rejections and alarm topics with a rotating customer managed key', () => {
    const { json } = synthDefault();
    const r = ids(json);
    for (const topic of [r.rejectionsTopic, r.alarmTopic]) {
      assert.equal(refTarget(resource(json, topic).Properties.KmsMasterKeyId), r.topicKey, topic);
    }
    assert.equal(resource(json, r.topicKey).Properties.EnableKeyRotation, true);
  });
});
