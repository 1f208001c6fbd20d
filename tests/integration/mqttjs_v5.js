// SPDX-License-Identifier: MIT
// tests/integration/mqttjs_v5.js URL - MQTT.js (npm 'mqtt', from tests/browser) as an MQTT 5
// client: CONNECT properties, a subscription with a Subscription Identifier, a QoS 1 PUBLISH
// with User Properties, Content Type, Response Topic and Correlation Data, then one through a
// Topic Alias. Prints one JSON line of what came back ({connack, messages}) and exits 0;
// exits 1 on any error or after 10 s. Run by test_v5.py.
'use strict';
const mqtt = require('mqtt');

const url = process.argv[2];
const timer = setTimeout(() => { console.error('timed out'); process.exit(1); }, 10000);
const c = mqtt.connect(url, {
  clientId: 'mqttjs-v5', protocolVersion: 5, reconnectPeriod: 0, clean: true,
  properties: { sessionExpiryInterval: 30, receiveMaximum: 10, topicAliasMaximum: 5,
                requestProblemInformation: true, userProperties: { from: 'mqtt.js' } },
});
const out = { connack: null, messages: [] };
c.on('error', (e) => { console.error(`error: ${e.message}`); process.exit(1); });
c.on('connect', (connack) => {
  out.connack = { reasonCode: connack.reasonCode, properties: connack.properties || {} };
  c.subscribe('js5/#', { qos: 1, properties: { subscriptionIdentifier: 7 } }, (err, granted) => {
    if (err) { console.error(`subscribe: ${err.message}`); process.exit(1); }
    out.granted = granted.map((g) => g.qos);
    c.publish('js5/a', 'first', {
      qos: 1,
      properties: { userProperties: { k: 'v' }, contentType: 'text/plain',
                    responseTopic: 'js5/reply', correlationData: Buffer.from('c-1') },
    }, (e) => {
      if (e) { console.error(`publish: ${e.message}`); process.exit(1); }
      // the alias is set with the topic, then used with an empty one
      c.publish('js5/b', 'aliased-1', { qos: 1, properties: { topicAlias: 1 } });
      c.publish('', 'aliased-2', { qos: 1, properties: { topicAlias: 1 } });
    });
  });
});
c.on('message', (topic, payload, packet) => {
  const p = packet.properties || {};
  out.messages.push({ topic, payload: payload.toString(), qos: packet.qos,
                      userProperties: p.userProperties || null,
                      contentType: p.contentType || null, responseTopic: p.responseTopic || null,
                      correlationData: p.correlationData ? p.correlationData.toString() : null,
                      subscriptionIdentifier: p.subscriptionIdentifier || null });
  if (out.messages.length === 3) {
    console.log(JSON.stringify(out));
    clearTimeout(timer);
    c.end(false, {}, () => process.exit(0));
  }
});
