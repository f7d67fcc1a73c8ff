// kafkajs (pure JavaScript client) against a live broker: create a topic,
// produce with acks=-1 and gzip, and read offsets back with ListOffsets.
// Prints one JSON line that the pytest suite checks.
const { Kafka, CompressionTypes, logLevel } = require("kafkajs");

async function main() {
  const [bootstrap, topic, count] = [process.argv[2], process.argv[3], Number(process.argv[4])];
  const kafka = new Kafka({ clientId: "sluice-compat", brokers: [bootstrap], logLevel: logLevel.ERROR });
  const admin = kafka.admin();
  await admin.connect();
  const created = await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });

  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const baseOffsets = [];
  for (let start = 0; start < count; start += 100) {
    const messages = [];
    for (let i = start; i < Math.min(start + 100, count); i++) {
      messages.push({ key: `k${i}`, value: `v${i}`, partition: i % 2, headers: { idx: String(i) } });
    }
    const res = await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages });
    baseOffsets.push(...res.map((r) => ({ partition: r.partition, baseOffset: Number(r.baseOffset), error: r.errorCode })));
  }
  const offsets = await admin.fetchTopicOffsets(topic);
  const byTime = await admin.fetchTopicOffsetsByTimestamp(topic, Date.now() + 3600_000);
  await producer.disconnect();
  await admin.disconnect();
  console.log(JSON.stringify({ created, baseOffsets, offsets, byTime }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
