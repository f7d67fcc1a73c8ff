// The Kafka Streams application the Streams suite runs: a word count into a
// KTable (Streams creates its repartition and changelog topics), a windowed
// count with a grace period, and a stream-table join, with exactly_once_v2.
// `main` runs it in a JVM of its own until it is killed.
package dev.sluice.compat.streams;

import java.time.Duration;
import java.util.Arrays;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;

public final class Pipeline {
  /** The topics of one run, all named after its prefix. */
  public record Topics(String prefix) {
    public String lines() {
      return prefix + "-lines";
    }

    public String counts() {
      return prefix + "-counts";
    }

    public String windowed() {
      return prefix + "-windowed";
    }

    public String orders() {
      return prefix + "-orders";
    }

    public String users() {
      return prefix + "-users";
    }

    public String enriched() {
      return prefix + "-enriched";
    }
  }

  private Pipeline() {}

  public static Topology topology(Topics t) {
    StreamsBuilder b = new StreamsBuilder();
    KStream<String, String> words =
        b.stream(t.lines(), Consumed.with(Serdes.String(), Serdes.String()))
            .flatMapValues(line -> Arrays.asList(line.toLowerCase().split("\\s+")))
            .filter((k, w) -> !w.isEmpty());
    // Re-keying by word makes Streams create a repartition topic; count() a changelog.
    words
        .groupBy((k, w) -> w, Grouped.with(Serdes.String(), Serdes.String()))
        .count()
        .toStream()
        .mapValues(String::valueOf)
        .to(t.counts(), Produced.with(Serdes.String(), Serdes.String()));
    words
        .selectKey((k, w) -> w)
        .groupByKey(Grouped.with("by-word", Serdes.String(), Serdes.String()))
        .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofSeconds(10), Duration.ofSeconds(5)))
        .count()
        .toStream()
        .map((w, n) -> KeyValue.pair(w.key() + "@" + w.window().start(), String.valueOf(n)))
        .to(t.windowed(), Produced.with(Serdes.String(), Serdes.String()));
    KTable<String, String> users = b.table(t.users(), Consumed.with(Serdes.String(), Serdes.String()));
    b.stream(t.orders(), Consumed.with(Serdes.String(), Serdes.String()))
        .join(users, (order, user) -> user + " bought " + order)
        .to(t.enriched(), Produced.with(Serdes.String(), Serdes.String()));
    return b.build();
  }

  public static Properties config(String bootstrap, String appId, String stateDir) {
    Properties p = new Properties();
    p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
    p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
    p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
    p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
    p.put(StreamsConfig.consumerPrefix("session.timeout.ms"), 6000);
    p.put(StreamsConfig.consumerPrefix("heartbeat.interval.ms"), 1000);
    return p;
  }

  /** args: bootstrap applicationId topicPrefix stateDir. Runs until killed. */
  public static void main(String[] args) throws InterruptedException {
    KafkaStreams streams = new KafkaStreams(topology(new Topics(args[2])), config(args[0], args[1], args[3]));
    CountDownLatch stopped = new CountDownLatch(1);
    streams.setStateListener((now, before) -> {
      System.out.println("state " + now);
      if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
        stopped.countDown();
      }
    });
    Runtime.getRuntime().addShutdownHook(new Thread(streams::close));
    streams.start();
    stopped.await();
    System.exit(1);
  }
}
