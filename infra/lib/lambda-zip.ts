// Reads just enough of a Lambda zip to catch the packaging mistakes that otherwise only show up
// as a failed cold start after a deploy: no `bootstrap` entry, a `bootstrap` that is not
// executable, or one built for the other CPU architecture than the function is configured with.
//
// Only the zip central directory and the one entry are read; no dependencies.

import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import type { Architecture } from './settings.ts';

/** The entry point a provided.al2023 function runs. */
export const BOOTSTRAP = 'bootstrap';

/** ELF e_machine values of the two Lambda architectures. */
export const ELF_MACHINE: Readonly<Record<Architecture, number>> = { arm64: 0xb7, x86_64: 0x3e };

const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const CENTRAL_DIRECTORY_ENTRY = 0x02014b50;
const LOCAL_FILE_HEADER = 0x04034b50;
const STORED = 0;
const DEFLATED = 8;
/** "Version made by" host byte for Unix: only then do external attributes hold a file mode. */
const MADE_ON_UNIX = 3;

export interface BootstrapInfo {
  /** The ELF e_machine, or undefined when the entry is not a 64-bit little-endian ELF file. */
  readonly elfMachine?: number;
  /** The Unix mode stored in the zip, when the zip was made on Unix. */
  readonly unixMode?: number;
}

export class LambdaZipError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LambdaZipError';
  }
}

/** Finds `bootstrap` in the zip and reads its ELF header and file mode. */
export function inspectBootstrap(zipPath: string): BootstrapInfo {
  const zip = fs.readFileSync(zipPath);
  const eocd = findEndOfCentralDirectory(zip, zipPath);
  const entries = zip.readUInt16LE(eocd + 10);
  let offset = zip.readUInt32LE(eocd + 16);
  for (let i = 0; i < entries; i++) {
    if (offset + 46 > zip.length || zip.readUInt32LE(offset) !== CENTRAL_DIRECTORY_ENTRY) {
      throw new LambdaZipError(`${zipPath}: corrupt zip central directory`);
    }
    const madeBy = zip.readUInt16LE(offset + 4);
    const method = zip.readUInt16LE(offset + 10);
    const compressedSize = zip.readUInt32LE(offset + 20);
    const nameLength = zip.readUInt16LE(offset + 28);
    const extraLength = zip.readUInt16LE(offset + 30);
    const commentLength = zip.readUInt16LE(offset + 32);
    const externalAttributes = zip.readUInt32LE(offset + 38);
    const localHeader = zip.readUInt32LE(offset + 42);
    const name = zip.toString('utf8', offset + 46, offset + 46 + nameLength);
    if (name === BOOTSTRAP) {
      const data = entryData(zip, zipPath, localHeader, method, compressedSize);
      return {
        elfMachine: elfMachine(data),
        unixMode: madeBy >> 8 === MADE_ON_UNIX ? externalAttributes >>> 16 : undefined,
      };
    }
    offset += 46 + nameLength + extraLength + commentLength;
  }
  throw new LambdaZipError(`${zipPath} has no top-level "${BOOTSTRAP}" entry; Lambda could not start it`);
}

/** Throws unless the zip's bootstrap is an executable ELF binary for `architecture`. */
export function checkBootstrap(zipPath: string, architecture: Architecture): void {
  const info = inspectBootstrap(zipPath);
  const expected = ELF_MACHINE[architecture];
  if (info.elfMachine === undefined) {
    throw new LambdaZipError(`${zipPath}: "${BOOTSTRAP}" is not a 64-bit little-endian ELF executable`);
  }
  if (info.elfMachine !== expected) {
    const actual = Object.entries(ELF_MACHINE).find(([, m]) => m === info.elfMachine)?.[0] ?? `e_machine 0x${info.elfMachine.toString(16)}`;
    throw new LambdaZipError(
      `${zipPath}: "${BOOTSTRAP}" is built for ${actual} but the functions are configured for ${architecture}; ` +
        `rebuild with ARCH=${architecture} scripts/package.sh or synth with -c architecture=${actual}`,
    );
  }
  if (info.unixMode !== undefined && (info.unixMode & 0o111) === 0) {
    throw new LambdaZipError(`${zipPath}: "${BOOTSTRAP}" is not marked executable in the zip`);
  }
}

function findEndOfCentralDirectory(zip: Buffer, zipPath: string): number {
  // The record is 22 bytes plus a comment of up to 65535 bytes at the very end of the file.
  const lowest = Math.max(0, zip.length - 22 - 0xffff);
  for (let offset = zip.length - 22; offset >= lowest; offset--) {
    if (zip.readUInt32LE(offset) === END_OF_CENTRAL_DIRECTORY) return offset;
  }
  throw new LambdaZipError(`${zipPath} is not a zip file`);
}

function entryData(zip: Buffer, zipPath: string, localHeader: number, method: number, compressedSize: number): Buffer {
  if (zip.readUInt32LE(localHeader) !== LOCAL_FILE_HEADER) {
    throw new LambdaZipError(`${zipPath}: corrupt local file header`);
  }
  const start = localHeader + 30 + zip.readUInt16LE(localHeader + 26) + zip.readUInt16LE(localHeader + 28);
  const raw = zip.subarray(start, start + compressedSize);
  if (method === STORED) return raw;
  if (method === DEFLATED) return zlib.inflateRawSync(raw);
  throw new LambdaZipError(`${zipPath}: unsupported compression method ${method}`);
}

function elfMachine(data: Buffer): number | undefined {
  const isElf = data.length >= 20 && data.readUInt32BE(0) === 0x7f454c46;
  const is64BitLittleEndian = isElf && data[4] === 2 && data[5] === 1;
  return is64BitLittleEndian ? data.readUInt16LE(18) : undefined;
}
