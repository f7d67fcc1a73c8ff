// The Java producer with its defaults and its options: idempotence and
// acks=all by default, every codec, headers, Kafka's partitioner, and the
// record size limit.
package dev.sluice.compat;

import static dev.sluice.compat.Clients.consumer;
import static dev.sluice.compat.Clients.poll;
import static dev.sluice.compat.Clients.producer;
import static dev.sluice.compat.Clients.topic;
import static dev.sluice.compat.Clients.values;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.sluice.compat.Brokers.Broker;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.stream.IntStream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.utils.Utils;

class ProducerTest {
  static List<ConsumerRecord<String, String>> readAll(Broker broker, String topic, int partitions, int count) {
    try (KafkaConsumer<String, String> c = consumer(broker, null, Map.of())) {
      List<TopicPartition> tps = IntStream.range(0, partitions).mapToObj(p -> new TopicPartition(topic, p)).toList();
      c.assign(tps);
      c.seekToBeginning(tps);
      return poll(c, count);
    }
  }

  @OnBoth
  void defaultsAreIdempotentAcksAllAndKeysLandWhereKafkasPartitionerPutsThem(Broker broker) throws Exception {
    String topic = topic(broker, "defaults", 3);
    List<Future<RecordMetadata>> acks = new ArrayList<>();
    try (KafkaProducer<String, String> p = producer(broker, Map.of())) {
      for (int i = 0; i < 600; i++) {
        acks.add(p.send(new ProducerRecord<>(topic, "key-" + (i % 37), "value-" + i)));
      }
      p.flush();
    }
    for (int i = 0; i < acks.size(); i++) {
      RecordMetadata md = acks.get(i).get();
      int expected = Utils.toPositive(Utils.murmur2(("key-" + (i % 37)).getBytes())) % 3;
      assertEquals(expected, md.partition(), "partition of record " + i);
    }
    List<ConsumerRecord<String, String>> read = readAll(broker, topic, 3, 600);
    assertEquals(600, read.stream().map(ConsumerRecord::value).distinct().count(), "each record once");
    for (int part = 0; part < 3; part++) {
      final int p = part;
      List<Integer> order =
          read.stream().filter(r -> r.partition() == p).map(r -> Integer.parseInt(r.value().substring(6))).toList();
      assertEquals(order.stream().sorted().toList(), order, "send order within partition " + p);
    }
    // The default producer is idempotent: the broker tracks its producer id.
    try (Admin admin = Clients.admin(broker)) {
      List<ProducerState> producers =
          admin.describeProducers(List.of(new TopicPartition(topic, 0))).partitionResult(new TopicPartition(topic, 0)).get().activeProducers();
      assertEquals(1, producers.size(), "one idempotent producer on partition 0");
      assertFalse(producers.get(0).currentTransactionStartOffset().isPresent());
    }
  }

  @OnBoth
  void everyCodecRoundTrips(Broker broker) throws Exception {
    for (String codec : List.of("gzip", "snappy", "lz4", "zstd")) {
      String topic = topic(broker, "codec-" + codec, 1);
      List<String> sent = IntStream.range(0, 300).mapToObj(i -> codec + " record " + i + " " + "x".repeat(i % 50)).toList();
      try (KafkaProducer<String, String> p = producer(broker, Map.of("compression.type", codec, "linger.ms", "20"))) {
        for (String v : sent) {
          p.send(new ProducerRecord<>(topic, v));
        }
        p.flush();
      }
      assertEquals(sent, values(readAll(broker, topic, 1, sent.size())), codec);
    }
  }

  @OnBoth
  void headersKeysAndNullsSurviveAsSent(Broker broker) throws Exception {
    String topic = topic(broker, "headers", 1);
    List<Header> headers =
        List.of(
            new RecordHeader("trace", "abc".getBytes()),
            new RecordHeader("trace", "again".getBytes()),
            new RecordHeader("empty", new byte[0]),
            new RecordHeader("null", null));
    try (KafkaProducer<String, String> p = producer(broker, Map.of())) {
      p.send(new ProducerRecord<>(topic, null, 1_700_000_000_000L, "k", "v", headers)).get();
      p.send(new ProducerRecord<>(topic, null, null)).get();
    }
    List<ConsumerRecord<String, String>> read = readAll(broker, topic, 1, 2);
    ConsumerRecord<String, String> first = read.get(0);
    assertEquals("k", first.key());
    assertEquals("v", first.value());
    assertEquals(1_700_000_000_000L, first.timestamp());
    Header[] got = first.headers().toArray();
    assertEquals(4, got.length);
    for (int i = 0; i < 4; i++) {
      assertEquals(headers.get(i).key(), got[i].key());
      assertArrayEquals(headers.get(i).value(), got[i].value(), "header " + i);
    }
    assertEquals(null, read.get(1).key());
    assertEquals(null, read.get(1).value());
  }

  @OnBoth
  void recordsNearMaxMessageBytesPassAndLargerOnesAreRefused(Broker broker) throws Exception {
    String topic = topic(broker, "large", 1, Map.of("max.message.bytes", "20000"));
    try (KafkaProducer<String, String> p = producer(broker, Map.of())) {
      RecordMetadata ok = p.send(new ProducerRecord<>(topic, "n".repeat(19_800))).get();
      assertEquals(0, ok.offset());
      ExecutionException tooLarge =
          assertThrows(ExecutionException.class, () -> p.send(new ProducerRecord<>(topic, "n".repeat(20_100))).get());
      assertInstanceOf(RecordTooLargeException.class, tooLarge.getCause());
      // The producer goes on after the refusal.
      assertEquals(1, p.send(new ProducerRecord<>(topic, "small")).get().offset());
    }
  }
}
