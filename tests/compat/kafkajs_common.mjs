// Shared helpers of the kafkajs scenarios (kafkajs_test.mjs, kafkajs_txn_test.mjs): the check
// recorder ("ok"/"FAIL" lines, exit status 1 if any check failed), small promise helpers, and
// the record batches the broker stored on disk.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';

const require = createRequire(import.meta.url);
export const kafkajs = require('kafkajs');
export const kafkajsVersion = require('kafkajs/package.json').version;

export const BOOTSTRAP = process.env.BOOTSTRAP || '127.0.0.1:9092';
export const N_PARTITIONS = 3;
export const TIMEOUT_MS = 15000;

let passed = 0;
let failed = 0;
export function ok(cond, what, detail = '') {
  if (cond) {
    passed++;
    console.log(`  ok   - ${what}`);
  } else {
    failed++;
    console.log(`  FAIL - ${what}${detail ? `: ${detail}` : ''}`);
  }
  return cond;
}
export const show = (x) => JSON.stringify(x);
export function eq(actual, expected, what) {
  return ok(show(actual) === show(expected), what, `expected ${show(expected)}, got ${show(actual)}`);
}
/** Prints the tally and exits 1 if any check failed. */
export function finish(scenario) {
  console.log(`${scenario}: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
export const suffix = () => crypto.randomBytes(4).toString('hex');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// A zigzag varint of a v2 record at pos: [value, position after it].
function varint(data, pos) {
  let shift = 0;
  let raw = 0;
  for (;;) {
    const b = data[pos++];
    raw += (b & 0x7f) * 2 ** shift;
    if (!(b & 0x80)) return [raw % 2 ? -(raw + 1) / 2 : raw / 2, pos];
    shift += 7;
  }
}

// The type of a control batch's first record, from its key [version i16][type i16].
function controlType(data, pos) {
  try {
    pos = varint(data, pos)[1]; // record length
    pos += 1; // record attributes
    pos = varint(data, pos)[1]; // timestamp delta
    pos = varint(data, pos)[1]; // offset delta
    const [keyLen, at] = varint(data, pos);
    if (keyLen < 4) return `control key of ${keyLen} bytes`;
    return { 0: 'ABORT', 1: 'COMMIT' }[data.readInt16BE(at + 2)] ?? `control#${data.readInt16BE(at + 2)}`;
  } catch {
    return 'truncated control record';
  }
}

// The record batches the broker stored (<log.dirs>/<topic>-<partition>/*.log, v2 headers), or
// null when ESKER_DATA_DIR is not set. `transactional` and `control` are attribute bits 4 and 5;
// a control batch's `marker` is COMMIT or ABORT.
export function storedBatches(topic, nPartitions = N_PARTITIONS) {
  const dataDir = process.env.ESKER_DATA_DIR;
  if (!dataDir) return null;
  const out = [];
  for (let p = 0; p < nPartitions; p++) {
    const dir = path.join(dataDir, `${topic}-${p}`);
    for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.log')).sort()) {
      const data = fs.readFileSync(path.join(dir, f));
      let pos = 0;
      while (pos + 61 <= data.length) {
        const length = data.readInt32BE(pos + 8);
        if (length <= 0) break;
        const attributes = data.readInt16BE(pos + 21);
        out.push({
          partition: p,
          baseOffset: Number(data.readBigInt64BE(pos)),
          codec: attributes & 7,
          transactional: Boolean(attributes & 0x10),
          control: Boolean(attributes & 0x20),
          marker: attributes & 0x20 ? controlType(data, pos + 61) : null,
          producerId: Number(data.readBigInt64BE(pos + 43)),
          producerEpoch: data.readInt16BE(pos + 51),
          baseSequence: data.readInt32BE(pos + 53),
          count: data.readInt32BE(pos + 57),
        });
        pos += 12 + length;
      }
    }
  }
  return out;
}
