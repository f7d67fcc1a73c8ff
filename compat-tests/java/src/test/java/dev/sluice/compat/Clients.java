// Client configuration and small helpers shared by the suites: unique topic
// names (the brokers are shared by every test), topic creation, and reading
// a fixed number of records.
package dev.sluice.compat;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sluice.compat.Brokers.Broker;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class Clients {
  private Clients() {}

  public static String unique(String prefix) {
    return prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
  }

  public static Admin admin(Broker broker) {
    Properties p = new Properties();
    p.put("bootstrap.servers", broker.bootstrap());
    p.put("default.api.timeout.ms", "30000");
    p.put("request.timeout.ms", "15000");
    return Admin.create(p);
  }

  /** Creates a topic (replication factor 1) and waits until it exists. */
  public static String topic(Broker broker, String prefix, int partitions, Map<String, String> configs) {
    String name = unique(prefix);
    try (Admin admin = admin(broker)) {
      admin.createTopics(List.of(new NewTopic(name, partitions, (short) 1).configs(configs))).all().get();
    } catch (InterruptedException | ExecutionException e) {
      throw new AssertionError("creating " + name + " on " + broker, e);
    }
    return name;
  }

  public static String topic(Broker broker, String prefix, int partitions) {
    return topic(broker, prefix, partitions, Map.of());
  }

  public static Properties producerProps(Broker broker) {
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrap());
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
    p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
    return p;
  }

  public static KafkaProducer<String, String> producer(Broker broker, Map<String, String> overrides) {
    Properties p = producerProps(broker);
    p.putAll(overrides);
    return new KafkaProducer<>(p);
  }

  /** Writes `perPartition` records "P:I" to each of the first `partitions` partitions, acks=all. */
  public static void fill(Broker broker, String topic, int partitions, int perPartition) {
    try (KafkaProducer<String, String> p = producer(broker, Map.of())) {
      for (int part = 0; part < partitions; part++) {
        for (int i = 0; i < perPartition; i++) {
          p.send(new ProducerRecord<>(topic, part, null, part + ":" + i));
        }
      }
    }
  }

  public static Properties consumerProps(Broker broker, String group) {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrap());
    if (group != null) {
      p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    }
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    return p;
  }

  public static KafkaConsumer<String, String> consumer(Broker broker, String group, Map<String, String> overrides) {
    Properties p = consumerProps(broker, group);
    p.putAll(overrides);
    return new KafkaConsumer<>(p);
  }

  /** Polls until at least `count` records arrived (at most 60 s) and returns them all; fails with fewer. */
  public static <K, V> List<ConsumerRecord<K, V>> poll(KafkaConsumer<K, V> consumer, int count) {
    List<ConsumerRecord<K, V>> out = new ArrayList<>();
    long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
    while (out.size() < count && System.nanoTime() < deadline) {
      consumer.poll(Duration.ofMillis(200)).forEach(out::add);
    }
    assertTrue(out.size() >= count, "read " + out.size() + " of " + count + " records before the timeout");
    return out;
  }

  /** Polls for `quiet` and returns whatever arrived: for checking nothing more comes. */
  public static <K, V> List<ConsumerRecord<K, V>> drain(KafkaConsumer<K, V> consumer, Duration quiet) {
    List<ConsumerRecord<K, V>> out = new ArrayList<>();
    long deadline = System.nanoTime() + quiet.toNanos();
    while (System.nanoTime() < deadline) {
      consumer.poll(Duration.ofMillis(200)).forEach(out::add);
    }
    return out;
  }

  public static List<String> values(Collection<? extends ConsumerRecord<?, String>> records) {
    return records.stream().map(ConsumerRecord::value).toList();
  }
}
