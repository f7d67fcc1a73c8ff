// Kafka Streams 4.4 with exactly_once_v2: a word count (KTable), a windowed
// count with a grace period and a stream-table join give the answers they
// must; and with two instances, one SIGKILLed mid-stream and restarted on
// an empty state directory, the counts come out exactly right.
package dev.sluice.compat;

import static dev.sluice.compat.Clients.admin;
import static dev.sluice.compat.Clients.consumer;
import static dev.sluice.compat.Clients.producer;
import static dev.sluice.compat.Clients.unique;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sluice.compat.Brokers.Broker;
import dev.sluice.compat.streams.Pipeline;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.function.Predicate;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.streams.KafkaStreams;
import org.junit.jupiter.api.io.TempDir;

class StreamsTest {
  static final List<String> VOCABULARY = List.of("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta");

  static Pipeline.Topics createTopics(Broker broker, String prefix) throws Exception {
    Pipeline.Topics t = new Pipeline.Topics(prefix);
    try (Admin admin = admin(broker)) {
      admin
          .createTopics(
              List.of(t.lines(), t.counts(), t.windowed(), t.orders(), t.users(), t.enriched()).stream()
                  .map(name -> new NewTopic(name, 2, (short) 1))
                  .toList())
          .all()
          .get();
    }
    return t;
  }

  /** Reads `topic` (read_committed) until `done` holds for the latest value per key; returns those. */
  static Map<String, String> latest(Broker broker, String topic, Predicate<Map<String, String>> done) {
    Map<String, String> latest = new TreeMap<>();
    try (KafkaConsumer<String, String> c = consumer(broker, null, Map.of("isolation.level", "read_committed"))) {
      List<TopicPartition> tps = List.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1));
      c.assign(tps);
      c.seekToBeginning(tps);
      long deadline = System.nanoTime() + Duration.ofSeconds(120).toNanos();
      while (!done.test(latest) && System.nanoTime() < deadline) {
        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
          latest.put(r.key(), r.value());
        }
      }
    }
    return latest;
  }

  @OnBoth
  void countsWindowsAndJoinsComeOutAsTheyMust(Broker broker, @TempDir Path state) throws Exception {
    String prefix = unique("streams");
    Pipeline.Topics t = createTopics(broker, prefix);
    long base = 1_700_000_000_000L - (1_700_000_000_000L % 10_000);
    try (KafkaProducer<String, String> p = producer(broker, Map.of())) {
      p.send(new ProducerRecord<>(t.users(), null, base, "u1", "alice"));
      p.send(new ProducerRecord<>(t.users(), null, base, "u2", "bob"));
      // One key: the lines stay in order in one partition. Stream time is kept per
      // task, so it is an alpha at base+31s that closes alpha's first window
      // (at base+15s) ...
      p.send(new ProducerRecord<>(t.lines(), null, base + 1_000, "l", "alpha beta"));
      p.send(new ProducerRecord<>(t.lines(), null, base + 2_000, "l", "alpha"));
      p.send(new ProducerRecord<>(t.lines(), null, base + 12_000, "l", "beta gamma"));
      p.send(new ProducerRecord<>(t.lines(), null, base + 31_000, "l", "alpha"));
      // ... so this late alpha counts in the word count but in no window.
      p.send(new ProducerRecord<>(t.lines(), null, base + 3_000, "l", "alpha"));
      p.send(new ProducerRecord<>(t.orders(), null, base + 40_000, "u1", "a book"));
      p.send(new ProducerRecord<>(t.orders(), null, base + 40_000, "u2", "a pen"));
      p.send(new ProducerRecord<>(t.orders(), null, base + 40_000, "u3", "nothing known"));
    }
    String app = unique("app");
    try (KafkaStreams streams = new KafkaStreams(Pipeline.topology(t), Pipeline.config(broker.bootstrap(), app, state.toString()))) {
      streams.start();
      Map<String, String> counts = Map.of("alpha", "4", "beta", "2", "gamma", "1");
      assertEquals(counts, latest(broker, t.counts(), m -> m.equals(counts)));
      Map<String, String> windows = Map.of(
          "alpha@" + base, "2", "beta@" + base, "1", "beta@" + (base + 10_000), "1", "gamma@" + (base + 10_000), "1",
          "alpha@" + (base + 30_000), "1");
      assertEquals(windows, latest(broker, t.windowed(), m -> m.equals(windows)));
      Map<String, String> enriched = Map.of("u1", "alice bought a book", "u2", "bob bought a pen");
      assertEquals(enriched, latest(broker, t.enriched(), m -> m.equals(enriched)));

      // The internal topics Streams made for itself on this broker.
      try (Admin admin = admin(broker)) {
        Set<String> names = admin.listTopics().names().get();
        String changelog = app + "-KSTREAM-AGGREGATE-STATE-STORE-0000000004-changelog";
        assertTrue(names.contains(changelog), names.toString());
        assertTrue(names.contains(app + "-KSTREAM-AGGREGATE-STATE-STORE-0000000004-repartition"), names.toString());
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, changelog);
        assertEquals("compact", admin.describeConfigs(List.of(r)).all().get().get(r).get("cleanup.policy").value());
      }
    }
  }

  @OnBoth
  void aKilledInstanceIsReplacedAndItsStateRestoredWithoutDoubleCounting(Broker broker, @TempDir Path dir)
      throws Exception {
    String prefix = unique("streams-kill");
    Pipeline.Topics t = createTopics(broker, prefix);
    String app = unique("app-kill");
    Map<String, Long> truth = new HashMap<>();
    String[] args = {broker.bootstrap(), app, prefix};
    Process a = Tool.start(dir.resolve("a.log"), Pipeline.class.getName(), args[0], args[1], args[2], dir.resolve("a").toString());
    Process b = Tool.start(dir.resolve("b.log"), Pipeline.class.getName(), args[0], args[1], args[2], dir.resolve("b").toString());
    try (KafkaProducer<String, String> p = producer(broker, Map.of())) {
      int line = 0;
      for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 300; i++, line++) {
          StringBuilder text = new StringBuilder();
          for (int w = 0; w <= line % 4; w++) {
            String word = VOCABULARY.get((line + w * 3) % VOCABULARY.size());
            truth.merge(word, 1L, Long::sum);
            text.append(word).append(' ');
          }
          p.send(new ProducerRecord<>(t.lines(), "line-" + line, text.toString()));
          if (i % 50 == 0) {
            p.flush();
            Thread.sleep(100);
          }
        }
        p.flush();
        if (round == 0) {
          // Let both instances process, then SIGKILL one mid-stream.
          latest(broker, t.counts(), m -> m.keySet().equals(truth.keySet()));
          a.destroyForcibly().waitFor();
        } else if (round == 1) {
          Map<String, Long> soFar = Map.copyOf(truth);
          // The survivor took over every task while the other was down.
          Map<String, String> counted = latest(broker, t.counts(), m -> matches(m, soFar));
          assertTrue(matches(counted, soFar), "the survivor counted everything: " + counted + " vs " + soFar);
          // Restart on an empty state directory: its stores come back from the changelogs.
          a = Tool.start(dir.resolve("a2.log"), Pipeline.class.getName(), args[0], args[1], args[2], dir.resolve("a2").toString());
        }
      }
      Map<String, Long> expected = Map.copyOf(truth);
      Map<String, String> counted = latest(broker, t.counts(), m -> matches(m, expected));
      assertTrue(matches(counted, expected), "exact counts: " + counted + " vs " + expected);
    } finally {
      for (Process proc : List.of(a, b)) {
        proc.destroy();
        if (!proc.waitFor(15, java.util.concurrent.TimeUnit.SECONDS)) {
          proc.destroyForcibly().waitFor();
        }
      }
    }
  }

  static boolean matches(Map<String, String> counted, Map<String, Long> truth) {
    if (counted.size() != truth.size()) {
      return false;
    }
    return truth.entrySet().stream().allMatch(e -> String.valueOf(e.getValue()).equals(counted.get(e.getKey())));
  }
}
