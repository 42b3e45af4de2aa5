// The Kinesis differential test: the same raw HTTP requests sent to kinesalite (the reference
// emulator, started here in-process with no life-cycle delays) and to the Esker broker at
// $KINESIS_ENDPOINT, their answers compared.
//
// Corpus (tests/compat/kinesis_diff/):
//   generated.json   cases generated from AWS's API model by generate.py (valid requests, and
//                    per member: missing, null, wrong JSON type, too short/long, pattern, enum,
//                    range, several violations at once, more than ten)
//   edge_cases.json  hand-written: bad JSON, empty body, unknown or missing X-Amz-Target, wrong
//                    Content-Type, unknown fields, strings for timestamps, blobs that are not
//                    base64, huge numbers, CBOR requests
//   stateful.json    steps run in order on each endpoint (create a stream, wait until ACTIVE,
//                    put, read, describe, delete); values saved from one answer (`save`) are
//                    used by later steps as ${name}
//   allowlist.json   differences that are deliberate: cases ({"case": "id or glob", "reason"})
//                    and response fields AWS added after kinesalite (an answer that differs
//                    only by them is an allowed difference)
//
// Compared: HTTP status, error `__type`, which message key (`message`/`Message`) and its text,
// and for successes the body's shape (keys and value types, not values).
//
//   tests/compat/run.sh kinesis_diff.mjs                # beside a freshly started broker
//   KINESIS_ENDPOINT=http://127.0.0.1:4567 node tests/compat/kinesis_diff.mjs [--only GLOB] [-v]
//
// Prints one line per failure and the summary
//   kinesis differential: N cases, I identical, A allowed differences, F failures
// and exits 1 if any difference is not in the allowlist.
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(HERE, 'package.json'));
const kinesalite = require('kinesalite');
const cbor = require('cbor');

const ESKER = process.env.KINESIS_ENDPOINT || 'http://127.0.0.1:4567';
const args = process.argv.slice(2);
const VERBOSE = args.includes('-v') || args.includes('--verbose');
const ONLY = args.includes('--only') ? args[args.indexOf('--only') + 1] : null;
const CORPUS = join(HERE, 'kinesis_diff');
const RUN = `kdiff-${Date.now().toString(36)}-${process.pid}`;
const JSON_TYPE = 'application/x-amz-json-1.1';
const CBOR_TYPE = 'application/x-amz-cbor-1.1';

// ------------------------------------------------------------------------------------------
// Requests
// ------------------------------------------------------------------------------------------

const sha256 = (data) => createHash('sha256').update(data).digest('hex');
const hmac = (key, data) => createHmac('sha256', key).update(data).digest();

// A real SigV4 signature (access key `kdiff`), so the request also passes `kinesis.auth=sigv4`
// brokers configured with that key and is syntactically what the SDKs send.
function sign(host, headers, body) {
  const now = new Date();
  const amzDate = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const scope = `${day}/us-east-1/kinesis/aws4_request`;
  const all = { ...headers, host, 'x-amz-date': amzDate };
  const names = Object.keys(all).map((n) => n.toLowerCase()).sort();
  const lower = Object.fromEntries(Object.entries(all).map(([k, v]) => [k.toLowerCase(), v]));
  const canonical = ['POST', '/', '', ...names.map((n) => `${n}:${String(lower[n]).trim()}`), '',
    names.join(';'), sha256(body)].join('\n');
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  let key = hmac('AWS4kdiff-secret', day);
  for (const part of ['us-east-1', 'kinesis', 'aws4_request']) key = hmac(key, part);
  const signature = createHmac('sha256', key).update(toSign).digest('hex');
  return {
    'X-Amz-Date': amzDate,
    Authorization: `AWS4-HMAC-SHA256 Credential=kdiff/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`,
  };
}

// ${run}, ${missing}, ${stream}, ${str:N}, ${b64:N} and saved values, in every string.
function expand(value, vars) {
  if (typeof value === 'string') {
    const whole = value.match(/^\$\{b64:(\d+)\}$/);
    if (whole) return Buffer.alloc(Number(whole[1]), 0x61).toString('base64');
    return value.replace(/\$\{([a-zA-Z0-9_]+)(?::(\d+))?\}/g, (m, name, n) => {
      if (name === 'str') return 'a'.repeat(Number(n));
      if (name in vars) return vars[name];
      throw new Error(`unknown variable ${m}`);
    });
  }
  if (Array.isArray(value)) return value.map((v) => expand(v, vars));
  if (value && typeof value === 'object') {
    if ('$bytes' in value) return Buffer.from(expand(value.$bytes, vars), 'base64');
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expand(v, vars)]));
  }
  return value;
}

// The bytes, headers and method of a case.
function build(c, vars) {
  const contentType = c.contentType === undefined ? (c.cbor ? CBOR_TYPE : JSON_TYPE) : c.contentType;
  let body;
  if (c.rawBody !== undefined) body = Buffer.from(expand(c.rawBody, vars));
  else if (c.body === undefined) body = Buffer.alloc(0);
  else if (c.cbor) body = cbor.encodeOne(expand(c.body, vars));
  else body = Buffer.from(JSON.stringify(expand(c.body, vars)));
  const headers = {};
  if (contentType !== null) headers['Content-Type'] = contentType;
  const target = c.target !== undefined ? c.target : `Kinesis_20131202.${c.op}`;
  if (target !== null) headers['X-Amz-Target'] = target;
  Object.assign(headers, c.headers || {});
  return { method: c.method || 'POST', headers, body, sign: c.unsigned !== true };
}

function send(endpoint, req) {
  const url = new URL(endpoint);
  const headers = { ...req.headers };
  if (req.sign) Object.assign(headers, sign(url.host, headers, req.body));
  headers['Content-Length'] = req.body.length;
  return new Promise((resolve, reject) => {
    const r = http.request({ host: url.hostname, port: url.port, path: '/', method: req.method, headers,
      agent: false }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    r.setTimeout(30000, () => r.destroy(new Error('timed out')));
    r.on('error', reject);
    r.end(req.body);
  });
}

// ------------------------------------------------------------------------------------------
// Answers
// ------------------------------------------------------------------------------------------

function decodeBody(res) {
  if (res.body.length === 0) return { kind: 'empty' };
  const type = (res.headers['content-type'] || '').split(';')[0];
  try {
    if (type === CBOR_TYPE) return { kind: 'value', value: cbor.decodeFirstSync(res.body) };
    if (type.includes('json')) return { kind: 'value', value: JSON.parse(res.body.toString()) };
  } catch (e) {
    return { kind: 'undecodable', text: res.body.toString().slice(0, 200) };
  }
  return { kind: 'text', text: res.body.toString().slice(0, 300) };
}

function shape(v) {
  if (v === null || v === undefined) return 'null';
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return 'bytes';
  if (v instanceof Date) return 'date';
  if (Array.isArray(v)) return [...new Set(v.map((x) => JSON.stringify(shape(x))))].sort().map((s) => JSON.parse(s));
  if (typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, shape(v[k])]));
  }
  return typeof v;
}

// What is compared of an answer.
function summarize(res) {
  const b = decodeBody(res);
  const out = { status: res.status };
  if (b.kind !== 'value') {
    out.body = b.kind === 'empty' ? 'empty' : b.text;
    return out;
  }
  const v = b.value;
  if (v && typeof v === 'object' && '__type' in v) {
    out.type = v.__type;
    const keys = Object.keys(v).filter((k) => k !== '__type').sort();
    out.keys = keys.join(',');
    if ('message' in v) out.message = v.message;
    if ('Message' in v) out.message = v.Message;
    return out;
  }
  out.shape = shape(v);
  return out;
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
// Long answers (501 records, 129-character names) are shown shortened.
const clip = (s) => (s.length > 700 ? `${s.slice(0, 600)}… (${s.length} characters)` : s);

// ------------------------------------------------------------------------------------------
// Corpus, allowlist
// ------------------------------------------------------------------------------------------

const readJson = (f) => JSON.parse(readFileSync(join(CORPUS, f), 'utf8'));
const glob = (pattern) => new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
const allowFile = readJson('allowlist.json');
const allowlist = allowFile.cases.map((e) => ({ ...e, re: glob(e.case), used: 0 }));
const newerFields = allowFile.responseFields.map((e) => ({ ...e, case: `field ${e.field}`, used: 0 }));
// The summary without the response fields AWS added after kinesalite, or null when it has none.
function withoutNewerFields(summary) {
  if (!summary.shape) return null;
  let found = null;
  const strip = (v) => {
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === 'object') {
      const out = {};
      for (const [k, child] of Object.entries(v)) {
        const f = newerFields.find((e) => e.field === k);
        if (f) {
          f.used += 1;
          found = found || f;
        }
        else out[k] = strip(child);
      }
      return out;
    }
    return v;
  };
  const shape = strip(summary.shape);
  return { stripped: { ...summary, shape }, field: found };
}
const allowed = (id) => allowlist.find((e) => e.re.test(id));
const selected = (id) => !ONLY || glob(ONLY).test(id);

// ------------------------------------------------------------------------------------------
// Run
// ------------------------------------------------------------------------------------------

async function startKinesalite() {
  const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 50 });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, endpoint: `http://127.0.0.1:${server.address().port}` };
}

// Waits (up to 20 s) until the answer's field at `path` equals `value`.
async function until(endpoint, req, path, value) {
  const deadline = Date.now() + 20000;
  for (;;) {
    const res = await send(endpoint, req);
    const b = decodeBody(res);
    const got = b.kind === 'value' ? path.split('.').reduce((o, k) => (o == null ? o : o[k]), b.value) : undefined;
    if (got === value || Date.now() > deadline) return res;
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function runSteps(endpoint, steps, baseVars) {
  const vars = { ...baseVars };
  const answers = new Map();
  for (const step of steps) {
    const req = build(step, vars);
    const res = step.until ? await until(endpoint, req, step.until.path, step.until.value) : await send(endpoint, req);
    answers.set(step.id, summarize(res));
    const b = decodeBody(res);
    for (const [name, path] of Object.entries(step.save || {})) {
      const got = b.kind === 'value' ? path.split('.').reduce((o, k) => (o == null ? o : o[k]), b.value) : undefined;
      if (got !== undefined) vars[name] = Buffer.isBuffer(got) ? got.toString('base64') : String(got);
    }
  }
  return answers;
}

async function main() {
  const ref = await startKinesalite();
  const vars = { run: RUN, missing: `${RUN}-missing`, stream: `${RUN}-s` };
  const cases = [...readJson('generated.json').cases, ...readJson('edge_cases.json').cases].filter((c) => selected(c.id));
  // Steps depend on the ones before: all run when any is selected.
  const allSteps = readJson('stateful.json').steps;
  const steps = allSteps.some((s) => selected(s.id)) ? allSteps : [];
  let identical = 0;
  let allowedCount = 0;
  const failures = [];
  const record = (id, a, b) => {
    if (same(a, b)) {
      identical += 1;
      const e = allowed(id);
      if (e && VERBOSE) console.log(`  note - ${id}: allowlisted (${e.case}) but identical`);
      return;
    }
    const sa = withoutNewerFields(a);
    const sb = withoutNewerFields(b);
    let e = allowed(id);
    if (e) e.used += 1;
    else if (sa && sb && (sa.field || sb.field) && same(sa.stripped, sb.stripped)) e = sa.field || sb.field;
    if (e) {
      allowedCount += 1;
      if (VERBOSE) console.log(`  allowed - ${id}: ${e.reason}\n      kinesalite ${clip(JSON.stringify(a))}\n      esker      ${clip(JSON.stringify(b))}`);
      return;
    }
    failures.push(id);
    console.log(`  FAIL - ${id}\n      kinesalite ${clip(JSON.stringify(a))}\n      esker      ${clip(JSON.stringify(b))}`);
  };
  try {
    for (const c of cases) {
      const req = build(c, vars);
      const [a, b] = await Promise.all([send(ref.endpoint, req), send(ESKER, req)]);
      record(c.id, summarize(a), summarize(b));
    }
    const stepVars = { ...vars };
    const [refSteps, eskerSteps] = await Promise.all([runSteps(ref.endpoint, steps, stepVars), runSteps(ESKER, steps, stepVars)]);
    for (const s of steps) {
      if (selected(s.id)) record(s.id, refSteps.get(s.id), eskerSteps.get(s.id));
    }
  } finally {
    await new Promise((resolve) => ref.server.close(() => resolve()));
  }
  const total = identical + allowedCount + failures.length;
  const unused = [...allowlist, ...newerFields].filter((e) => e.used === 0);
  if (unused.length && !ONLY) {
    console.log(`  note - allowlist entries that matched no difference: ${unused.map((e) => e.case).join(', ')}`);
  }
  console.log(`kinesis differential: ${total} cases, ${identical} identical, ${allowedCount} allowed differences, ${failures.length} failures`);
  process.exit(failures.length ? 1 : 0);
}

main().catch((e) => {
  console.log(`kinesis differential: FAIL - ${e.stack || e}`);
  process.exit(1);
});
