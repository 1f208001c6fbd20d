// SPDX-License-Identifier: MIT
// tests/browser/status_page.test.js - the status page in a real browser (Debian's chromium,
// headless, driven by puppeteer-core): it connects over MQTT on WebSockets, shows the client
// count rising as TCP clients connect and a message rate while a publisher runs; and MQTT.js
// (npm 'mqtt', its browser bundle) runs in the page, publishes, and a TCP subscriber gets it.
//
// Which broker: STATUS_URL=http://host:port/ (the page) with MQTT_TCP=host:port (its plain MQTT
// listener); else BROKER=mosquitto starts Debian's mosquitto (MOSQUITTO, default
// /usr/sbin/mosquitto) with a websockets listener whose http_dir is broker/status; else (the
// default) Starling (STARLING, default build/broker/starling) with a websockets listener and
// 'status_page true', on free 127.0.0.1 ports. SCREENSHOT=path keeps the screenshot (default:
// a temporary directory; docs/status-page.png is taken with SCREENSHOT=../../docs/status-page.png).
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
const STARLING = process.env.STARLING || path.resolve(__dirname, '../../build/broker/starling');
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

// Starts Starling with a plain MQTT listener and a websockets one serving its bundled page.
async function startStarling(dir) {
  const tcp = await freePort(), ws = await freePort();
  const conf = path.join(dir, 'starling.conf');
  fs.writeFileSync(conf, [
    `listener ${tcp} 127.0.0.1`, 'protocol mqtt',
    `listener ${ws} 127.0.0.1`, 'protocol websockets', 'status_page true',
    'allow_anonymous true', 'sys_interval 1', 'log_dest stderr', '',
  ].join('\n'));
  const proc = spawn(STARLING, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  await Promise.all([waitPort(tcp, 5000), waitPort(ws, 5000)]).catch((e) => {
    proc.kill();
    throw new Error(`${e.message}; starling said:\n${log}`);
  });
  return { url: `http://127.0.0.1:${ws}/`, tcp: { host: '127.0.0.1', port: tcp }, stop: () => proc.kill() };
}

async function startBroker(dir) {
  if (process.env.STATUS_URL) {
    const [host, port] = (process.env.MQTT_TCP || '').split(':');
    assert.ok(host && port, 'MQTT_TCP=host:port is needed with STATUS_URL');
    return { url: process.env.STATUS_URL, tcp: { host, port: +port }, stop: () => {} };
  }
  return process.env.BROKER === 'mosquitto' ? startMosquitto(dir) : startStarling(dir);
}

async function launch(t) {
  const puppeteer = require('puppeteer-core');
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
           '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
  t.after(() => browser.close());
  return browser;
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
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'status-page-'));
  const broker = await startBroker(dir);
  t.after(() => broker.stop());
  const browser = await launch(t);
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

// MQTT.js, bundled from npm (node_modules/mqtt/dist/mqtt.min.js), in the page: it publishes
// over ws:// to the page's own origin and a plain TCP subscriber receives the message.
test('MQTT.js in the page publishes to a TCP subscriber', {
  skip: haveChromium ? false : `chromium not found at ${CHROMIUM} (apt-get install chromium)`,
  timeout: 60000,
}, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mqttjs-page-'));
  const broker = await startBroker(dir);
  t.after(() => broker.stop());
  const sub = await mqttClient(broker.tcp, 'browser-test-sub');
  t.after(() => sub.destroy());
  let got = Buffer.alloc(0);
  sub.on('data', (d) => { got = Buffer.concat([got, d]); });
  sub.write(packet(0x82, Buffer.concat([Buffer.from([0, 1]), str('browser/mqttjs'), Buffer.from([1])])));
  const end = Date.now() + 5000;
  while (!got.includes(Buffer.from([0x90, 3, 0, 1]))) {
    assert.ok(Date.now() < end, `no SUBACK: ${got.toString('hex')}`);
    await new Promise((r) => setTimeout(r, 50));
  }

  const browser = await launch(t);
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(broker.url, { waitUntil: 'load' });
  await page.addScriptTag({ path: path.join(__dirname, 'node_modules', 'mqtt', 'dist', 'mqtt.min.js') });
  const wsUrl = broker.url.replace(/^http/, 'ws') + 'mqtt';
  const result = await page.evaluate((url) => new Promise((resolve) => {
    const c = window.mqtt.connect(url, { clientId: 'mqttjs-in-page', reconnectPeriod: 0, protocolVersion: 4 });
    c.on('error', (e) => resolve(`error: ${e.message}`));
    c.on('connect', () => c.publish('browser/mqttjs', 'from MQTT.js in chromium', { qos: 1 }, (err) => {
      c.end();
      resolve(err ? `publish: ${err.message}` : 'published');
    }));
    setTimeout(() => resolve('timed out'), 10000);
  }), wsUrl);
  assert.equal(result, 'published');
  const want = Buffer.from('from MQTT.js in chromium');
  const until = Date.now() + 5000;
  while (!got.includes(want)) {
    assert.ok(Date.now() < until, `the TCP subscriber got nothing: ${got.toString('hex')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual(errors, [], 'no script errors in the page');
});
