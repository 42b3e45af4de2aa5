// The web console in headless Chromium (Debian's `chromium`, driven by playwright-core): a
// broker of its own with an authorizer, a PLAIN super user for the setup (kafkajs) and a SCRAM
// user `alice` (created with confluent-kafka's AdminClient) whose ACLs allow CREATE on topics
// named `web-*` and reading `orders`. The browser logs in as alice, opens a topic, browses
// records (text, JSON, hex; a record holding markup stays text), sees a group's lag change
// after kafkajs commits, creates a topic where allowed and is refused where not, and checks
// the throughput sparklines. Screenshots go to $COMPAT_SCREENSHOTS (default
// $COMPAT_WORK/console-screenshots); their paths are printed.
import { createRequire } from 'node:module';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { kafkajs, ok, eq, finish, sleep, withTimeout } from './kafkajs_common.mjs';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const BROKER_BIN = process.env.BROKER_BIN;
const PY = process.env.COMPAT_PY || 'python3';
const CHROMIUM = process.env.COMPAT_CHROMIUM || '/usr/bin/chromium';
const WORK = fs.mkdtempSync(path.join(process.env.COMPAT_WORK || os.tmpdir(), 'console-'));
const SHOTS = process.env.COMPAT_SCREENSHOTS || path.join(process.env.COMPAT_WORK || WORK, 'console-screenshots');
fs.mkdirSync(SHOTS, { recursive: true });

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function waitPort(port, child, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`broker exited with ${child.exitCode}`);
    const up = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.destroy(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (up) return;
    await sleep(100);
  }
  throw new Error(`port ${port} not open within ${ms} ms`);
}

const shots = [];
async function shot(page, name) {
  const file = path.join(SHOTS, `${String(shots.length + 1).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  shots.push(file);
}

async function main() {
  if (!BROKER_BIN) throw new Error('BROKER_BIN is not set (run through tests/compat/run.sh)');
  const [kafkaPort, httpPort] = [await freePort(), await freePort()];
  const bootstrap = `127.0.0.1:${kafkaPort}`;
  const ui = `http://127.0.0.1:${httpPort}/ui/`;
  const logFile = path.join(WORK, 'broker.log');
  const log = fs.openSync(logFile, 'w');
  const broker = spawn(BROKER_BIN, [
    '-o', `listeners=SASL_PLAINTEXT://${bootstrap}`,
    '-o', `log.dirs=${path.join(WORK, 'data')}`,
    '-o', 'sasl.plain.users=admin:admin-secret',
    '-o', 'authorizer.class.name=StandardAuthorizer',
    '-o', 'super.users=User:admin',
    '-o', `metrics.listener=127.0.0.1:${httpPort}`,
    '-o', 'console.enable=true',
    '-o', 'kinesis.listener=',
    '-o', 'group.initial.rebalance.delay.ms=0',
  ], { stdio: ['ignore', log, log], env: { ...process.env, NO_COLOR: '1', RUST_LOG: 'info' } });
  console.log(`  broker: ${bootstrap}, console ${ui} (log ${logFile})`);
  let browser;
  try {
    await waitPort(kafkaPort, broker, 30000);
    await waitPort(httpPort, broker, 30000);

    // Setup as the super user: SCRAM user alice, ACLs, topics, records, a group's offsets.
    execFileSync(PY, ['-c', `
import sys
from confluent_kafka.admin import AdminClient, UserScramCredentialUpsertion, ScramCredentialInfo, ScramMechanism
a = AdminClient({"bootstrap.servers": sys.argv[1], "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                 "sasl.username": "admin", "sasl.password": "admin-secret"})
up = UserScramCredentialUpsertion("alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"alice-secret")
for f in a.alter_user_scram_credentials([up]).values():
    f.result(timeout=20)
`, bootstrap], { stdio: 'inherit' });
    ok(true, 'confluent-kafka AdminClient created SCRAM user alice');
    const kafka = new kafkajs.Kafka({
      clientId: 'console-test', brokers: [bootstrap], logLevel: kafkajs.logLevel.NOTHING,
      sasl: { mechanism: 'plain', username: 'admin', password: 'admin-secret' },
    });
    const admin = kafka.admin();
    await admin.connect();
    const { AclResourceTypes: RT, AclOperationTypes: OP, AclPermissionTypes: PERM, ResourcePatternTypes: PAT } = kafkajs;
    const acl = (resourceType, resourceName, operation, pattern = PAT.LITERAL) => ({
      resourceType, resourceName, resourcePatternType: pattern, principal: 'User:alice', host: '*',
      operation, permissionType: PERM.ALLOW,
    });
    await admin.createAcls({ acl: [
      acl(RT.TOPIC, 'web-', OP.CREATE, PAT.PREFIXED),
      acl(RT.TOPIC, 'web-', OP.DESCRIBE, PAT.PREFIXED),
      acl(RT.TOPIC, 'orders', OP.READ),
      acl(RT.GROUP, 'web-', OP.DESCRIBE, PAT.PREFIXED),
    ] });
    await admin.createTopics({ topics: [
      { topic: 'orders', numPartitions: 2 }, { topic: 'secret-ledger', numPartitions: 1 },
    ], waitForLeaders: true });
    const producer = kafka.producer();
    await producer.connect();
    const messages = [];
    for (let i = 0; i < 20; i++) {
      messages.push({ partition: 0, key: `order-${i}`, value: JSON.stringify({ id: i, item: 'book', qty: i % 3 + 1 }),
        headers: { source: 'console-test' } });
    }
    messages.push({ partition: 0, key: 'xss', value: '<img src=x onerror="alert(1)"><script>alert(2)</script>' });
    await producer.send({ topic: 'orders', messages });
    await producer.disconnect();
    const setOffset = (offset) => admin.setOffsets({ groupId: 'web-group', topic: 'orders',
      partitions: [{ partition: 0, offset: String(offset) }] });
    await setOffset(5);
    ok(true, 'kafkajs: ACLs, topics, 21 records, group web-group committed at offset 5');

    // The browser.
    // A fresh profile (--user-data-dir, which Playwright passes for a persistent context).
    browser = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(WORK, 'chromium-')), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 800 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = browser.pages()[0] || await browser.newPage();
    const dialogs = [];
    page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
    const cspErrors = [];
    page.on('console', (m) => { if (m.type() === 'error') cspErrors.push(m.text()); });

    // Log in.
    await page.goto(ui);
    await page.waitForSelector('#login-form', { state: 'visible', timeout: 10000 });
    await page.fill('#login-user', 'alice');
    await page.fill('#login-password', 'wrong');
    await page.click('#login-submit');
    await page.waitForFunction(() => document.getElementById('login-error').textContent.includes('Wrong'), null, { timeout: 10000 });
    ok(true, 'a wrong password is refused on the login form');
    await shot(page, 'login');
    await page.fill('#login-password', 'alice-secret');
    await page.click('#login-submit');
    await page.waitForSelector('#principal', { timeout: 10000 });
    eq(await page.textContent('#principal'), 'User:alice', 'logged in as User:alice');
    await page.waitForSelector('a.topic-link[data-topic="orders"]', { timeout: 10000 });
    const listed = await page.$$eval('a.topic-link', (as) => as.map((a) => a.textContent));
    eq(listed, ['orders'], 'topics list: only what alice may describe (not secret-ledger)');
    await shot(page, 'topics');

    // Open a topic, browse records.
    await page.click('a.topic-link[data-topic="orders"]');
    await page.waitForSelector('#topic-name', { timeout: 10000 });
    const p0 = await page.$$eval('main table tbody tr', (rows) => rows[0].textContent);
    ok(p0.includes('21'), 'topic page: partition 0 ends at offset 21', p0);
    await shot(page, 'topic');
    await page.click('#browse');
    await page.waitForSelector('#records tbody tr', { timeout: 10000 });
    await page.fill('#from-offset', '0');
    await page.fill('#limit', '25');
    await page.click('#browse-submit');
    await page.waitForFunction(() => document.querySelector('#records tbody tr td')?.textContent === '0', null, { timeout: 10000 });
    const rows = await page.$$eval('#records tbody tr', (trs) => trs.map((tr) => Array.from(tr.cells).map((c) => c.textContent)));
    eq(rows.length, 21, 'records page from offset 0: 21 records');
    eq(rows[3][2], 'order-3', 'record 3 key as text');
    ok(rows[3][3].includes('"item":"book"'), 'record 3 value as text', rows[3][3]);
    ok(rows[3][4].includes('source: console-test'), 'record headers shown', rows[3][4]);
    ok(rows[20][3].includes('<script>alert(2)</script>'), 'markup in a record is shown as text', rows[20][3]);
    eq(await page.$$eval('#records img, #records script', (x) => x.length), 0, 'no element created from record contents');
    await page.selectOption('#mode', 'json');
    await page.waitForFunction(() => document.querySelector('#records tbody tr td:nth-child(4) pre')?.textContent.includes('\n  "id": 0'), null, { timeout: 10000 });
    ok(true, 'JSON mode pretty-prints values');
    await shot(page, 'records-json');
    await page.selectOption('#mode', 'hex');
    await page.waitForFunction(() => document.querySelector('#records tbody tr td:nth-child(3) pre')?.textContent.startsWith('000000  6f 72 64'), null, { timeout: 10000 });
    ok(true, 'hex mode dumps bytes');
    // From a time: a moment in the future gives an empty page at the end.
    await page.fill('#from-offset', '');
    await page.fill('#from-time', '2099-01-01T00:00:00');
    await page.click('#browse-submit');
    await page.waitForFunction(() => document.querySelectorAll('#records tbody tr td.muted').length === 1, null, { timeout: 10000 });
    ok(true, 'browsing from a time after the last record shows none');
    await page.selectOption('#mode', 'text');

    // A group's lag changes after a commit.
    await page.goto(`${ui}#/group/web-group`);
    await page.waitForSelector('#group-lag', { timeout: 10000 });
    eq(await page.textContent('#group-lag'), '16', 'group web-group: lag 21 - 5 = 16');
    await shot(page, 'group-before');
    await setOffset(18);
    let lagAfter = null;
    for (let i = 0; i < 50 && lagAfter !== '3'; i++) {
      await page.reload();
      await page.waitForSelector('#group-lag', { timeout: 10000 });
      lagAfter = await page.textContent('#group-lag');
      if (lagAfter !== '3') await sleep(200);
    }
    eq(lagAfter, '3', 'after kafkajs commits offset 18 the page shows lag 3');
    await shot(page, 'group-after');
    await page.goto(`${ui}#/groups`);
    await page.waitForSelector('.group-lag[data-group="web-group"]', { timeout: 10000 });
    eq(await page.textContent('.group-lag[data-group="web-group"]'), '3', 'groups list shows the lag too');

    // Create a topic where allowed, be refused where not.
    await page.goto(`${ui}#/topics`);
    await page.waitForSelector('#create-topic', { timeout: 10000 });
    await page.fill('#new-topic-name', 'forbidden-x');
    await page.click('#create-submit');
    await page.waitForFunction(() => document.getElementById('create-result')?.textContent.startsWith('Not allowed'), null, { timeout: 10000 });
    ok(true, 'creating forbidden-x is refused (403)');
    await shot(page, 'create-refused');
    const topicsNow = (await admin.listTopics()).sort();
    ok(!topicsNow.includes('forbidden-x'), 'forbidden-x does not exist', JSON.stringify(topicsNow));
    await page.fill('#new-topic-name', 'web-clicks');
    await page.fill('#new-topic-partitions', '3');
    await page.fill('#new-topic-configs', 'retention.ms=3600000');
    await page.click('#create-submit');
    await page.waitForFunction(() => document.getElementById('topic-name')?.textContent === 'web-clicks', null, { timeout: 10000 });
    const meta = await admin.fetchTopicMetadata({ topics: ['web-clicks'] });
    eq(meta.topics[0].partitions.length, 3, 'web-clicks created with 3 partitions (kafkajs sees it)');
    await shot(page, 'create-allowed');

    // Sparklines from the broker's counters, and pages alice may not see.
    await page.waitForSelector('#spark figure[data-series="bytes_in"] polyline', { timeout: 15000 });
    ok(true, 'throughput sparklines drawn');
    await page.goto(`${ui}#/security`);
    await page.waitForSelector('.notice.error', { timeout: 10000 });
    ok((await page.textContent('.notice.error')).includes('Not allowed'), 'ACLs page refused for alice');
    await page.goto(`${ui}#/topic/orders/0?offset=10&limit=8&mode=text`);
    await page.waitForFunction(() => document.querySelector('#records tbody tr td')?.textContent === '10', null, { timeout: 10000 });
    // Some traffic for the screenshot's sparklines (samples every 2 s).
    const busy = kafka.producer();
    await busy.connect();
    for (let i = 0; i < 12; i++) {
      await busy.send({ topic: 'web-clicks', messages: Array.from({ length: 20 * (i % 4 + 1) }, (_, j) => ({ value: `click ${i}-${j}` })) });
      await sleep(500);
    }
    await busy.disconnect();
    await shot(page, 'records');
    fs.copyFileSync(shots[shots.length - 1], path.join(SHOTS, 'console.png'));
    eq(dialogs, [], 'no script ran from record contents (no dialogs)');
    ok(!cspErrors.some((e) => e.includes('Content Security Policy')), 'no CSP violations', cspErrors.join('; '));
    await admin.disconnect();
  } finally {
    if (browser) await browser.close();
    broker.kill('SIGTERM');
    const code = await withTimeout(new Promise((r) => broker.on('exit', (c) => r(c))), 30000, 'broker exit')
      .catch(() => { broker.kill('SIGKILL'); return -1; });
    eq(code, 0, 'console broker exits 0 on SIGTERM');
    const text = fs.readFileSync(logFile, 'utf8');
    ok(text.includes('esker::audit') && text.includes('CreateTopic'), 'console changes are audited in the broker log');
    ok(!/^\S+\s+ERROR/m.test(text.replace(/\x1b\[[0-9;]*m/g, '')), 'console broker logged no ERROR');
    for (const f of shots) console.log(`  screenshot: ${f}`);
  }
}

main().then(() => finish('console_test'), (e) => {
  ok(false, 'console scenario', e.stack || String(e));
  finish('console_test');
});
