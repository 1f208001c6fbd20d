// SPDX-License-Identifier: MIT
// tests/integration/mqttjs_ws.js URL - MQTT.js (npm 'mqtt', from tests/browser) over ws://:
// connects, subscribes to js/in, publishes QoS 1 to js/in and js/out, prints the echo it gets
// back and exits 0; exits 1 on any error or after 10 s. Run by test_ws.py.
'use strict';
const mqtt = require('mqtt');

const url = process.argv[2];
const timer = setTimeout(() => { console.error('timed out'); process.exit(1); }, 10000);
const c = mqtt.connect(url, { clientId: 'mqttjs-ws', protocolVersion: 4, reconnectPeriod: 0 });
c.on('error', (e) => { console.error(`error: ${e.message}`); process.exit(1); });
c.on('connect', () => {
  c.subscribe('js/in', { qos: 1 }, (err) => {
    if (err) { console.error(`subscribe: ${err.message}`); process.exit(1); }
    c.publish('js/in', 'hello from MQTT.js', { qos: 1 });
    c.publish('js/out', 'hello from MQTT.js', { qos: 1 });
  });
});
c.on('message', (topic, payload) => {
  console.log(`echo: ${payload.toString()}`);
  clearTimeout(timer);
  c.end(false, {}, () => process.exit(0));
});
