// Transactions from the Java producer: commit and abort seen through
// read_committed and read_uncommitted consumers, consume-transform-produce
// with sendOffsetsToTransaction, and fencing of a zombie instance.
package dev.sluice.compat;

import static dev.sluice.compat.Clients.consumer;
import static dev.sluice.compat.Clients.drain;
import static dev.sluice.compat.Clients.poll;
import static dev.sluice.compat.Clients.producer;
import static dev.sluice.compat.Clients.topic;
import static dev.sluice.compat.Clients.unique;
import static dev.sluice.compat.Clients.values;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sluice.compat.Brokers.Broker;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;

class TransactionsTest {
  static KafkaProducer<String, String> transactional(Broker broker, String id) {
    KafkaProducer<String, String> p = producer(broker, Map.of("transactional.id", id, "transaction.timeout.ms", "30000"));
    p.initTransactions();
    return p;
  }

  static List<String> readAll(Broker broker, String topic, String isolation, int atLeast) {
    try (KafkaConsumer<String, String> c = consumer(broker, null, Map.of("isolation.level", isolation))) {
      TopicPartition tp = new TopicPartition(topic, 0);
      c.assign(List.of(tp));
      c.seekToBeginning(List.of(tp));
      List<ConsumerRecord<String, String>> got = poll(c, atLeast);
      got.addAll(drain(c, Duration.ofMillis(800)));
      return values(got);
    }
  }

  @OnBoth
  void committedRecordsAreReadAndAbortedOnesAreNot(Broker broker) throws Exception {
    String topic = topic(broker, "txn", 1);
    try (KafkaProducer<String, String> p = transactional(broker, unique("txn"))) {
      p.beginTransaction();
      p.send(new ProducerRecord<>(topic, "c1"));
      p.send(new ProducerRecord<>(topic, "c2"));
      p.commitTransaction();
      p.beginTransaction();
      p.send(new ProducerRecord<>(topic, "a1"));
      p.flush();
      p.abortTransaction();
      p.beginTransaction();
      p.send(new ProducerRecord<>(topic, "c3"));
      p.commitTransaction();
    }
    assertEquals(List.of("c1", "c2", "c3"), readAll(broker, topic, "read_committed", 3));
    assertEquals(List.of("c1", "c2", "a1", "c3"), readAll(broker, topic, "read_uncommitted", 4));
    TopicPartition tp = new TopicPartition(topic, 0);
    try (KafkaConsumer<String, String> c = consumer(broker, null, Map.of("isolation.level", "read_committed"))) {
      // Three data records and three markers.
      assertEquals(Map.of(tp, 7L), c.endOffsets(List.of(tp)));
    }
  }

  @OnBoth
  void anOpenTransactionIsInvisibleToReadCommittedUntilItCommits(Broker broker) throws Exception {
    String topic = topic(broker, "open", 1);
    TopicPartition tp = new TopicPartition(topic, 0);
    try (KafkaProducer<String, String> p = transactional(broker, unique("open"));
        KafkaConsumer<String, String> c = consumer(broker, null, Map.of("isolation.level", "read_committed"))) {
      p.beginTransaction();
      p.send(new ProducerRecord<>(topic, "pending")).get();
      c.assign(List.of(tp));
      c.seekToBeginning(List.of(tp));
      assertTrue(drain(c, Duration.ofSeconds(1)).isEmpty(), "nothing before the commit");
      assertEquals(Map.of(tp, 0L), c.endOffsets(List.of(tp)), "the last stable offset stays at the open transaction");
      p.commitTransaction();
      assertEquals(List.of("pending"), values(poll(c, 1)));
    }
  }

  @OnBoth
  void consumeTransformProduceCommitsItsInputOffsetsWithItsOutput(Broker broker) throws Exception {
    String in = topic(broker, "ctp-in", 1);
    String out = topic(broker, "ctp-out", 1);
    String group = unique("ctp");
    try (KafkaProducer<String, String> p = producer(broker, Map.of())) {
      for (int i = 0; i < 10; i++) {
        p.send(new ProducerRecord<>(in, "n" + i));
      }
    }
    TopicPartition tin = new TopicPartition(in, 0);
    try (KafkaProducer<String, String> p = transactional(broker, unique("ctp"));
        KafkaConsumer<String, String> c = consumer(broker, group, Map.of("isolation.level", "read_committed"))) {
      c.subscribe(List.of(in));
      List<ConsumerRecord<String, String>> batch = poll(c, 10);
      // Transform the first six and commit; the next four are aborted.
      p.beginTransaction();
      for (ConsumerRecord<String, String> r : batch.subList(0, 6)) {
        p.send(new ProducerRecord<>(out, r.value().toUpperCase()));
      }
      p.sendOffsetsToTransaction(Map.of(tin, new OffsetAndMetadata(6)), c.groupMetadata());
      p.commitTransaction();
      p.beginTransaction();
      for (ConsumerRecord<String, String> r : batch.subList(6, 10)) {
        p.send(new ProducerRecord<>(out, r.value().toUpperCase()));
      }
      p.sendOffsetsToTransaction(Map.of(tin, new OffsetAndMetadata(10)), c.groupMetadata());
      p.abortTransaction();
      assertEquals(new OffsetAndMetadata(6), c.committed(Set.of(tin)).get(tin), "only the committed transaction's offset");
    }
    assertEquals(List.of("N0", "N1", "N2", "N3", "N4", "N5"), readAll(broker, out, "read_committed", 6));
  }

  @OnBoth
  void aSecondInstanceWithTheSameTransactionalIdFencesTheFirst(Broker broker) throws Exception {
    String topic = topic(broker, "fence", 1);
    String id = unique("fence");
    try (KafkaProducer<String, String> zombie = transactional(broker, id)) {
      zombie.beginTransaction();
      zombie.send(new ProducerRecord<>(topic, "zombie")).get();
      try (KafkaProducer<String, String> successor = transactional(broker, id)) {
        // The successor's initTransactions aborted the zombie's open transaction.
        assertThrows(ProducerFencedException.class, zombie::commitTransaction);
        successor.beginTransaction();
        successor.send(new ProducerRecord<>(topic, "successor"));
        successor.commitTransaction();
      }
    }
    assertEquals(List.of("successor"), readAll(broker, topic, "read_committed", 1));
  }
}
