// kafkajs (pure JavaScript, its own protocol implementation) against the broker at $BOOTSTRAP.
//
// - admin.createTopics: a 3-partition topic.
// - An idempotent producer (idempotent: true, acks -1; kafkajs defaults to idempotent: false)
//   sends 300 keyed gzip messages in several send() calls: every message acknowledged at the
//   expected offset, and the stored batches carry one producer id with gap-free sequences.
//   A default producer's batches carry no producer id (the default really is non-idempotent).
// - Consumer group: a consumer (autoCommit: false) reads half with eachMessage, commits exactly
//   what it processed with commitOffsets() and disconnects; a second consumer of the group
//   (default autoCommit) resumes exactly at the committed offsets and reads the rest, nothing
//   twice; after it disconnects admin.fetchOffsets shows the end offsets. describeGroups sees the
//   group Empty, listGroups lists it, deleteGroups removes it and its offsets.
//
// Prints "ok"/"FAIL" lines and exits 1 if any check failed.
import {
  BOOTSTRAP, N_PARTITIONS, TIMEOUT_MS, eq, finish, kafkajs, kafkajsVersion, ok, show, sleep, storedBatches, suffix,
  withTimeout,
} from './kafkajs_common.mjs';

const { Kafka, logLevel, Partitioners, CompressionTypes } = kafkajs;
const N_MESSAGES = 300;

function checkStoredProducer(label, topic, idempotent, codec) {
  const batches = storedBatches(topic);
  if (batches === null) {
    console.log(`  skip - ${label}: ESKER_DATA_DIR not set, stored batches not checked`);
    return;
  }
  const problems = [];
  const pids = [...new Set(batches.map((b) => `${b.producerId}/${b.producerEpoch}`))];
  const codecs = [...new Set(batches.map((b) => b.codec))];
  if (batches.length === 0) problems.push('no batch stored');
  if (show(codecs) !== show([codec])) problems.push(`codec ids ${show(codecs)}, expected [${codec}]`);
  if (idempotent) {
    const [pid, epoch] = (pids[0] || '-1/-1').split('/').map(Number);
    if (pids.length !== 1 || pid < 0 || epoch < 0) problems.push(`producer id/epoch ${show(pids)}, expected one id >= 0`);
    const next = {};
    for (const b of batches) {
      const want = next[b.partition] || 0;
      if (b.baseSequence !== want) {
        problems.push(`partition ${b.partition} batch at ${b.baseOffset}: base sequence ${b.baseSequence}, expected ${want}`);
      }
      next[b.partition] = b.baseSequence + b.count;
    }
    ok(problems.length === 0,
      `${label}: all ${batches.length} stored batches carry producer id ${pids[0]} (id/epoch) and gap-free sequences from 0 per partition`,
      problems.slice(0, 5).join('; '));
  } else {
    // (kafkajs writes producer epoch 0 and base sequence 0 into such batches; only the id says.)
    if (batches.some((b) => b.producerId !== -1)) problems.push(`producer id/epoch ${show(pids)}, expected id -1`);
    ok(problems.length === 0, `${label}: all ${batches.length} stored batches have producer id -1`,
      problems.slice(0, 5).join('; '));
  }
}

const kafka = new Kafka({
  clientId: 'esker-compat-kafkajs',
  brokers: [BOOTSTRAP],
  logLevel: logLevel.WARN,
});

async function createTopic(admin, topic) {
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions: N_PARTITIONS, replicationFactor: 1 }],
    waitForLeaders: true,
    timeout: TIMEOUT_MS,
  });
  const md = await admin.fetchTopicMetadata({ topics: [topic] });
  const parts = md.topics[0].partitions.map((p) => [p.partitionId, p.leader]).sort((a, b) => a[0] - b[0]);
  eq({ created, parts }, { created: true, parts: [[0, 0], [1, 0], [2, 0]] },
    `admin.createTopics(${topic}, ${N_PARTITIONS} partitions); metadata: partitions 0..2 led by 0`);
}

// Message i goes to partition i % 3, so it must land at offset floor(i / 3).
function messages(from, to) {
  const out = [];
  for (let i = from; i < to; i++) {
    out.push({ key: `js-${String(i).padStart(4, '0')}`, value: `value ${i}`, partition: i % N_PARTITIONS });
  }
  return out;
}

async function produceIdempotent(topic) {
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  const delivered = new Map();
  const problems = [];
  const t0 = Date.now();
  try {
    for (let from = 0; from < N_MESSAGES; from += 50) {
      const msgs = messages(from, from + 50);
      const res = await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages: msgs });
      const base = new Map(res.map((r) => [r.partition, Number(r.baseOffset)]));
      for (const r of res) if (r.errorCode !== 0) problems.push(`partition ${r.partition}: error ${r.errorCode}`);
      const seen = new Map();
      for (const m of msgs) {
        const n = seen.get(m.partition) || 0;
        seen.set(m.partition, n + 1);
        delivered.set(m.key, [m.partition, base.get(m.partition) + n]);
      }
    }
  } finally {
    await producer.disconnect();
  }
  for (let i = 0; i < N_MESSAGES; i++) {
    const key = `js-${String(i).padStart(4, '0')}`;
    const want = [i % N_PARTITIONS, Math.floor(i / N_PARTITIONS)];
    if (show(delivered.get(key)) !== show(want)) problems.push(`${key} at ${show(delivered.get(key))}, expected ${show(want)}`);
  }
  ok(problems.length === 0,
    `producer({ idempotent: true }).send() x ${N_MESSAGES / 50} (gzip, acks -1): all ${N_MESSAGES} acknowledged at the expected offsets (${Date.now() - t0} ms)`,
    problems.slice(0, 5).join('; '));
  checkStoredProducer('idempotent producer', topic, true, 1);
  return delivered;
}

async function produceDefault(admin) {
  const topic = `js-plain-${suffix()}`;
  await createTopic(admin, topic);
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    const res = await producer.send({ topic, messages: messages(0, 30) });
    ok(res.every((r) => r.errorCode === 0) && res.length === N_PARTITIONS,
      'default producer (kafkajs default idempotent: false, acks -1): 30 messages acknowledged');
  } finally {
    await producer.disconnect();
  }
  checkStoredProducer('default producer', topic, false, 0);
  await admin.deleteTopics({ topics: [topic], timeout: TIMEOUT_MS });
}

async function groupOffsets(admin, groupId, topic) {
  const res = await admin.fetchOffsets({ groupId, topics: [topic] });
  const out = {};
  for (const p of res[0].partitions) if (Number(p.offset) >= 0) out[p.partition] = Number(p.offset);
  return out;
}

// Runs a consumer of the group until `want` messages were processed (later ones are left
// unprocessed: with autoCommit false they are not committed); returns [[partition, offset, key]].
async function consumeInGroup(groupId, topic, want, { autoCommit, extraMs = 0 }) {
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200, sessionTimeout: 10000 });
  const reads = [];
  const positions = {};
  let assigned = null;
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    assigned = (e.payload.memberAssignment[topic] || []).slice().sort();
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    let reached;
    const done = new Promise((r) => { reached = r; });
    await consumer.run({
      autoCommit,
      eachMessage: async ({ partition, message }) => {
        if (reads.length >= want && !extraMs) return;
        reads.push([partition, Number(message.offset), message.key.toString()]);
        positions[partition] = Number(message.offset) + 1;
        if (reads.length === want) reached();
      },
    });
    await withTimeout(done, 30000, `consumer of ${groupId} reading ${want} messages`);
    if (extraMs) await sleep(extraMs); // nothing more may arrive
    if (!autoCommit) {
      await consumer.commitOffsets(Object.entries(positions).map(([partition, offset]) => (
        { topic, partition: Number(partition), offset: String(offset) })));
    }
  } finally {
    await consumer.disconnect();
  }
  return { reads, positions, assigned };
}

function checkResume(delivered, first, committed, second) {
  const ends = {};
  for (const [p, off] of delivered.values()) ends[p] = Math.max(ends[p] || 0, off + 1);
  const byPartition = (reads) => {
    const out = {};
    for (let p = 0; p < N_PARTITIONS; p++) out[p] = [];
    for (const [p, off, key] of reads) {
      out[p].push(off);
      if (show(delivered.get(key)) !== show([p, off])) out.bad = `${key} read at ${p}/${off}`;
    }
    return out;
  };
  const f = byPartition(first);
  const prefix = {};
  const p1 = f.bad ? [f.bad] : [];
  for (let p = 0; p < N_PARTITIONS; p++) {
    prefix[p] = f[p].length;
    if (show(f[p]) !== show([...Array(f[p].length).keys()])) p1.push(`partition ${p}: ${show(f[p].slice(0, 5))}...`);
  }
  ok(p1.length === 0 && first.length > 0,
    `group: first consumer read ${first.length}, per partition offsets 0..k-1 in order (k = ${show(prefix)})`, p1.join('; '));
  const wantCommit = Object.fromEntries(Object.entries(prefix).filter(([, k]) => k > 0));
  eq(committed, wantCommit, 'group: committed offsets after the first consumer disconnected == next offset to read');
  const s = byPartition(second);
  const p2 = s.bad ? [s.bad] : [];
  for (let p = 0; p < N_PARTITIONS; p++) {
    const start = committed[p] ?? 0;
    const want = [];
    for (let o = start; o < (ends[p] || 0); o++) want.push(o);
    if (show(s[p]) !== show(want)) p2.push(`partition ${p}: read ${s[p].length} from ${s[p][0]}, expected ${start}..${ends[p] - 1}`);
  }
  const keys = [...first, ...second].map((r) => r[2]);
  const dups = keys.length - new Set(keys).size;
  const missing = [...delivered.keys()].filter((k) => !keys.includes(k)).length;
  if (dups || missing) p2.push(`${dups} read twice, ${missing} never read`);
  ok(p2.length === 0,
    `group: second consumer resumed exactly at the committed offsets and read the other ${second.length}; all ${delivered.size} read exactly once`,
    p2.join('; '));
  return ends;
}

async function runGroup(admin, topic, delivered) {
  const groupId = `js-group-${suffix()}`;
  const half = N_MESSAGES / 2;
  let t0 = Date.now();
  const first = await consumeInGroup(groupId, topic, half, { autoCommit: false });
  ok(first.reads.length === half && show(first.assigned) === show([0, 1, 2]),
    `group: ${groupId} joined, assigned ${show(first.assigned)}, eachMessage processed ${first.reads.length}, commitOffsets() (${Date.now() - t0} ms)`);
  const committed = await groupOffsets(admin, groupId, topic);
  const desc = await admin.describeGroups([groupId]);
  eq(desc.groups.map((g) => [g.groupId, g.errorCode, g.state, g.protocolType, g.members.length]),
    [[groupId, 0, 'Empty', 'consumer', 0]], 'group: describeGroups after disconnect: Empty, protocol type consumer, no members');
  const listed = (await admin.listGroups()).groups.filter((g) => g.groupId === groupId);
  eq(listed, [{ groupId, protocolType: 'consumer' }], `group: listGroups lists ${groupId}`);

  t0 = Date.now();
  const second = await consumeInGroup(groupId, topic, N_MESSAGES - first.reads.length, { autoCommit: true, extraMs: 1000 });
  ok(true, `group: second consumer read ${second.reads.length} (${Date.now() - t0} ms)`);
  const ends = checkResume(delivered, first.reads, committed, second.reads);
  eq(await groupOffsets(admin, groupId, topic), ends,
    'group: after the second consumer disconnected (autoCommit) the group\'s offsets are the end offsets');
  await admin.deleteGroups([groupId]);
  eq(await groupOffsets(admin, groupId, topic), {}, 'group: admin.deleteGroups; no committed offsets left');
}

async function main() {
  console.log(`kafkajs ${kafkajsVersion} (node ${process.version}) against ${BOOTSTRAP}`);
  const admin = kafka.admin();
  await admin.connect();
  try {
    const topic = `js-${suffix()}`;
    await createTopic(admin, topic);
    const delivered = await produceIdempotent(topic);
    await produceDefault(admin);
    const t0 = Date.now();
    try {
      await runGroup(admin, topic, delivered);
    } catch (e) {
      ok(false, 'consumer group round raised', e.stack);
    }
    console.log(`  (consumer group round took ${((Date.now() - t0) / 1000).toFixed(2)}s)`);
    await admin.deleteTopics({ topics: [topic], timeout: TIMEOUT_MS });
    ok(!(await admin.listTopics()).includes(topic), 'admin.deleteTopics; topic gone');
  } finally {
    await admin.disconnect();
  }
}

try {
  await main();
} catch (e) {
  ok(false, 'kafkajs scenario raised', e.stack);
}
finish('kafkajs');
