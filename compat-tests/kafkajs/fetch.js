// kafkajs fetching by partition and offset. kafkajs's public consumer only
// works through consumer groups (not served yet), so this drives the same
// cluster and broker objects its consumer uses internally — the real
// kafkajs Fetch encoding, decoding and decompression — from a given offset.
// Prints one JSON line: the records read per partition.
const { Kafka, logLevel } = require("kafkajs");

async function main() {
  const [bootstrap, topic, partitions, perPartition] = [
    process.argv[2],
    process.argv[3],
    Number(process.argv[4]),
    Number(process.argv[5]),
  ];
  const kafka = new Kafka({ clientId: "sluice-compat-fetch", brokers: [bootstrap], logLevel: logLevel.ERROR });
  const createCluster = Object.getOwnPropertySymbols(kafka).find(
    (s) => s.description === "private:Kafka:createCluster"
  );
  const cluster = kafka[createCluster]({ metadataMaxAge: 300000, allowAutoTopicCreation: false, isolationLevel: 1 });
  await cluster.connect();
  await cluster.addTargetTopic(topic);
  const out = {};
  for (let p = 0; p < partitions; p++) {
    const leaders = cluster.findLeaderForPartitions(topic, [p]);
    const broker = await cluster.findBroker({ nodeId: Object.keys(leaders)[0] });
    const records = [];
    let offset = 0;
    while (records.length < perPartition) {
      const resp = await broker.fetch({
        replicaId: -1,
        isolationLevel: 1,
        maxWaitTime: 1000,
        minBytes: 1,
        maxBytes: 1 << 20,
        topics: [{ topic, partitions: [{ partition: p, fetchOffset: String(offset), maxBytes: 64 * 1024 }] }],
      });
      const part = resp.responses[0].partitions[0];
      if (part.errorCode !== 0) throw new Error(`fetch error ${part.errorCode}`);
      for (const m of part.messages) {
        if (Number(m.offset) < offset) continue; // a batch may start before the fetch offset
        records.push({ offset: Number(m.offset), key: m.key.toString(), value: m.value.toString(), idx: m.headers.idx.toString() });
        offset = Number(m.offset) + 1;
      }
    }
    out[p] = records;
  }
  await cluster.disconnect();
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
