// Stand-ins for the packaging step's output, so the CDK app can be synthesized and tested
// without a Rust build: for each function a `<bin>/bootstrap.zip` holding an executable
// `bootstrap` that starts with a real ELF header for the requested architecture (the stack checks
// that header), and a throwaway public key for the token settings.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { BOOTSTRAP, ELF_MACHINE } from '../../lib/lambda-zip.ts';
import type { Architecture } from '../../lib/settings.ts';

/** The stack's binaries (lib/score-pipeline-stack.ts BINARIES; a test keeps the two lists equal). */
export const FUNCTION_BINARIES = ['ingest', 'processor', 'notifier', 'ranker', 'boards'] as const;

/** Writes `<dir>/<bin>/bootstrap.zip` for every function; returns `dir`. */
export function writeDummyZips(dir: string, architecture: Architecture, options: { mode?: number } = {}): string {
  for (const bin of FUNCTION_BINARIES) {
    fs.mkdirSync(path.join(dir, bin), { recursive: true });
    // The binary's name after the header keeps the assets distinct, like the real ones.
    const bootstrap = Buffer.concat([fakeElf(ELF_MACHINE[architecture]), Buffer.from(bin)]);
    const zip = singleEntryZip(BOOTSTRAP, bootstrap, { mode: options.mode ?? 0o755 });
    fs.writeFileSync(path.join(dir, bin, 'bootstrap.zip'), zip);
  }
  return dir;
}

/** An EC P-256 public key in PEM (the private half is thrown away). */
export function throwawayPublicKeyPem(): string {
  const { publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return publicKey.export({ type: 'spki', format: 'pem' }).toString();
}

/** A 64-byte ELF64 little-endian header naming `machine`, then nothing a CPU could run. */
export function fakeElf(machine: number): Buffer {
  const elf = Buffer.alloc(64);
  elf.writeUInt32BE(0x7f454c46, 0); // \x7fELF
  elf[4] = 2; // ELFCLASS64
  elf[5] = 1; // little-endian
  elf[6] = 1; // EV_CURRENT
  elf.writeUInt16LE(2, 16); // ET_EXEC
  elf.writeUInt16LE(machine, 18);
  elf.writeUInt32LE(1, 20);
  return elf;
}

/** The earliest valid DOS date; zero is not a date. */
const DOS_DATE_1980_01_01 = (0 << 9) | (1 << 5) | 1;

/** A zip with one entry (stored, or deflated like cargo-lambda's), made "on Unix" so it carries the file mode. */
export function singleEntryZip(name: string, content: Buffer, options: { mode: number; deflate?: boolean }): Buffer {
  const { mode, deflate = false } = options;
  const nameBytes = Buffer.from(name, 'utf8');
  const crc = crc32(content);
  const data = deflate ? zlib.deflateRawSync(content) : content;
  const method = deflate ? 8 : 0;
  const madeBy = (3 << 8) | 20; // Unix, zip 2.0
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(20, 4);
  local.writeUInt16LE(method, 8);
  local.writeUInt16LE(DOS_DATE_1980_01_01, 12);
  local.writeUInt32LE(crc, 14);
  local.writeUInt32LE(data.length, 18);
  local.writeUInt32LE(content.length, 22);
  local.writeUInt16LE(nameBytes.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(madeBy, 4);
  central.writeUInt16LE(20, 6);
  central.writeUInt16LE(method, 10);
  central.writeUInt16LE(DOS_DATE_1980_01_01, 14);
  central.writeUInt32LE(crc, 16);
  central.writeUInt32LE(data.length, 20);
  central.writeUInt32LE(content.length, 24);
  central.writeUInt16LE(nameBytes.length, 28);
  central.writeUInt32LE(((0o100000 | mode) << 16) >>> 0, 38); // regular file + mode
  central.writeUInt32LE(0, 42);
  const centralOffset = local.length + nameBytes.length + data.length;
  const centralSize = central.length + nameBytes.length;
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(centralOffset, 16);
  return Buffer.concat([local, nameBytes, data, central, nameBytes, end]);
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(data: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of data) crc = CRC_TABLE[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
