// SPDX-License-Identifier: MIT
// tests/browser/status_page.test.js - the status page in a real browser (Debian's chromium,
// headless, driven by puppeteer-core): it connects over MQTT on WebSockets, shows the client
// count rising as TCP clients connect and a message rate while a publisher runs.
//
// Which broker: STATUS_URL=http://host:port/ (the page) with MQTT_TCP=host:port (its plain MQTT
// listener); without them, the test starts Debian's mosquitto (MOSQUITTO, default
// /usr/sbin/mosquitto) on free 127.0.0.1 ports with a websockets listener whose http_dir is
// broker/status. SCREENSHOT=path keeps the screenshot (default: a temporary directory).
// Run: cd tests/browser && npm ci && node --test
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const MOSQUITTO = process.env.MOSQUITTO || '/usr/sbin/mosquitto';
const STATUS_DIR = path.resolve(__dirname, '../../broker/status');

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function waitPort(port, ms) {
  const end = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const c = net.connect(port, '127.0.0.1', () => { c.destroy(); resolve(); });
      c.on('error', () => (Date.now() > end ? reject(new Error(`port ${port} not open`)) : setTimeout(attempt, 100)));
    };
    attempt();
  });
}

// Starts mosquitto with a plain MQTT listener and a websockets one serving broker/status.
async function startMosquitto(dir) {
  const tcp = await freePort(), ws = await freePort();
  const conf = path.join(dir, 'mosquitto.conf');
  fs.writeFileSync(conf, [
    `listener ${tcp} 127.0.0.1`, 'protocol mqtt',
    `listener ${ws} 127.0.0.1`, 'protocol websockets', `http_dir ${STATUS_DIR}`,
    'allow_anonymous true', 'sys_interval 1', 'persistence false', 'log_dest stderr', '',
  ].join('\n'));
  const proc = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  await Promise.all([waitPort(tcp, 5000), waitPort(ws, 5000)]).catch((e) => {
    proc.kill();
    throw new Error(`${e.message}; mosquitto said:\n${log}`);
  });
  return { url: `http://127.0.0.1:${ws}/`, tcp: { host: '127.0.0.1', port: tcp }, stop: () => proc.kill() };
}

// A minimal MQTT 3.1.1 client on TCP: CONNECT, then optionally PUBLISH QoS 0 in a loop.
function str(s) { const b = Buffer.from(s); return Buffer.concat([Buffer.from([b.length >> 8, b.length & 255]), b]); }
function packet(type, body) {
  const len = []; let n = body.length;
  do { let b = n % 128; n = Math.floor(n / 128); if (n) b |= 128; len.push(b); } while (n);
  return Buffer.concat([Buffer.from([type, ...len]), body]);
}
function mqttClient({ host, port }, id) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, host);
    sock.on('error', reject);
    sock.once('data', (d) => (d[0] === 0x20 && d[3] === 0 ? resolve(sock) : reject(new Error(`CONNACK ${d.toString('hex')}`))));
    sock.write(packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([4, 2, 0, 60]), str(id)])));
  });
}

async function pageText(page, id) { return page.$eval(`#${id}`, (e) => e.textContent.trim()); }

// Polls until cond(text of #id) holds; fails with the last text seen.
async function waitText(page, id, cond, ms, what) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await pageText(page, id);
    if (cond(last)) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`${what}: #${id} still shows "${last}" after ${ms} ms`);
}

const toNum = (t) => parseFloat(t.replace(/,/g, '').replace(/k$/, 'e3').replace(/M$/, 'e6'));

const haveChromium = fs.existsSync(CHROMIUM);
test('status page shows live clients and message rates', {
  skip: haveChromium ? false : `chromium not found at ${CHROMIUM} (apt-get install chromium)`,
  timeout: 120000,
}, async (t) => {
  const puppeteer = require('puppeteer-core');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'status-page-'));
  let broker;
  if (process.env.STATUS_URL) {
    const [host, port] = (process.env.MQTT_TCP || '').split(':');
    assert.ok(host && port, 'MQTT_TCP=host:port is needed with STATUS_URL');
    broker = { url: process.env.STATUS_URL, tcp: { host, port: +port }, stop: () => {} };
  } else {
    broker = await startMosquitto(dir);
  }
  t.after(() => broker.stop());

  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
           '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
  t.after(() => browser.close());
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.setViewport({ width: 1280, height: 900 });
  await page.goto(broker.url, { waitUntil: 'load' });

  await waitText(page, 'state', (s) => s === 'Live', 15000, 'the page connects over MQTT on WebSockets');
  const base = toNum(await waitText(page, 'clients', (s) => toNum(s) >= 1, 15000, 'the page counts itself'));

  const clients = [];
  t.after(() => clients.forEach((c) => c.destroy()));
  for (let i = 0; i < 5; i++) clients.push(await mqttClient(broker.tcp, `browser-test-${i}`));
  await waitText(page, 'clients', (s) => toNum(s) >= base + 5, 15000, 'five more clients show up');

  // a publisher at about 200 messages per second until the page shows a rate
  const pub = await mqttClient(broker.tcp, 'browser-test-pub');
  clients.push(pub);
  const msg = packet(0x30, Buffer.concat([str('test/rate'), Buffer.alloc(64, 0x61)]));
  const timer = setInterval(() => { for (let i = 0; i < 20; i++) pub.write(msg); }, 100);
  t.after(() => clearInterval(timer));
  await waitText(page, 'msgIn', (s) => toNum(s) >= 50, 20000, 'the message rate in');
  await waitText(page, 'bytesIn', (s) => /\d/.test(s), 5000, 'the byte rate in');
  await new Promise((r) => setTimeout(r, 3000)); // a few points on the charts
  clearInterval(timer);

  const shot = process.env.SCREENSHOT || path.join(dir, 'status.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(fs.statSync(shot).size > 10000, 'a screenshot was written');
  t.diagnostic(`screenshot: ${shot}`);
  assert.deepEqual(errors, [], 'no script errors in the page');
});
