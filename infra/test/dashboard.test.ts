// The CloudWatch dashboard: its name, and that its widgets show the API, the queues, the
// processor's, notifier's and ranker's EMF metrics, the ranker's stream lag, the rank index's
// ElastiCache metrics, the functions, and every function's cold starts.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BOARDS_METRICS,
  EMF_METRICS,
  INGEST_METRICS,
  METRICS_NAMESPACE,
  NOTIFIER_METRICS,
  PROCESSOR_METRICS,
  RANKER_METRICS,
} from '../lib/score-pipeline-stack.ts';
import { dashboard, linesOf, metricLines, type Widget } from './support/dashboard.ts';
import { FUNCTION_IDS, type FunctionName, functionId, ids, synth, synthDefault } from './support/synth.ts';

describe('dashboard', () => {
  const { json } = synthDefault();
  const r = ids(json);
  const d = dashboard(json);
  const lines = metricLines(d);
  /** The lines of `fn`'s EMF metric `name`, with exactly the dimensions the function writes. */
  const emf = (fn: FunctionName, name: string) =>
    lines.filter(
      (l) => l.namespace === METRICS_NAMESPACE && l.name === name && JSON.stringify(l.dimensions) === JSON.stringify({ Function: fn, Stage: 'dev' }),
    );

  it('is named after the stage, like the stack', () => {
    assert.equal(d.name, 'ScorePipeline-dev');
    assert.equal(dashboard(synth({ stage: 'staging' }).json).name, 'ScorePipeline-staging');
  });

  it("lists the metric names the functions write (shared/src/metrics.rs), in the functions' order", () => {
    assert.deepEqual(INGEST_METRICS, ['ColdStart']);
    assert.deepEqual(PROCESSOR_METRICS, [
      'Records',
      'Submissions',
      'Accepted',
      'Rejected',
      'RateLimited',
      'AlreadyDecided',
      'IdempotencyConflicts',
      'Malformed',
      'UnreadableUserEntries',
      'MarkedFailed',
      'FailedRecords',
      'ColdStart',
      'BatchDurationMs',
    ]);
    assert.deepEqual(NOTIFIER_METRICS, [
      'Records',
      'Published',
      'AlreadyNotified',
      'UnmarkedNotifications',
      'Malformed',
      'FailedRecords',
      'ColdStart',
      'BatchDurationMs',
    ]);
    // processor/src/ranker.rs RankSummary::metrics, then ColdStart and BatchDurationMs.
    assert.deepEqual(RANKER_METRICS, [
      'ChangeRecords',
      'BoardOffers',
      'BoardRevocations',
      'BoardWrites',
      'UnreadableChanges',
      'FailedChangeBatches',
      'ColdStart',
      'BatchDurationMs',
    ]);
    assert.deepEqual(BOARDS_METRICS, ['ColdStart']);
    assert.deepEqual(EMF_METRICS, {
      ingest: INGEST_METRICS,
      processor: PROCESSOR_METRICS,
      notifier: NOTIFIER_METRICS,
      ranker: RANKER_METRICS,
      boards: BOARDS_METRICS,
    });
  });

  it('mentions the namespace and every metric name of every function', () => {
    // The plain text search the body must pass, whatever its layout.
    assert.ok(d.text.includes(`"${METRICS_NAMESPACE}"`));
    for (const name of [...INGEST_METRICS, ...PROCESSOR_METRICS, ...NOTIFIER_METRICS, ...RANKER_METRICS, ...BOARDS_METRICS]) {
      assert.ok(d.text.includes(`"${name}"`), name);
    }
  });

  it('shows HTTP API requests, 4xx, 5xx and latency', () => {
    for (const name of ['Count', '4xx', '5xx', 'Latency', 'IntegrationLatency']) {
      const found = linesOf(lines, 'AWS/ApiGateway', name, 'ApiId', `\${${r.api}}`);
      assert.ok(found.length > 0, name);
    }
    assert.deepEqual(linesOf(lines, 'AWS/ApiGateway', 'Latency').map((l) => l.stat).sort(), ['p50', 'p99']);
  });

  it('shows depth and oldest-message age of both queues, and the depth of both dead-letter queues', () => {
    const queue = (id: string) => `\${${id}}`; // Fn::GetAtt QueueName
    for (const q of [r.submissionsQueue, r.rejectionsQueue]) {
      assert.equal(linesOf(lines, 'AWS/SQS', 'ApproximateNumberOfMessagesVisible', 'QueueName', queue(q)).length, 1, q);
      assert.equal(linesOf(lines, 'AWS/SQS', 'ApproximateAgeOfOldestMessage', 'QueueName', queue(q)).length, 1, q);
    }
    for (const dlq of [r.submissionsDlq, r.rejectionsDlq, r.rankerFailureQueue]) {
      const found = linesOf(lines, 'AWS/SQS', 'ApproximateNumberOfMessagesVisible', 'QueueName', queue(dlq));
      assert.equal(found.length, 1, dlq);
      assert.equal(found[0]!.stat, 'Maximum');
    }
  });

  it("graphs the processor's, notifier's and ranker's EMF metrics with the dimensions they are written with", () => {
    const notOutcomes = ['ColdStart', 'BatchDurationMs'];
    const titles = {
      processor: 'Processor: records per batch outcome',
      notifier: 'Notifier: records per batch outcome',
      ranker: 'Ranker: changes per batch outcome',
    };
    for (const fn of ['processor', 'notifier', 'ranker'] as const) {
      const outcomes = (EMF_METRICS[fn] as readonly string[]).filter((name) => !notOutcomes.includes(name));
      for (const name of outcomes) {
        const found = emf(fn, name);
        assert.equal(found.length, 1, `${fn} ${name}`);
        assert.equal(found[0]!.stat, 'Sum', `${fn} ${name}`);
      }
      // The outcome graph holds the outcome counts only, in the function's order.
      const title = titles[fn];
      assert.deepEqual(lines.filter((l) => l.widget === title).map((l) => l.name), outcomes, title);
      assert.deepEqual(emf(fn, 'BatchDurationMs').map((l) => l.stat), ['p99'], fn);
    }
    // Every EMF line carries exactly the dimension set the functions write, for this stage.
    for (const l of lines.filter((l) => l.namespace === METRICS_NAMESPACE)) {
      assert.deepEqual(Object.keys(l.dimensions).sort(), ['Function', 'Stage'], `${l.widget}: ${l.name}`);
      assert.equal(l.dimensions.Stage, 'dev');
    }
    const prod = metricLines(dashboard(synth({ stage: 'prod' }).json));
    assert.ok(prod.filter((l) => l.namespace === METRICS_NAMESPACE).every((l) => l.dimensions.Stage === 'prod'));
  });

  it('shows how far the ranker lags behind the stream (IteratorAge maximum)', () => {
    const found = linesOf(lines, 'AWS/Lambda', 'IteratorAge', 'FunctionName', `\${${functionId(json, 'ranker')}}`);
    assert.equal(found.length, 1);
    assert.equal(found[0]!.stat, 'Maximum');
  });

  it('shows the cold starts of all five functions, summed, in one graph', () => {
    for (const fn of Object.keys(FUNCTION_IDS) as FunctionName[]) {
      const found = emf(fn, 'ColdStart');
      assert.equal(found.length, 1, fn);
      assert.equal(found[0]!.stat, 'Sum', fn);
      assert.equal(found[0]!.period, 60, fn);
    }
    const coldStarts = linesOf(lines, METRICS_NAMESPACE, 'ColdStart');
    assert.equal(new Set(coldStarts.map((l) => l.widget)).size, 1, 'one graph');
    assert.deepEqual(
      lines.filter((l) => l.widget === coldStarts[0]!.widget).map((l) => l.dimensions.Function),
      ['ingest', 'processor', 'notifier', 'ranker', 'boards'],
    );
  });

  it("shows the rank index's ECPUs, storage against the alarm line, throttled commands, latency and commands, by clusterId", () => {
    const cache = `\${${r.rankIndex}}`; // Ref: the cache's name
    const expected: [string, string][] = [
      ['ElastiCacheProcessingUnits', 'Sum'],
      ['BytesUsedForCache', 'Maximum'],
      ['ThrottledCmds', 'Sum'],
      ['SuccessfulReadRequestLatency', 'p99'],
      ['SuccessfulWriteRequestLatency', 'p99'],
      ['TotalCmdsCount', 'Sum'],
    ];
    for (const [name, stat] of expected) {
      const found = linesOf(lines, 'AWS/ElastiCache', name, 'clusterId', cache);
      assert.equal(found.length, 1, name);
      assert.equal(found[0]!.stat, stat, name);
      assert.equal(found[0]!.period, 60, name);
      assert.deepEqual(Object.keys(found[0]!.dimensions), ['clusterId'], `${name}: the only dimension serverless caches publish under`);
    }
    // Read and write latency share a graph, as the functions' durations do.
    assert.equal(new Set(['SuccessfulReadRequestLatency', 'SuccessfulWriteRequestLatency'].map((n) => linesOf(lines, 'AWS/ElastiCache', n)[0]!.widget)).size, 1);
    // The plain text search the body must pass: the metric names and the dimension.
    for (const name of expected.map(([name]) => name)) assert.ok(d.text.includes(`["AWS/ElastiCache","${name}","clusterId","${cache}"`), name);
    assert.ok(d.widgets[0]!.properties.markdown!.includes(`clusterId=${cache}`), 'the header names the dimension');
  });

  it('draws the storage alarm line at 80 % of rankIndexMaxDataStorageGb and names the ECPU cap', () => {
    const storage = (t: typeof json) => {
      const w = dashboard(t).widgets.filter((w) => (w.properties.metrics ?? []).some((m) => m[1] === 'BytesUsedForCache'));
      assert.equal(w.length, 1);
      return w[0]!;
    };
    assert.deepEqual(storage(json).properties.annotations?.horizontal?.map((a) => a.value), [4_000_000_000]);
    const custom = synth({ rankIndexMaxDataStorageGb: 10, rankIndexMaxEcpuPerSecond: 50_000 }).json;
    assert.deepEqual(storage(custom).properties.annotations?.horizontal?.map((a) => a.value), [8_000_000_000]);
    const ecpuTitle = (t: typeof json) => metricLines(dashboard(t)).find((l) => l.name === 'ElastiCacheProcessingUnits')!.widget;
    assert.match(ecpuTitle(json), /cap 600,000\/s, 36,000,000 a minute/);
    assert.match(ecpuTitle(custom), /cap 50,000\/s, 3,000,000 a minute/);
    // No other graph draws a line.
    assert.equal(d.widgets.filter((w) => w.properties.annotations !== undefined).length, 1);
  });

  it('shows errors, throttles and duration of all five functions', () => {
    for (const fn of Object.keys(FUNCTION_IDS) as FunctionName[]) {
      for (const name of ['Errors', 'Throttles', 'Duration']) {
        const found = linesOf(lines, 'AWS/Lambda', name, 'FunctionName', `\${${functionId(json, fn)}}`);
        assert.equal(found.length, 1, `${fn} ${name}`);
      }
    }
  });

  it('lays its graphs out on the 24-column grid', () => {
    const metricWidgets = d.widgets.filter((w) => w.type === 'metric');
    assert.equal(metricWidgets.length, 20);
    for (const w of d.widgets as (Widget & { x: number; width: number })[]) {
      assert.ok(w.x + w.width <= 24, w.properties.title);
    }
  });
});
