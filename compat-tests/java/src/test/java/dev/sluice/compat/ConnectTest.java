// A Kafka Connect 4.4 distributed worker on each broker: it creates its
// compacted config, offset and status topics, runs a file source and sink
// (our own connectors: connect-file 4.4.0 is not served here) through a
// topic, reports RUNNING over REST, and after a restart resumes from its
// committed source offsets without duplicates.
package dev.sluice.compat;

import static dev.sluice.compat.Clients.admin;
import static dev.sluice.compat.Clients.unique;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sluice.compat.Brokers.Broker;
import dev.sluice.compat.connect.LinesSink;
import dev.sluice.compat.connect.LinesSource;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.List;
import java.util.function.Predicate;
import java.util.stream.IntStream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.config.ConfigResource;
import org.junit.jupiter.api.io.TempDir;

class ConnectTest {
  static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

  record Worker(Process proc, String url) {}

  static Worker startWorker(Broker broker, Path dir, String group, int port, String log) throws IOException {
    Path props = dir.resolve("worker.properties");
    Files.writeString(props, String.join("\n",
        "bootstrap.servers=" + broker.bootstrap(),
        "group.id=" + group,
        "config.storage.topic=" + group + "-configs",
        "offset.storage.topic=" + group + "-offsets",
        "status.storage.topic=" + group + "-status",
        "config.storage.replication.factor=1",
        "offset.storage.replication.factor=1",
        "status.storage.replication.factor=1",
        "key.converter=org.apache.kafka.connect.storage.StringConverter",
        "value.converter=org.apache.kafka.connect.storage.StringConverter",
        "offset.flush.interval.ms=1000",
        "listeners=http://127.0.0.1:" + port,
        "plugin.discovery=service_load",
        ""));
    Process proc = Tool.start(dir.resolve(log), "org.apache.kafka.connect.cli.ConnectDistributed", props.toString());
    Worker w = new Worker(proc, "http://127.0.0.1:" + port);
    waitFor(w, "/connectors", body -> body.startsWith("["));
    return w;
  }

  static String get(Worker w, String path) {
    try {
      HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(w.url() + path)).timeout(Duration.ofSeconds(10)).build(),
          HttpResponse.BodyHandlers.ofString());
      return r.statusCode() == 200 ? r.body() : "";
    } catch (IOException e) {
      return "";
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  static void put(Worker w, String path, String json) throws Exception {
    HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(w.url() + path))
            .header("Content-Type", "application/json").PUT(HttpRequest.BodyPublishers.ofString(json)).build(),
        HttpResponse.BodyHandlers.ofString());
    assertTrue(r.statusCode() == 200 || r.statusCode() == 201, path + " -> " + r.statusCode() + " " + r.body());
  }

  static String waitFor(Worker w, String path, Predicate<String> done) {
    long deadline = System.nanoTime() + Duration.ofSeconds(90).toNanos();
    String body = "";
    while (System.nanoTime() < deadline) {
      assertTrue(w.proc().isAlive(), "the Connect worker exited");
      body = get(w, path);
      if (done.test(body)) {
        return body;
      }
      sleep(300);
    }
    throw new AssertionError(path + " never satisfied; last answer: " + body);
  }

  static List<String> waitForLines(Path file, int count) throws IOException {
    long deadline = System.nanoTime() + Duration.ofSeconds(90).toNanos();
    while (System.nanoTime() < deadline) {
      List<String> lines = Files.exists(file) ? Files.readAllLines(file) : List.of();
      if (lines.size() >= count) {
        sleep(1500); // anything beyond `count` (a duplicate) has time to show up
        return Files.readAllLines(file);
      }
      sleep(200);
    }
    throw new AssertionError("the sink wrote fewer than " + count + " lines");
  }

  static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  static void append(Path file, int from, int to) throws IOException {
    StringBuilder sb = new StringBuilder();
    IntStream.range(from, to).forEach(i -> sb.append("line ").append(i).append('\n'));
    Files.writeString(file, sb, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
  }

  @OnBoth
  void aFileSourceAndSinkRunThroughATopicAndResumeAfterARestart(Broker broker, @TempDir Path dir) throws Exception {
    String group = unique("connect");
    String topic = unique("connect-lines");
    Path in = dir.resolve("in.txt");
    Path out = dir.resolve("out.txt");
    append(in, 0, 100);
    int port = freePort();
    Worker w = startWorker(broker, dir, group, port, "worker-1.log");
    try {
      put(w, "/connectors/lines-in/config", "{\"connector.class\":\"" + LinesSource.class.getName()
          + "\",\"tasks.max\":\"1\",\"file\":\"" + in + "\",\"topic\":\"" + topic + "\"}");
      put(w, "/connectors/lines-out/config", "{\"connector.class\":\"" + LinesSink.class.getName()
          + "\",\"tasks.max\":\"1\",\"file\":\"" + out + "\",\"topics\":\"" + topic + "\"}");
      for (String c : List.of("lines-in", "lines-out")) {
        String status = waitFor(w, "/connectors/" + c + "/status",
            body -> body.matches(".*\"connector\":\\{\"state\":\"RUNNING\".*") && body.matches(".*\"tasks\":\\[\\{[^]]*\"state\":\"RUNNING\".*"));
        assertTrue(status.contains("\"worker_id\":\"127.0.0.1:" + port + "\""), status);
      }
      assertEquals(IntStream.range(0, 100).mapToObj(i -> "line " + i).toList(), waitForLines(out, 100));
    } finally {
      w.proc().destroy();
      w.proc().waitFor();
    }
    try (Admin admin = admin(broker)) {
      for (String internal : List.of("-configs", "-offsets", "-status")) {
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, group + internal);
        assertEquals("compact", admin.describeConfigs(List.of(r)).all().get().get(r).get("cleanup.policy").value(), internal);
      }
    }

    // Lines written while the worker is down are sent once it is back, and
    // nothing sent before the stop is sent again.
    append(in, 100, 150);
    w = startWorker(broker, dir, group, port, "worker-2.log");
    try {
      assertEquals(IntStream.range(0, 150).mapToObj(i -> "line " + i).toList(), waitForLines(out, 150));
    } finally {
      w.proc().destroy();
      w.proc().waitFor();
    }
  }
}
