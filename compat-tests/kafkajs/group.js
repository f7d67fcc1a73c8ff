// kafkajs consumer group: consume N records with auto-commit, then read the
// group's committed offset back with the admin client. Prints one JSON line.
const { Kafka, logLevel } = require("kafkajs");

async function main() {
  const [bootstrap, topic, count] = [process.argv[2], process.argv[3], Number(process.argv[4])];
  const kafka = new Kafka({ clientId: "sluice-compat-group", brokers: [bootstrap], logLevel: logLevel.ERROR });
  const consumer = kafka.consumer({ groupId: "js", sessionTimeout: 6000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const values = [];
  await new Promise((resolve, reject) => {
    consumer.run({
      eachMessage: async ({ message }) => {
        values.push(message.value.toString());
        if (values.length === count) resolve();
      },
    }).catch(reject);
  });
  await consumer.disconnect(); // commits what was consumed
  const admin = kafka.admin();
  await admin.connect();
  const [{ partitions }] = await admin.fetchOffsets({ groupId: "js", topics: [topic] });
  await admin.disconnect();
  console.log(JSON.stringify({ values, committed: partitions[0].offset }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
