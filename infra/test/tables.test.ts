// The DynamoDB tables, checked against the design in docs/DYNAMODB.md (parsed, not copied), and
// the stage-dependent protection of stateful resources.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import {
  QUOTAS_TABLE_KEY,
  QUOTAS_TABLE_SORT_KEY,
  QUOTAS_TABLE_TTL,
  SUBMISSIONS_TABLE_KEY,
  SUBMISSIONS_TABLE_SORT_KEY,
} from '../lib/score-pipeline-stack.ts';
import { type CfnTemplate, ids, REPO_DIR, resource, resourcesOfType, synth, synthDefault } from './support/synth.ts';

const DESIGN = fs.readFileSync(path.join(REPO_DIR, 'docs', 'DYNAMODB.md'), 'utf8');

/** The section of the design document under `## heading`. */
function section(heading: string): string {
  const start = DESIGN.indexOf(`## ${heading}`);
  assert.ok(start >= 0, `docs/DYNAMODB.md has a "## ${heading}" section`);
  const next = DESIGN.indexOf('\n## ', start + 3);
  return DESIGN.slice(start, next < 0 ? undefined : next);
}

/** The partition key: the attribute row whose meaning says "partition key". */
function documentedPartitionKey(heading: string): { name: string; type: string } {
  const row = /^\| `(\w+)` \| (S|N) \| [^|]+ \| \*\*partition key\*\*/m.exec(section(heading));
  assert.ok(row, `a partition key row under ${heading}`);
  return { name: row[1]!, type: row[2]! };
}

/** The sort key: the attribute row whose meaning says "sort key". */
function documentedSortKey(heading: string): { name: string; type: string } {
  const row = /^\| `(\w+)` \| (S|N) \| [^|]+ \| \*\*sort key\*\*/m.exec(section(heading));
  assert.ok(row, `a sort key row under ${heading}`);
  return { name: row[1]!, type: row[2]! };
}

/** The TTL attribute: the number attribute row whose meaning starts with "TTL attribute". */
function documentedTtlAttribute(heading: string): string {
  const row = /^\| `(\w+)` \| N \| [^|]+ \| TTL attribute/m.exec(section(heading));
  assert.ok(row, `a TTL attribute row under ${heading}`);
  return row[1]!;
}

/** The part of `## heading` under `### sub`, up to the next heading of either level. */
function subsection(heading: string, sub: string): string {
  const text = section(heading);
  const start = text.indexOf(`\n### ${sub}\n`);
  assert.ok(start >= 0, `docs/DYNAMODB.md has a "### ${sub}" subsection under ${heading}`);
  const next = text.indexOf('\n#', start + 1);
  return text.slice(start, next < 0 ? undefined : next);
}

/**
 * The documented indexes of the table under `heading`: the rows of an index table
 * (| `name` | `pk` (T) | `sk` (T) | PROJECTION | ...) in its "### Indexes" subsection, or none
 * when that subsection opens by saying "The table has no index." (never both).
 */
function documentedIndexes(heading: string) {
  const text = subsection(heading, 'Indexes');
  const rows = [...text.matchAll(/^\| `(\w+)` \| `(\w+)` \((S|N)\) \| `(\w+)` \((S|N)\) \| (\w+) \|/gm)];
  const none = /^### Indexes\n\nThe table has no index\./.test(text.trimStart());
  assert.ok(rows.length >= 1 || none, `docs/DYNAMODB.md lists the indexes under ${heading}, or says "The table has no index."`);
  assert.ok(!(rows.length >= 1 && none), `docs/DYNAMODB.md both lists indexes and says there are none under ${heading}`);
  return rows.map((m) => ({ name: m[1]!, pk: [m[2]!, m[3]!], sk: [m[4]!, m[5]!], projection: m[6]! }));
}

function attributeType(table: any, name: string): string | undefined {
  return table.AttributeDefinitions.find((d: any) => d.AttributeName === name)?.AttributeType;
}

function keySchema(schema: any[]): string[] {
  return schema.map((k) => `${k.AttributeName}:${k.KeyType}`);
}

function tables(json: CfnTemplate) {
  const r = ids(json);
  return {
    submissions: resource(json, r.submissionsTable),
    users: resource(json, r.usersTable),
    quotas: resource(json, r.quotasTable),
  };
}

describe('tables', () => {
  it('are exactly the three tables of the design', () => {
    assert.equal(resourcesOfType(synthDefault().json, 'AWS::DynamoDB::Table').length, 3);
  });

  it('key the submissions table by player, then submission id, as documented', () => {
    const t = tables(synthDefault().json).submissions.Properties;
    const pk = documentedPartitionKey('Submissions table');
    const sk = documentedSortKey('Submissions table');
    assert.deepEqual(pk, { name: 'userId', type: 'S' }, 'docs/DYNAMODB.md: the partition key is the player');
    assert.deepEqual(sk, { name: 'submissionId', type: 'S' }, 'docs/DYNAMODB.md: the sort key is the submission id');
    assert.deepEqual([SUBMISSIONS_TABLE_KEY, SUBMISSIONS_TABLE_SORT_KEY], [pk.name, sk.name], 'the stack names the documented keys');
    assert.deepEqual(keySchema(t.KeySchema), [`${pk.name}:HASH`, `${sk.name}:RANGE`]);
    // Only key attributes are defined: nothing is left of an index key (receivedAt).
    assert.deepEqual(
      [...t.AttributeDefinitions].sort((a: any, b: any) => a.AttributeName.localeCompare(b.AttributeName)),
      [
        { AttributeName: sk.name, AttributeType: sk.type },
        { AttributeName: pk.name, AttributeType: pk.type },
      ],
    );
  });

  it('give the submissions table no index, as documented', () => {
    const t = tables(synthDefault().json).submissions.Properties;
    assert.deepEqual(documentedIndexes('Submissions table'), [], 'docs/DYNAMODB.md says the table has no index');
    assert.equal(t.GlobalSecondaryIndexes, undefined);
    assert.equal(t.LocalSecondaryIndexes, undefined);
    // The documented access patterns name no index either.
    assert.doesNotMatch(subsection('Submissions table', 'Access patterns'), /IndexName|`byUser`|on an index/);
  });

  it('give the submissions table a new logical id, so that CloudFormation creates the player-keyed table', () => {
    const { json } = synthDefault();
    const id = ids(json).submissionsTable;
    assert.match(id, /^SubmissionsByPlayerTable[0-9A-F]{8}$/);
    // The old table's id (keyed by submission id alone) is gone from the template: a key schema
    // cannot change in place, so the stack drops that table (kept on production stages).
    assert.deepEqual(
      Object.keys(json.Resources).filter((r) => /^SubmissionsTable[0-9A-F]{8}$/.test(r)),
      [],
      'no resource keeps the old logical id',
    );
    const upgrade = section('Upgrading from the table keyed by submission id');
    assert.match(upgrade, /`SubmissionsByPlayerTable`/, 'docs/DYNAMODB.md names the new logical id');
    assert.match(upgrade, /`SubmissionsTable`/, 'docs/DYNAMODB.md names the old logical id');
  });

  it('retain the submissions table (and the one it replaces) on production stages, delete it elsewhere', () => {
    const prod = tables(synth({ stage: 'prod' }).json).submissions;
    assert.equal(prod.DeletionPolicy, 'Retain');
    assert.equal(prod.UpdateReplacePolicy, 'Retain');
    assert.equal(prod.Properties.DeletionProtectionEnabled, true);
    const dev = tables(synthDefault().json).submissions;
    assert.equal(dev.DeletionPolicy, 'Delete');
    assert.equal(dev.UpdateReplacePolicy, 'Delete');
    assert.equal(dev.Properties.DeletionProtectionEnabled ?? false, false);
    // A resource dropped from the template goes by the DeletionPolicy of the last template that
    // had it: Retain (with deletion protection) for the old table on production stages.
    const upgrade = section('Upgrading from the table keyed by submission id');
    assert.match(upgrade, /retain/i, 'docs/DYNAMODB.md says production keeps the old table');
    assert.match(upgrade, /deleted/i, 'docs/DYNAMODB.md says other stages delete it');
  });

  it('give the submissions table a stream of new and old images, which feeds the leaderboards', () => {
    const t = tables(synthDefault().json).submissions.Properties;
    assert.deepEqual(t.StreamSpecification, { StreamViewType: 'NEW_AND_OLD_IMAGES' });
    assert.match(section('Submissions table'), /NEW_AND_OLD_IMAGES/, 'docs/DYNAMODB.md documents the stream');
  });

  it('key the users table as documented, without indexes', () => {
    const t = tables(synthDefault().json).users.Properties;
    const pk = documentedPartitionKey('Users table');
    assert.deepEqual(keySchema(t.KeySchema), [`${pk.name}:HASH`]);
    assert.deepEqual(t.AttributeDefinitions, [{ AttributeName: pk.name, AttributeType: pk.type }]);
    assert.equal(t.GlobalSecondaryIndexes, undefined);
    assert.equal(t.LocalSecondaryIndexes, undefined);
  });


  it('key the quotas table by user and window start, with TTL on expiresAt, without indexes', () => {
    const t = tables(synthDefault().json).quotas.Properties;
    assert.deepEqual(keySchema(t.KeySchema), [`${QUOTAS_TABLE_KEY}:HASH`, `${QUOTAS_TABLE_SORT_KEY}:RANGE`]);
    assert.deepEqual(
      [...t.AttributeDefinitions].sort((a: any, b: any) => a.AttributeName.localeCompare(b.AttributeName)),
      [
        { AttributeName: QUOTAS_TABLE_KEY, AttributeType: 'S' },
        { AttributeName: QUOTAS_TABLE_SORT_KEY, AttributeType: 'N' },
      ].sort((a, b) => a.AttributeName.localeCompare(b.AttributeName)),
    );
    assert.deepEqual(t.TimeToLiveSpecification, { AttributeName: QUOTAS_TABLE_TTL, Enabled: true });
    assert.equal(t.GlobalSecondaryIndexes, undefined);
    assert.equal(t.LocalSecondaryIndexes, undefined);
  });

  it('name the quotas table attributes as documented', () => {
    assert.deepEqual(documentedPartitionKey('Quotas table'), { name: QUOTAS_TABLE_KEY, type: 'S' });
    assert.deepEqual(documentedSortKey('Quotas table'), { name: QUOTAS_TABLE_SORT_KEY, type: 'N' });
    assert.equal(documentedTtlAttribute('Quotas table'), QUOTAS_TABLE_TTL);
  });

  it('give only the quotas table a TTL', () => {
    const { submissions, users } = tables(synthDefault().json);
    assert.equal(submissions.Properties.TimeToLiveSpecification, undefined);
    assert.equal(users.Properties.TimeToLiveSpecification, undefined);
  });

  it('are on-demand', () => {
    for (const [name, t] of Object.entries(tables(synthDefault().json))) {
      assert.equal(t.Properties.BillingMode, 'PAY_PER_REQUEST', name);
      assert.equal(t.Properties.ProvisionedThroughput, undefined, name);
    }
  });

  it('keep point-in-time recovery for submissions and users, not for the short-lived quota counters', () => {
    const { submissions, users, quotas } = tables(synthDefault().json);
    for (const [name, t] of Object.entries({ submissions, users })) {
      assert.equal(t.Properties.PointInTimeRecoverySpecification?.PointInTimeRecoveryEnabled, true, name);
    }
    assert.notEqual(quotas.Properties.PointInTimeRecoverySpecification?.PointInTimeRecoveryEnabled, true, 'quotas');
    // Also on production stages: protection there is deletion protection and Retain, not PITR.
    const prod = tables(synth({ stage: 'prod' }).json).quotas;
    assert.notEqual(prod.Properties.PointInTimeRecoverySpecification?.PointInTimeRecoveryEnabled, true, 'prod quotas');
  });
});

describe('stages', () => {
  const STATEFUL = ['AWS::DynamoDB::Table', 'AWS::SQS::Queue', 'AWS::Logs::LogGroup', 'AWS::KMS::Key', 'AWS::ElastiCache::ServerlessCache'];

  function assertProtection(json: CfnTemplate, production: boolean) {
    for (const [name, t] of Object.entries(tables(json))) {
      assert.equal(t.Properties.DeletionProtectionEnabled ?? false, production, `${name} deletion protection`);
    }
    for (const [id, r] of Object.entries(json.Resources).filter(([, r]) => STATEFUL.includes(r.Type))) {
      const policy = production ? 'Retain' : 'Delete';
      assert.equal(r.DeletionPolicy, policy, `${id} DeletionPolicy`);
      assert.equal(r.UpdateReplacePolicy, policy, `${id} UpdateReplacePolicy`);
    }
  }

  it('a dev stage can be torn down completely and keeps logs 14 days', () => {
    const s = synthDefault();
    assert.equal(s.stack.stackName, 'ScorePipeline-dev');
    assertProtection(s.json, false);
    assert.equal(s.stack.terminationProtection, false);
    for (const [id, g] of resourcesOfType(s.json, 'AWS::Logs::LogGroup')) assert.equal(g.Properties.RetentionInDays, 14, id);
  });

  it('a production stage protects and retains its data and keeps logs 90 days', () => {
    const s = synth({ stage: 'prod' });
    assert.equal(s.stack.stackName, 'ScorePipeline-prod');
    assertProtection(s.json, true);
    assert.equal(s.stack.terminationProtection, true);
    for (const [id, g] of resourcesOfType(s.json, 'AWS::Logs::LogGroup')) assert.equal(g.Properties.RetentionInDays, 90, id);
  });

  it('production can be declared for any stage name, or turned off, by context', () => {
    assertProtection(synth({ stage: 'live', production: 'true' }).json, true);
    assertProtection(synth({ stage: 'prod', production: false }).json, false);
  });

  it('settings can come from a per-stage block in the context', () => {
    const s = synth({ stage: 'staging', stages: { staging: { logRetentionDays: 30, production: true } } });
    assertProtection(s.json, true);
    for (const [id, g] of resourcesOfType(s.json, 'AWS::Logs::LogGroup')) assert.equal(g.Properties.RetentionInDays, 30, id);
  });
});
