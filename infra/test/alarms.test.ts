// Alarms, the alarm topic and its optional email subscription, and the stack outputs.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { METRICS_NAMESPACE } from '../lib/score-pipeline-stack.ts';
import { DEFAULTS } from '../lib/settings.ts';
import {
  type CfnTemplate,
  FUNCTION_IDS,
  type FunctionName,
  functionId,
  ids,
  logicalId,
  refTarget,
  resource,
  resourcesOfType,
  synth,
  synthDefault,
} from './support/synth.ts';

interface AlarmProps {
  Namespace: string;
  MetricName: string;
  Dimensions: { Name: string; Value: unknown }[];
  Threshold: number;
  Statistic?: string;
  Period?: number;
  ComparisonOperator: string;
  EvaluationPeriods: number;
  DatapointsToAlarm?: number;
  AlarmDescription: string;
  AlarmActions: unknown[];
  OKActions?: unknown[];
  TreatMissingData?: string;
}

function alarms(json: CfnTemplate): AlarmProps[] {
  return resourcesOfType(json, 'AWS::CloudWatch::Alarm').map(([, a]) => a.Properties);
}

/** The alarms on `namespace`/`metric` whose dimension `dimension` refers to `target`. */
function alarmsOn(json: CfnTemplate, namespace: string, metric: string, dimension: string, target: string): AlarmProps[] {
  return alarms(json).filter(
    (a) => a.Namespace === namespace && a.MetricName === metric && a.Dimensions.some((d) => d.Name === dimension && refTarget(d.Value) === target),
  );
}

/** The value that crosses the alarm, whatever the comparison. */
function firesAt(a: AlarmProps): number {
  switch (a.ComparisonOperator) {
    case 'GreaterThanThreshold':
      return a.Threshold + 1;
    case 'GreaterThanOrEqualToThreshold':
      return a.Threshold;
    default:
      throw new Error(`unexpected comparison ${a.ComparisonOperator}`);
  }
}

describe('alarms', () => {
  const { json } = synthDefault();
  const r = ids(json);

  it('fire as soon as one message lands in either dead-letter queue', () => {
    for (const dlq of [r.submissionsDlq, r.rejectionsDlq]) {
      const found = alarmsOn(json, 'AWS/SQS', 'ApproximateNumberOfMessagesVisible', 'QueueName', dlq);
      assert.equal(found.length, 1, dlq);
      assert.equal(firesAt(found[0]!), 1, `${dlq}: depth > 0`);
    }
  });

  it('watch the age of the oldest message of both queues, at the threshold from context', () => {
    const { json } = synth({ queueAgeAlarmSeconds: 420 });
    const r = ids(json);
    for (const queue of [r.submissionsQueue, r.rejectionsQueue]) {
      const found = alarmsOn(json, 'AWS/SQS', 'ApproximateAgeOfOldestMessage', 'QueueName', queue);
      assert.equal(found.length, 1, queue);
      assert.equal(found[0]!.Threshold, 420);
    }
  });

  it('fire on any error or throttle of each function', () => {
    for (const fn of Object.keys(FUNCTION_IDS) as FunctionName[]) {
      for (const metric of ['Errors', 'Throttles']) {
        const found = alarmsOn(json, 'AWS/Lambda', metric, 'FunctionName', functionId(json, fn));
        assert.equal(found.length, 1, `${fn} ${metric}`);
        assert.equal(firesAt(found[0]!), 1, `${fn} ${metric}`);
      }
    }
  });

  it('watch API 5xx answers, at the threshold from context', () => {
    const found = alarmsOn(json, 'AWS/ApiGateway', '5xx', 'ApiId', r.api);
    assert.equal(found.length, 1);
    assert.equal(firesAt(found[0]!), 1);
    const custom = synth({ api5xxAlarmThreshold: 25 }).json;
    assert.equal(firesAt(alarmsOn(custom, 'AWS/ApiGateway', '5xx', 'ApiId', ids(custom).api)[0]!), 25);
  });

  it('watch the processor records that failed (its EMF metric), at the threshold from context', () => {
    /** The alarm on this stage's processor FailedRecords: literal dimensions, as the processor writes them. */
    const failedRecords = (t: CfnTemplate, stage: string) =>
      alarms(t).filter(
        (a) =>
          a.Namespace === METRICS_NAMESPACE &&
          a.MetricName === 'FailedRecords' &&
          JSON.stringify([...a.Dimensions].sort((x, y) => x.Name.localeCompare(y.Name))) ===
            JSON.stringify([
              { Name: 'Function', Value: 'processor' },
              { Name: 'Stage', Value: stage },
            ]),
      );
    const found = failedRecords(json, 'dev');
    assert.equal(found.length, 1);
    assert.equal(found[0]!.Statistic, 'Sum');
    assert.equal(found[0]!.Period, 300);
    assert.equal(firesAt(found[0]!), DEFAULTS.processorFailedRecordsAlarmThreshold);
    const custom = synth({ stage: 'staging', processorFailedRecordsAlarmThreshold: '7' }).json;
    assert.equal(firesAt(failedRecords(custom, 'staging')[0]!), 7);
    assert.throws(() => synth({ processorFailedRecordsAlarmThreshold: 0 }), /processorFailedRecordsAlarmThreshold.*outside 1\.\.1000000/);
  });

  it('fire when the ranker skips a change it cannot read (its EMF metric)', () => {
    const found = alarms(json).filter(
      (a) =>
        a.Namespace === METRICS_NAMESPACE &&
        a.MetricName === 'UnreadableChanges' &&
        JSON.stringify([...a.Dimensions].sort((x, y) => x.Name.localeCompare(y.Name))) ===
          JSON.stringify([
            { Name: 'Function', Value: 'ranker' },
            { Name: 'Stage', Value: 'dev' },
          ]),
    );
    assert.equal(found.length, 1);
    assert.equal(found[0]!.Statistic, 'Sum');
    assert.equal(firesAt(found[0]!), 1, 'any unreadable change');
  });

  it("watch the ranker's stream lag (IteratorAge maximum, ms), at the threshold from context", () => {
    const iteratorAge = (t: CfnTemplate) => alarmsOn(t, 'AWS/Lambda', 'IteratorAge', 'FunctionName', functionId(t, 'ranker'));
    const found = iteratorAge(json);
    assert.equal(found.length, 1);
    assert.equal(found[0]!.Statistic, 'Maximum');
    assert.equal(found[0]!.Threshold, DEFAULTS.rankerIteratorAgeAlarmSeconds * 1000);
    assert.equal(DEFAULTS.rankerIteratorAgeAlarmSeconds, 300);
    assert.equal(iteratorAge(synth({ rankerIteratorAgeAlarmSeconds: 900 }).json)[0]!.Threshold, 900_000);
    // It must fire before the ranker gives records up.
    assert.throws(
      () => synth({ rankerIteratorAgeAlarmSeconds: 3600, rankerMaxRecordAgeSeconds: 3600 }),
      /rankerIteratorAgeAlarmSeconds.*below rankerMaxRecordAgeSeconds/,
    );
    assert.throws(() => synth({ rankerIteratorAgeAlarmSeconds: 59 }), /rankerIteratorAgeAlarmSeconds.*outside 60\.\.86400/);
  });

  it('fire as soon as the ranker reports a batch it gave up on', () => {
    const found = alarmsOn(json, 'AWS/SQS', 'ApproximateNumberOfMessagesVisible', 'QueueName', r.rankerFailureQueue);
    assert.equal(found.length, 1);
    assert.equal(firesAt(found[0]!), 1, 'depth > 0');
  });

  /** The one alarm whose construct id is `id`, checked to watch the rank index by its clusterId. */
  const rankIndexAlarm = (t: CfnTemplate, id: string, metric: string): AlarmProps => {
    const props = resource(t, logicalId(t, 'AWS::CloudWatch::Alarm', id)).Properties as AlarmProps;
    assert.equal(props.Namespace, 'AWS/ElastiCache', id);
    assert.equal(props.MetricName, metric, id);
    // The only dimension serverless caches publish under, valued by Ref of the cache: its name.
    assert.deepEqual(props.Dimensions, [{ Name: 'clusterId', Value: { Ref: ids(t).rankIndex } }], id);
    assert.deepEqual(alarmsOn(t, 'AWS/ElastiCache', metric, 'clusterId', ids(t).rankIndex), [props], `${id}: the only alarm on ${metric}`);
    return props;
  };

  it('fire when the rank index throttles commands in 2 of 3 minutes', () => {
    const a = rankIndexAlarm(json, 'RankIndexThrottled', 'ThrottledCmds');
    assert.equal(a.Statistic, 'Sum');
    assert.equal(a.Period, 60);
    assert.equal(firesAt(a), 1, 'any throttled command');
    assert.equal(a.EvaluationPeriods, 3);
    assert.equal(a.DatapointsToAlarm, 2);
    assert.equal(a.TreatMissingData, 'notBreaching');
    assert.match(a.AlarmDescription, /raise rankIndexMaxEcpuPerSecond \(now 600000\) or look for a runaway caller/);
    // The other alarms keep one period of one.
    for (const other of alarms(json).filter((x) => x.MetricName !== 'ThrottledCmds')) {
      assert.equal(other.EvaluationPeriods, 1, other.MetricName);
      assert.equal(other.DatapointsToAlarm, undefined, other.MetricName);
    }
  });

  it('fire when the rank index stores 80 % of rankIndexMaxDataStorageGb (GB = 10^9 bytes)', () => {
    const a = rankIndexAlarm(json, 'RankIndexStorageNearCap', 'BytesUsedForCache');
    assert.equal(a.Statistic, 'Maximum');
    assert.equal(a.Period, 300);
    assert.equal(DEFAULTS.rankIndexMaxDataStorageGb, 5);
    assert.equal(firesAt(a), 4_000_000_000);
    assert.equal(a.ComparisonOperator, 'GreaterThanOrEqualToThreshold');
    assert.equal(a.TreatMissingData, 'notBreaching');
    assert.match(a.AlarmDescription, /80 % of its 5 GB storage cap.*refuses writes.*raise rankIndexMaxDataStorageGb or shorten/);
    const custom = synth({ rankIndexMaxDataStorageGb: 10 }).json;
    assert.equal(firesAt(rankIndexAlarm(custom, 'RankIndexStorageNearCap', 'BytesUsedForCache')), 8_000_000_000);
    assert.equal(firesAt(rankIndexAlarm(synth({ rankIndexMaxDataStorageGb: 1 }).json, 'RankIndexStorageNearCap', 'BytesUsedForCache')), 800_000_000);
  });

  it('watch the rank index whichever quota counter (it holds the boards either way)', () => {
    const table = synth({ quotaCounter: 'table' }).json;
    rankIndexAlarm(table, 'RankIndexThrottled', 'ThrottledCmds');
    rankIndexAlarm(table, 'RankIndexStorageNearCap', 'BytesUsedForCache');
  });

  it('leave cold starts to the dashboard: no alarm on ColdStart', () => {
    assert.deepEqual(alarms(json).filter((a) => a.MetricName === 'ColdStart'), []);
  });

  it('all notify the alarm topic on alarm and on recovery, and treat no data as fine', () => {
    const all = alarms(json);
    // DLQs, queue ages, Errors and Throttles of each function, API 5xx, processor FailedRecords,
    // ranker UnreadableChanges, IteratorAge and failure queue, rank index throttling and storage.
    assert.equal(all.length, 2 + 2 + 5 * 2 + 1 + 1 + 3 + 2);
    for (const a of all) {
      assert.deepEqual(a.AlarmActions.map(refTarget), [r.alarmTopic], a.MetricName);
      assert.deepEqual(a.OKActions?.map(refTarget), [r.alarmTopic], a.MetricName);
      assert.equal(a.TreatMissingData, 'notBreaching', a.MetricName);
    }
  });

  it('email the alarm topic only when an address is given', () => {
    assert.equal(resourcesOfType(json, 'AWS::SNS::Subscription').length, 0);
    const withEmail = synth({ alarmEmail: 'oncall@example.test' }).json;
    const subscriptions = resourcesOfType(withEmail, 'AWS::SNS::Subscription').map(([, s]) => s.Properties);
    assert.equal(subscriptions.length, 1);
    assert.equal(subscriptions[0].Protocol, 'email');
    assert.equal(subscriptions[0].Endpoint, 'oncall@example.test');
    assert.equal(refTarget(subscriptions[0].TopicArn), ids(withEmail).alarmTopic);
    assert.throws(() => synth({ alarmEmail: 'not-an-address' }), /alarmEmail/);
  });
});

describe('outputs', () => {
  const { json } = synthDefault();
  const r = ids(json);
  const outputs = json.Outputs ?? {};

  it('give the API URL of the default stage', () => {
    const url = outputs.ApiUrl?.Value as any;
    const parts: unknown[] = url['Fn::Join'][1];
    assert.equal(parts[0], 'https://');
    assert.equal(refTarget(parts[1]), r.api);
    assert.equal(parts.at(-1), '/', 'the $default stage has no path prefix');
  });

  it('name the rank index and give its endpoint', () => {
    assert.deepEqual(outputs.RankIndexName?.Value, { Ref: r.rankIndex }, 'Ref of a serverless cache is its name');
    assert.deepEqual(outputs.RankIndexEndpoint?.Value, {
      'Fn::Join': ['', [{ 'Fn::GetAtt': [r.rankIndex, 'Endpoint.Address'] }, ':', { 'Fn::GetAtt': [r.rankIndex, 'Endpoint.Port'] }]],
    });
  });

  it('give the topic ARN, table names, queue URLs and the operator policy ARN', () => {
    const expected: Record<string, string> = {
      RejectionsTopicArn: r.rejectionsTopic,
      AlarmTopicArn: r.alarmTopic,
      SubmissionsTableName: r.submissionsTable,
      UsersTableName: r.usersTable,
      QuotasTableName: r.quotasTable,
      SubmissionsQueueUrl: r.submissionsQueue,
      SubmissionsDeadLetterQueueUrl: r.submissionsDlq,
      RejectionsQueueUrl: r.rejectionsQueue,
      RejectionsDeadLetterQueueUrl: r.rejectionsDlq,
      RankerFailureQueueUrl: r.rankerFailureQueue,
      OperatorPolicyArn: logicalId(json, 'AWS::IAM::ManagedPolicy', 'OperatorPolicy'),
    };
    for (const [name, target] of Object.entries(expected)) {
      // Ref of a topic is its ARN, of a table its name, of a queue its URL, of a managed policy its ARN.
      assert.deepEqual(outputs[name]?.Value, { Ref: target }, name);
    }
  });

  it('name the functions, for log tailing and invocation', () => {
    for (const [fn, id] of Object.entries(FUNCTION_IDS)) {
      assert.deepEqual(outputs[`${id}FunctionName`]?.Value, { Ref: functionId(json, fn as FunctionName) });
    }
  });
});
