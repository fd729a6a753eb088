// The zip inspection that stops a synth with a wrongly packaged bootstrap.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { checkBootstrap, ELF_MACHINE, inspectBootstrap } from '../lib/lambda-zip.ts';
import { fakeElf, singleEntryZip } from './support/dummy-assets.ts';
import { TEMP_DIR } from './support/synth.ts';

function zipFile(name: string, bytes: Buffer): string {
  const file = path.join(TEMP_DIR, name);
  fs.writeFileSync(file, bytes);
  return file;
}

describe('lambda zip inspection', () => {
  it('reads the ELF machine and mode of a stored or deflated bootstrap', () => {
    for (const deflate of [false, true]) {
      const padded = Buffer.concat([fakeElf(ELF_MACHINE.x86_64), Buffer.alloc(4096, 7)]);
      const file = zipFile(`x86-${deflate}.zip`, singleEntryZip('bootstrap', padded, { mode: 0o755, deflate }));
      const info = inspectBootstrap(file);
      assert.equal(info.elfMachine, 0x3e);
      assert.equal(info.unixMode! & 0o777, 0o755);
      checkBootstrap(file, 'x86_64');
      assert.throws(() => checkBootstrap(file, 'arm64'), /built for x86_64/);
    }
  });

  it('refuses zips without bootstrap, non-ELF bootstraps and non-zips', () => {
    const other = zipFile('other.zip', singleEntryZip('main', fakeElf(ELF_MACHINE.arm64), { mode: 0o755 }));
    assert.throws(() => checkBootstrap(other, 'arm64'), /no top-level "bootstrap"/);
    const script = zipFile('script.zip', singleEntryZip('bootstrap', Buffer.from('#!/bin/sh\necho hi\n'), { mode: 0o755 }));
    assert.throws(() => checkBootstrap(script, 'arm64'), /not a 64-bit little-endian ELF/);
    const notZip = zipFile('not.zip', Buffer.from('hello'));
    assert.throws(() => checkBootstrap(notZip, 'arm64'), /not a zip file/);
  });
});
