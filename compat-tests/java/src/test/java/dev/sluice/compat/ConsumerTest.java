// The Java consumer: group assignment with the range and cooperative-sticky
// assignors, static membership, rebalance listeners, positions (seek,
// offsetsForTimes, beginning/end offsets), pause/resume, commits and the
// max.poll.interval.ms limit.
package dev.sluice.compat;

import static dev.sluice.compat.Clients.consumer;
import static dev.sluice.compat.Clients.fill;
import static dev.sluice.compat.Clients.poll;
import static dev.sluice.compat.Clients.producer;
import static dev.sluice.compat.Clients.topic;
import static dev.sluice.compat.Clients.unique;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sluice.compat.Brokers.Broker;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.kafka.clients.consumer.CommitFailedException;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;

class ConsumerTest {
  /** Records what a consumer's rebalance listener was told. */
  static final class Listener implements ConsumerRebalanceListener {
    final Set<TopicPartition> owned = new HashSet<>();
    final List<Set<TopicPartition>> revoked = new ArrayList<>();
    final List<Set<TopicPartition>> assigned = new ArrayList<>();

    @Override
    public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
      if (!partitions.isEmpty()) {
        revoked.add(Set.copyOf(partitions));
      }
      owned.removeAll(partitions);
    }

    @Override
    public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
      assigned.add(Set.copyOf(partitions));
      owned.addAll(partitions);
    }

    @Override
    public void onPartitionsLost(Collection<TopicPartition> partitions) {
      owned.removeAll(partitions);
    }
  }

  /** Polls every consumer in turn until `done` holds (at most 60 s). */
  static void pollUntil(List<KafkaConsumer<String, String>> consumers, java.util.function.BooleanSupplier done) {
    long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
    while (!done.getAsBoolean()) {
      assertTrue(System.nanoTime() < deadline, "the group did not settle within 60 s");
      for (KafkaConsumer<String, String> c : consumers) {
        c.poll(Duration.ofMillis(100));
      }
    }
  }

  static Set<TopicPartition> partitions(String topic, int... ids) {
    return IntStream.of(ids).mapToObj(p -> new TopicPartition(topic, p)).collect(Collectors.toSet());
  }

  static boolean splitEvenly(Listener a, Listener b, int total) {
    Set<TopicPartition> all = new HashSet<>(a.owned);
    all.addAll(b.owned);
    return a.owned.size() == total / 2 && b.owned.size() == total / 2 && all.size() == total;
  }

  @OnBoth
  void rangeAssignorRevokesEverythingOnRebalance(Broker broker) throws Exception {
    String topic = topic(broker, "range", 4);
    String group = unique("range");
    Map<String, String> cfg = Map.of("partition.assignment.strategy", "org.apache.kafka.clients.consumer.RangeAssignor");
    Listener l1 = new Listener();
    Listener l2 = new Listener();
    try (KafkaConsumer<String, String> c1 = consumer(broker, group, cfg);
        KafkaConsumer<String, String> c2 = consumer(broker, group, cfg)) {
      c1.subscribe(List.of(topic), l1);
      pollUntil(List.of(c1), () -> l1.owned.size() == 4);
      c2.subscribe(List.of(topic), l2);
      pollUntil(List.of(c1, c2), () -> splitEvenly(l1, l2, 4));
      // Eager: the first member gave up all four before taking two back.
      assertEquals(List.of(partitions(topic, 0, 1, 2, 3)), l1.revoked);
      assertEquals(c1.assignment(), l1.owned);
      assertEquals(c2.assignment(), l2.owned);
    }
  }

  @OnBoth
  void cooperativeStickyRevokesOnlyWhatMoves(Broker broker) throws Exception {
    String topic = topic(broker, "coop", 4);
    String group = unique("coop");
    Map<String, String> cfg =
        Map.of("partition.assignment.strategy", "org.apache.kafka.clients.consumer.CooperativeStickyAssignor");
    Listener l1 = new Listener();
    Listener l2 = new Listener();
    try (KafkaConsumer<String, String> c1 = consumer(broker, group, cfg);
        KafkaConsumer<String, String> c2 = consumer(broker, group, cfg)) {
      c1.subscribe(List.of(topic), l1);
      pollUntil(List.of(c1), () -> l1.owned.size() == 4);
      Set<TopicPartition> before = Set.copyOf(l1.owned);
      c2.subscribe(List.of(topic), l2);
      pollUntil(List.of(c1, c2), () -> splitEvenly(l1, l2, 4));
      assertEquals(1, l1.revoked.size(), "one revocation of exactly the two partitions that moved");
      assertEquals(2, l1.revoked.get(0).size());
      Set<TopicPartition> kept = new HashSet<>(before);
      kept.removeAll(l1.revoked.get(0));
      assertEquals(kept, l1.owned);
      assertEquals(l1.revoked.get(0), l2.owned);
    }
  }

  @OnBoth
  void aStaticMemberComingBackKeepsItsPartitionsWithoutARebalance(Broker broker) throws Exception {
    String topic = topic(broker, "static", 4);
    String group = unique("static");
    Listener la = new Listener();
    Listener lb = new Listener();
    Map<String, String> a = Map.of("group.instance.id", "a", "session.timeout.ms", "30000");
    Map<String, String> b = Map.of("group.instance.id", "b", "session.timeout.ms", "30000");
    Set<TopicPartition> ofA;
    try (KafkaConsumer<String, String> cb = consumer(broker, group, b)) {
      try (KafkaConsumer<String, String> ca = consumer(broker, group, a)) {
        ca.subscribe(List.of(topic), la);
        cb.subscribe(List.of(topic), lb);
        pollUntil(List.of(ca, cb), () -> splitEvenly(la, lb, 4));
        ofA = Set.copyOf(la.owned);
      }
      // A static member's close sends no LeaveGroup: b keeps what it has,
      // and a restarted "a" gets its old partitions back at once.
      int rebalancesOfB = lb.assigned.size();
      int revocationsOfB = lb.revoked.size();
      Listener again = new Listener();
      try (KafkaConsumer<String, String> ca = consumer(broker, group, a)) {
        ca.subscribe(List.of(topic), again);
        pollUntil(List.of(ca, cb), () -> again.owned.size() == 2);
        cb.poll(Duration.ofMillis(500));
        assertEquals(ofA, again.owned);
        assertEquals(rebalancesOfB, lb.assigned.size(), "b saw no rebalance: " + lb.assigned + " revoked " + lb.revoked);
        assertEquals(revocationsOfB, lb.revoked.size(), "b lost nothing");
      }
    }
  }

  @OnBoth
  void positionsBySeekTimestampAndEnds(Broker broker) throws Exception {
    String topic = topic(broker, "positions", 1);
    long t0 = System.currentTimeMillis() - 60_000;
    try (KafkaProducer<String, String> p = producer(broker, Map.of())) {
      for (int i = 0; i < 10; i++) {
        p.send(new ProducerRecord<>(topic, 0, t0 + i * 1000L, null, "v" + i));
      }
    }
    TopicPartition tp = new TopicPartition(topic, 0);
    try (KafkaConsumer<String, String> c = consumer(broker, null, Map.of())) {
      assertEquals(Map.of(tp, 0L), c.beginningOffsets(List.of(tp)));
      assertEquals(Map.of(tp, 10L), c.endOffsets(List.of(tp)));
      Map<TopicPartition, OffsetAndTimestamp> at = c.offsetsForTimes(Map.of(tp, t0 + 3500));
      assertEquals(4, at.get(tp).offset());
      assertEquals(t0 + 4000, at.get(tp).timestamp());
      assertNull(c.offsetsForTimes(Map.of(tp, t0 + 60_000)).get(tp), "no record that late");
      c.assign(List.of(tp));
      c.seek(tp, 7);
      assertEquals(List.of("v7", "v8", "v9"), Clients.values(poll(c, 3)));
      assertEquals(10, c.position(tp));
      c.seekToBeginning(List.of(tp));
      assertEquals("v0", poll(c, 1).get(0).value());
    }
  }

  @OnBoth
  void pausedPartitionsAreNotFetchedUntilResumed(Broker broker) throws Exception {
    String topic = topic(broker, "pause", 2);
    fill(broker, topic, 2, 5);
    TopicPartition p0 = new TopicPartition(topic, 0);
    TopicPartition p1 = new TopicPartition(topic, 1);
    try (KafkaConsumer<String, String> c = consumer(broker, null, Map.of())) {
      c.assign(List.of(p0, p1));
      c.seekToBeginning(List.of(p0, p1));
      c.pause(List.of(p0));
      List<ConsumerRecord<String, String>> first = poll(c, 5);
      assertTrue(first.stream().allMatch(r -> r.partition() == 1), "only the unpaused partition");
      assertTrue(Clients.drain(c, Duration.ofSeconds(1)).isEmpty());
      c.resume(List.of(p0));
      assertTrue(poll(c, 5).stream().allMatch(r -> r.partition() == 0));
    }
  }

  @OnBoth
  void committedOffsetsAreWhereTheNextMemberStarts(Broker broker) throws Exception {
    String topic = topic(broker, "commits", 1);
    fill(broker, topic, 1, 20);
    String group = unique("commits");
    TopicPartition tp = new TopicPartition(topic, 0);
    try (KafkaConsumer<String, String> c = consumer(broker, group, Map.of())) {
      c.subscribe(List.of(topic));
      poll(c, 20);
      c.commitSync(Map.of(tp, new OffsetAndMetadata(5, "five")));
      assertEquals(new OffsetAndMetadata(5, "five"), c.committed(Set.of(tp)).get(tp));
      AtomicReference<Exception> outcome = new AtomicReference<>();
      c.commitAsync(Map.of(tp, new OffsetAndMetadata(12)), (offsets, e) -> outcome.set(e == null ? new Exception("ok") : e));
      long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
      while (outcome.get() == null && System.nanoTime() < deadline) {
        c.poll(Duration.ofMillis(100));
      }
      assertEquals("ok", outcome.get().getMessage());
    }
    try (KafkaConsumer<String, String> c = consumer(broker, group, Map.of())) {
      c.subscribe(List.of(topic));
      assertEquals("0:12", poll(c, 1).get(0).value(), "resumes at the last commit");
    }
  }

  @OnBoth
  void aMemberThatStopsPollingIsRemovedAndCannotCommit(Broker broker) throws Exception {
    String topic = topic(broker, "slow", 2);
    fill(broker, topic, 2, 3);
    String group = unique("slow");
    Listener l1 = new Listener();
    Listener l2 = new Listener();
    try (KafkaConsumer<String, String> c1 = consumer(broker, group, Map.of("max.poll.interval.ms", "2000"));
        KafkaConsumer<String, String> c2 = consumer(broker, group, Map.of())) {
      c1.subscribe(List.of(topic), l1);
      pollUntil(List.of(c1), () -> l1.owned.size() == 2);
      Thread.sleep(4000);
      c2.subscribe(List.of(topic), l2);
      pollUntil(List.of(c2), () -> l2.owned.size() == 2);
      KafkaException refused =
          assertThrows(
              KafkaException.class,
              () -> c1.commitSync(Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(3))));
      assertInstanceOf(CommitFailedException.class, refused, refused.toString());
    }
  }
}
