// Kafka's own command-line tools (kafka-tools 4.4, each in its own JVM as
// bin/ runs it), with their output read the way a person reads it: the
// leader, the lag, the new config, the low watermark.
package dev.sluice.compat;

import static dev.sluice.compat.Clients.admin;
import static dev.sluice.compat.Clients.consumer;
import static dev.sluice.compat.Clients.fill;
import static dev.sluice.compat.Clients.poll;
import static dev.sluice.compat.Clients.producer;
import static dev.sluice.compat.Clients.topic;
import static dev.sluice.compat.Clients.unique;
import static dev.sluice.compat.Tool.ok;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sluice.compat.Brokers.Broker;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;

class ToolsTest {
  static final String TOPICS = "org.apache.kafka.tools.TopicCommand";
  static final String GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
  static final String CONFIGS = "org.apache.kafka.tools.ConfigCommand";
  static final String TXNS = "org.apache.kafka.tools.TransactionsCommand";

  static int nodeId(Broker broker) throws Exception {
    try (Admin admin = admin(broker)) {
      return admin.describeCluster().nodes().get().iterator().next().id();
    }
  }

  static String field(String text, String regex) {
    Matcher m = Pattern.compile(regex).matcher(text);
    assertTrue(m.find(), "no " + regex + " in:\n" + text);
    return m.group(1);
  }

  @OnBoth
  void topicsAreCreatedDescribedAlteredAndDeleted(Broker broker) throws Exception {
    String b = broker.bootstrap();
    String name = unique("tool-topic");
    String created = ok(TOPICS, null, "--bootstrap-server", b, "--create", "--topic", name, "--partitions", "2",
        "--replication-factor", "1", "--config", "retention.ms=7200000");
    assertTrue(created.contains("Created topic " + name + "."), created);
    assertTrue(ok(TOPICS, null, "--bootstrap-server", b, "--list").lines().anyMatch(name::equals));

    ok(TOPICS, null, "--bootstrap-server", b, "--alter", "--topic", name, "--partitions", "3");
    String described = ok(TOPICS, null, "--bootstrap-server", b, "--describe", "--topic", name);
    assertEquals("3", field(described, "PartitionCount: (\\d+)"), described);
    assertEquals("1", field(described, "ReplicationFactor: (\\d+)"));
    assertTrue(described.contains("retention.ms=7200000"), described);
    String leader = String.valueOf(nodeId(broker));
    for (int p = 0; p < 3; p++) {
      String row = field(described, "(Partition: " + p + "\\s.*)");
      assertEquals(leader, field(row, "Leader: (\\d+)"), row);
      assertEquals(leader, field(row, "Isr: (\\d+)"), row);
    }

    ok(TOPICS, null, "--bootstrap-server", b, "--delete", "--topic", name);
    Tool.Run gone = Tool.run(TOPICS, null, "--bootstrap-server", b, "--describe", "--topic", name);
    assertEquals(1, gone.exit(), gone.toString());
    assertTrue(gone.err().contains("Topic '" + name + "' does not exist"), gone.toString());
  }

  @OnBoth
  void theConsoleProducerAndConsumerRoundTripKeyedRecords(Broker broker) {
    String b = broker.bootstrap();
    String name = topic(broker, "tool-console", 1);
    ok("org.apache.kafka.tools.ConsoleProducer", "a:one\nb:two\nc:three\n", "--bootstrap-server", b, "--topic", name,
        "--reader-property", "parse.key=true", "--reader-property", "key.separator=:");
    String read = ok("org.apache.kafka.tools.consumer.ConsoleConsumer", null, "--bootstrap-server", b, "--topic", name,
        "--from-beginning", "--max-messages", "3", "--formatter-property", "print.key=true", "--formatter-property",
        "key.separator=="
        , "--timeout-ms", "30000");
    assertEquals(List.of("a=one", "b=two", "c=three"), read.lines().toList());
  }

  @OnBoth
  void consumerGroupsShowLagResetOffsetsAndDelete(Broker broker) throws Exception {
    String b = broker.bootstrap();
    String name = topic(broker, "tool-groups", 1);
    fill(broker, name, 1, 10);
    String group = unique("tool-group");
    try (KafkaConsumer<String, String> c = consumer(broker, group, Map.of())) {
      c.subscribe(List.of(name));
      poll(c, 10);
      c.commitSync(Map.of(new TopicPartition(name, 0), new OffsetAndMetadata(7)));
    }
    String described = ok(GROUPS, null, "--bootstrap-server", b, "--describe", "--group", group);
    String row = described.lines().filter(l -> l.contains(name)).findFirst().orElseThrow(() -> new AssertionError(described));
    List<String> cells = Arrays.asList(row.trim().split("\\s+"));
    // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
    assertEquals(List.of(group, name, "0", "7", "10", "3"), cells.subList(0, 6), described);
    assertTrue(ok(GROUPS, null, "--bootstrap-server", b, "--list").lines().anyMatch(group::equals));

    String reset = ok(GROUPS, null, "--bootstrap-server", b, "--reset-offsets", "--group", group, "--topic", name,
        "--to-earliest", "--execute");
    String resetRow = reset.lines().filter(l -> l.contains(name)).findFirst().orElseThrow(() -> new AssertionError(reset));
    assertEquals("0", resetRow.trim().split("\\s+")[3], reset);
    try (Admin admin = admin(broker)) {
      assertEquals(
          0, admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get().get(new TopicPartition(name, 0)).offset());
    }
    String deleted = ok(GROUPS, null, "--bootstrap-server", b, "--delete", "--group", group);
    assertTrue(deleted.contains("Deletion of requested consumer groups ('" + group + "') was successful."), deleted);
  }

  @OnBoth
  void configsAreDescribedAndAltered(Broker broker) {
    String b = broker.bootstrap();
    String name = topic(broker, "tool-configs", 1);
    ok(CONFIGS, null, "--bootstrap-server", b, "--alter", "--entity-type", "topics", "--entity-name", name,
        "--add-config", "retention.ms=1234567,cleanup.policy=compact");
    String described = ok(CONFIGS, null, "--bootstrap-server", b, "--describe", "--entity-type", "topics",
        "--entity-name", name);
    assertTrue(described.contains("retention.ms=1234567"), described);
    assertTrue(described.contains("cleanup.policy=compact"), described);
    ok(CONFIGS, null, "--bootstrap-server", b, "--alter", "--entity-type", "topics", "--entity-name", name,
        "--delete-config", "retention.ms");
    String after = ok(CONFIGS, null, "--bootstrap-server", b, "--describe", "--entity-type", "topics",
        "--entity-name", name);
    assertTrue(!after.contains("retention.ms") && after.contains("cleanup.policy=compact"), after);
  }

  @OnBoth
  void offsetsAreReadAndRecordsDeleted(Broker broker, @org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
    String b = broker.bootstrap();
    String name = topic(broker, "tool-offsets", 1);
    fill(broker, name, 1, 10);
    assertEquals(name + ":0:10", ok("org.apache.kafka.tools.GetOffsetShell", null, "--bootstrap-server", b,
        "--topic", name).strip());
    Path json = tmp.resolve("delete.json");
    Files.writeString(json, "{\"partitions\":[{\"topic\":\"" + name + "\",\"partition\":0,\"offset\":4}],\"version\":1}");
    String deleted = ok("org.apache.kafka.tools.DeleteRecordsCommand", null, "--bootstrap-server", b,
        "--offset-json-file", json.toString());
    assertEquals("4", field(deleted, name + "-0\\s+low_watermark: (\\d+)"), deleted);
    assertEquals(name + ":0:4", ok("org.apache.kafka.tools.GetOffsetShell", null, "--bootstrap-server", b,
        "--topic", name, "--time", "-2").strip());
  }

  @OnBoth
  void leaderElectionAndReassignment(Broker broker, @org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
    String b = broker.bootstrap();
    String name = topic(broker, "tool-leaders", 1);
    int id = nodeId(broker);
    String elected = ok("org.apache.kafka.tools.LeaderElectionCommand", null, "--bootstrap-server", b,
        "--election-type", "preferred", "--topic", name, "--partition", "0");
    assertTrue(elected.contains("Valid replica already elected for partitions " + name + "-0"), elected);

    Path plan = tmp.resolve("plan.json");
    Files.writeString(plan, "{\"version\":1,\"partitions\":[{\"topic\":\"" + name + "\",\"partition\":0,\"replicas\":[" + id
        + "],\"log_dirs\":[\"any\"]}]}");
    String executed = ok("org.apache.kafka.tools.reassign.ReassignPartitionsCommand", null, "--bootstrap-server", b,
        "--reassignment-json-file", plan.toString(), "--execute");
    assertTrue(executed.contains("Successfully started partition reassignment for " + name + "-0"), executed);
    String verified = ok("org.apache.kafka.tools.reassign.ReassignPartitionsCommand", null, "--bootstrap-server", b,
        "--reassignment-json-file", plan.toString(), "--verify");
    assertTrue(verified.contains("Reassignment of partition " + name + "-0 is completed."), verified);
  }

  @OnBoth
  void transactionsAreListedAndDescribed(Broker broker) throws Exception {
    String b = broker.bootstrap();
    String name = topic(broker, "tool-txn", 1);
    String id = unique("tool-txn");
    try (KafkaProducer<String, String> p = producer(broker, Map.of("transactional.id", id))) {
      p.initTransactions();
      p.beginTransaction();
      p.send(new ProducerRecord<>(name, "open")).get();
      String listed = ok(TXNS, null, "--bootstrap-server", b, "list");
      String row = listed.lines().filter(l -> l.startsWith(id)).findFirst().orElseThrow(() -> new AssertionError(listed));
      assertTrue(row.contains("Ongoing"), listed);
      String described = ok(TXNS, null, "--bootstrap-server", b, "describe", "--transactional-id", id);
      assertTrue(described.contains("Ongoing") && described.contains(name + "-0"), described);
      String producers = ok(TXNS, null, "--bootstrap-server", b, "describe-producers", "--topic", name, "--partition", "0");
      String producerRow = producers.lines().skip(1).findFirst().orElseThrow(() -> new AssertionError(producers));
      // ProducerId ProducerEpoch LatestCoordinatorEpoch LastSequence LastTimestamp CurrentTransactionStartOffset
      assertEquals("0", producerRow.trim().split("\\s+")[5], producers);
      p.commitTransaction();
    }
  }

  @OnBoth
  void thePerformanceToolsRunToTheEnd(Broker broker) {
    String b = broker.bootstrap();
    String name = topic(broker, "tool-perf", 1);
    String produced = ok("org.apache.kafka.tools.ProducerPerformance", null, "--topic", name, "--num-records", "20000",
        "--record-size", "100", "--throughput", "-1", "--producer-props", "bootstrap.servers=" + b, "acks=all");
    assertTrue(produced.contains("20000 records sent"), produced);
    String consumed = ok("org.apache.kafka.tools.ConsumerPerformance", null, "--bootstrap-server", b, "--topic", name,
        "--num-records", "20000", "--timeout", "30000");
    List<String> lines = consumed.strip().lines().filter(l -> !l.startsWith("Warning")).toList();
    List<String> header = Arrays.asList(lines.get(0).split(",\\s*"));
    List<String> values = Arrays.asList(lines.get(lines.size() - 1).split(",\\s*"));
    assertTrue(header.contains("data.consumed.in.nMsg"), consumed);
    assertEquals("20000", values.get(header.indexOf("data.consumed.in.nMsg")).strip(), consumed);
  }
}
