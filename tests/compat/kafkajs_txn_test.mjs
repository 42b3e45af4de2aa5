// kafkajs transactions against the broker at $BOOTSTRAP.
//
// - An input topic is filled without transactions (its records 0..29 of each partition stand for
//   what a consumer of a group has processed; kafkajs's sendOffsets takes the group id only).
// - producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 }).transaction():
//   send() to the 3 partitions of an output topic, sendOffsets({ consumerGroupId, topics }) of the
//   input's first half, commit(); a second transaction sends more, sendOffsets() of the rest and
//   abort()s.
// - The acknowledged base offsets leave one offset for the COMMIT marker; the stored batches are
//   transactional with one control batch per marker.
// - admin.fetchOffsets of the group: the first transaction's offsets, before and after the abort.
// - A consumer with readUncommitted: false (kafkajs's default) reads exactly the committed
//   records; one with readUncommitted: true reads both transactions' records and no control record.
// - Fencing: a second producer with the same transactionalId begins a transaction while the
//   first has one open (its records sent); the first one's commit() is rejected with
//   INVALID_PRODUCER_EPOCH (what Kafka answers the EndTxn v0/v1 kafkajs speaks, for
//   PRODUCER_FENCED); the second commits; readUncommitted: false sees only its records.
//
// Prints "ok"/"FAIL" lines and exits 1 if any check failed.
import {
  BOOTSTRAP, N_PARTITIONS, TIMEOUT_MS, eq, finish, kafkajs, kafkajsVersion, ok, show, sleep, storedBatches, suffix,
  withTimeout,
} from './kafkajs_common.mjs';

const { Kafka, logLevel } = kafkajs;
const PER_PARTITION = 20; // input records per partition; each transaction covers half of them

const kafka = new Kafka({
  clientId: 'esker-compat-kafkajs-txn',
  brokers: [BOOTSTRAP],
  logLevel: logLevel.NOTHING,
});

async function createTopics(admin, topics) {
  const created = await admin.createTopics({
    topics: topics.map((topic) => ({ topic, numPartitions: N_PARTITIONS, replicationFactor: 1 })),
    waitForLeaders: true,
    timeout: TIMEOUT_MS,
  });
  ok(created, `admin.createTopics(${topics.join(', ')}, ${N_PARTITIONS} partitions each)`);
}

const txnProducer = (transactionalId) =>
  kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1, transactionTimeout: 60000 });

// [{ partition, key, value }] for messages `from..to` of partition p of a transaction `tag`.
function batch(tag, from, to) {
  const out = [];
  for (let p = 0; p < N_PARTITIONS; p++) {
    for (let i = from; i < to; i++) out.push({ partition: p, key: `${tag}-${p}-${i}`, value: `${tag} ${p}/${i}` });
  }
  return out;
}

// The base offset per partition of a send() result.
const baseOffsets = (res) => Object.fromEntries(res.map((r) => [r.partition, Number(r.baseOffset)]));

// Reads the topic from the beginning in a fresh group until `want` records, then one more second;
// returns { keys: sorted keys, byKey: { key: [partition, offset] } }.
async function readAll(topic, readUncommitted, want) {
  const consumer = kafka.consumer({ groupId: `js-txn-reader-${suffix()}`, readUncommitted, maxWaitTimeInMs: 200 });
  const byKey = {};
  let count = 0;
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    let reached;
    const done = new Promise((r) => { reached = r; });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        byKey[message.key.toString()] = [partition, Number(message.offset)];
        count++;
        if (count >= want) reached();
      },
    });
    if (want > 0) await withTimeout(done, 30000, `reading ${want} records of ${topic}`);
    await sleep(1000); // nothing more may arrive
  } finally {
    await consumer.disconnect();
  }
  return { keys: Object.keys(byKey).sort(), byKey, count };
}

async function groupOffsets(admin, groupId, topic) {
  const res = await admin.fetchOffsets({ groupId, topics: [topic] });
  const out = {};
  for (const p of res[0].partitions) if (Number(p.offset) >= 0) out[p.partition] = Number(p.offset);
  return out;
}

// Stored layout per partition: merged transactional data batches and COMMIT / ABORT markers.
function checkStored(label, topic, want) {
  const batches = storedBatches(topic);
  if (batches === null) {
    console.log(`  skip - ${label}: ESKER_DATA_DIR not set, stored markers not checked`);
    return;
  }
  const got = {};
  const problems = [];
  for (const b of batches) {
    const rows = (got[b.partition] ||= []);
    if (b.control) {
      rows.push(b.marker);
    } else {
      if (!b.transactional) problems.push(`partition ${b.partition}: non-transactional batch at ${b.baseOffset}`);
      const last = rows[rows.length - 1];
      if (Array.isArray(last)) last[1] += b.count;
      else rows.push(['DATA', b.count]);
    }
  }
  if (show(got) !== show(want)) problems.push(`stored ${show(got)}, expected ${show(want)}`);
  ok(problems.length === 0, `${label}: stored batches are transactional data and control batches ${show(want[0])} per partition`,
    problems.slice(0, 4).join('; '));
}

async function readProcessWrite(admin) {
  const s = suffix();
  const input = `js-txn-in-${s}`;
  const output = `js-txn-out-${s}`;
  const groupId = `js-txn-group-${s}`;
  await createTopics(admin, [input, output]);
  const plain = kafka.producer();
  await plain.connect();
  await plain.send({ topic: input, messages: batch('in', 0, PER_PARTITION) });
  await plain.disconnect();

  const half = PER_PARTITION / 2;
  const offsetsAt = (n) => [{ topic: input, partitions: [0, 1, 2].map((partition) => ({ partition, offset: String(n) })) }];
  const producer = txnProducer(`js-txn-${s}`);
  await producer.connect();
  try {
    let t0 = Date.now();
    const txn1 = await producer.transaction();
    const res1 = await txn1.send({ topic: output, messages: batch('t1', 0, half) });
    await txn1.sendOffsets({ consumerGroupId: groupId, topics: offsetsAt(half) });
    await txn1.commit();
    eq(baseOffsets(res1), { 0: 0, 1: 0, 2: 0 },
      `transaction 1: send() of ${half * N_PARTITIONS} records at base offset 0, sendOffsets(), commit() (${Date.now() - t0} ms)`);
    eq(await groupOffsets(admin, groupId, input), { 0: half, 1: half, 2: half },
      'after the commit, admin.fetchOffsets == the offsets sent with the transaction');

    t0 = Date.now();
    const txn2 = await producer.transaction();
    const res2 = await txn2.send({ topic: output, messages: batch('t2', half, PER_PARTITION) });
    await txn2.sendOffsets({ consumerGroupId: groupId, topics: offsetsAt(PER_PARTITION) });
    await txn2.abort();
    eq(baseOffsets(res2), { 0: half + 1, 1: half + 1, 2: half + 1 },
      `transaction 2: send() at base offset ${half + 1} (offset ${half} is the COMMIT marker), sendOffsets(), abort() (${Date.now() - t0} ms)`);
    eq(await groupOffsets(admin, groupId, input), { 0: half, 1: half, 2: half },
      'after the abort, admin.fetchOffsets is still transaction 1\'s offsets');
  } finally {
    await producer.disconnect();
  }
  const n = PER_PARTITION - half;
  checkStored('read-process-write', output,
    Object.fromEntries([0, 1, 2].map((p) => [p, [['DATA', half], 'COMMIT', ['DATA', n], 'ABORT']])));

  const committedKeys = batch('t1', 0, half).map((m) => m.key).sort();
  const rc = await readAll(output, false, committedKeys.length);
  const offsetsOk = committedKeys.every((k) => rc.byKey[k] && rc.byKey[k][1] === Number(k.split('-')[2]));
  ok(show(rc.keys) === show(committedKeys) && rc.count === committedKeys.length && offsetsOk,
    `consumer({ readUncommitted: false }) read exactly transaction 1's ${committedKeys.length} records at their offsets (${rc.count} read)`,
    `read ${rc.count}: ${show(rc.keys.filter((k) => !committedKeys.includes(k)).slice(0, 3))} extra`);
  const allKeys = [...committedKeys, ...batch('t2', half, PER_PARTITION).map((m) => m.key)].sort();
  const ru = await readAll(output, true, allKeys.length);
  ok(show(ru.keys) === show(allKeys) && ru.count === allKeys.length,
    `consumer({ readUncommitted: true }) read both transactions' ${allKeys.length} records and no control record (${ru.count} read)`);
  await admin.deleteTopics({ topics: [input, output], timeout: TIMEOUT_MS });
}

async function fencing(admin) {
  const s = suffix();
  const topic = `js-txn-fence-${s}`;
  const transactionalId = `js-txn-fence-${s}`;
  await createTopics(admin, [topic]);
  const p1 = txnProducer(transactionalId);
  const p2 = txnProducer(transactionalId);
  await p1.connect();
  await p2.connect();
  try {
    const zombie = await p1.transaction();
    await zombie.send({ topic, messages: batch('zombie', 0, 2) });
    const t0 = Date.now();
    const fresh = await p2.transaction();
    ok(true, `fencing: a second producer with the same transactionalId began a transaction (${Date.now() - t0} ms)`);
    let raised = null;
    try {
      await zombie.commit();
    } catch (e) {
      raised = e;
    }
    ok(raised !== null && (raised.type === 'INVALID_PRODUCER_EPOCH' || raised.type === 'PRODUCER_FENCED'),
      `fencing: the first producer's commit() was rejected (${raised?.name}: ${raised?.type ?? raised?.message})`,
      raised ? `${raised.name} type ${raised.type} code ${raised.code}: ${raised.message}` : 'commit() succeeded');
    await fresh.send({ topic, messages: batch('fresh', 0, 2) });
    await fresh.commit();
    ok(true, 'fencing: the second producer committed its transaction');
  } finally {
    await p1.disconnect();
    await p2.disconnect();
  }
  const want = batch('fresh', 0, 2).map((m) => m.key).sort();
  const rc = await readAll(topic, false, want.length);
  eq(rc.keys, want, 'fencing: readUncommitted: false sees only the second producer\'s records');
  checkStored('fencing', topic, Object.fromEntries([0, 1, 2].map((p) => [p, [['DATA', 2], 'ABORT', ['DATA', 2], 'COMMIT']])));
  await admin.deleteTopics({ topics: [topic], timeout: TIMEOUT_MS });
}

async function main() {
  console.log(`kafkajs ${kafkajsVersion} (node ${process.version}) transactions against ${BOOTSTRAP}`);
  const admin = kafka.admin();
  await admin.connect();
  try {
    for (const [name, fn] of [['read-process-write', readProcessWrite], ['fencing', fencing]]) {
      const t0 = Date.now();
      try {
        await fn(admin);
      } catch (e) {
        ok(false, `${name} round raised`, e.stack);
      }
      console.log(`  (${name} round took ${((Date.now() - t0) / 1000).toFixed(2)}s)`);
    }
  } finally {
    await admin.disconnect();
  }
}

try {
  await main();
} catch (e) {
  ok(false, 'kafkajs transactions scenario raised', e.stack);
}
finish('kafkajs transactions');
