// kafkajs transactions (its documented API): a transactional producer
// commits one transaction and aborts another, then one consume-transform-
// produce step commits consumer offsets with sendOffsets. A read_committed
// consumer (kafkajs defaults to it) reads the output back.
// Prints one JSON line that the pytest suite checks.
const { Kafka, logLevel } = require("kafkajs");

async function main() {
  const bootstrap = process.argv[2];
  const kafka = new Kafka({ clientId: "sluice-compat-txn", brokers: [bootstrap], logLevel: logLevel.ERROR });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: "js-txn" }], waitForLeaders: true });

  const producer = kafka.producer({ transactionalId: "js-txn-1", maxInFlightRequests: 1, idempotent: true });
  await producer.connect();
  let txn = await producer.transaction();
  await txn.send({ topic: "js-txn", messages: [{ value: "committed-1" }, { value: "committed-2" }] });
  await txn.commit();

  txn = await producer.transaction();
  await txn.send({ topic: "js-txn", messages: [{ value: "aborted" }] });
  await txn.abort();

  txn = await producer.transaction();
  await txn.send({ topic: "js-txn", messages: [{ value: "with-offsets" }] });
  await txn.sendOffsets({
    consumerGroupId: "js-txn-group",
    topics: [{ topic: "js-txn", partitions: [{ partition: 0, offset: "3" }] }],
  });
  await txn.commit();
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: "js-txn-reader" });
  await consumer.connect();
  await consumer.subscribe({ topic: "js-txn", fromBeginning: true });
  const values = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, 15000);
    consumer
      .run({
        eachMessage: async ({ message }) => {
          values.push(message.value.toString());
          if (values.length === 3) {
            clearTimeout(timer);
            setTimeout(resolve, 1000); // anything more would be a bug
          }
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  const committed = await admin.fetchOffsets({ groupId: "js-txn-group", topics: ["js-txn"] });
  await admin.disconnect();
  console.log(JSON.stringify({ values, committed: committed[0].partitions.map((p) => Number(p.offset)) }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
