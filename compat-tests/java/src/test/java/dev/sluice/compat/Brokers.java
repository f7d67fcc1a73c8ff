// The two brokers every JVM scenario runs against: the Sluice binary under
// test and a reference Apache Kafka 4.4 (compat-tests/reference). Each is
// started once per test JVM, on free loopback ports, and stopped when the
// JVM exits; logs stay under target/brokers for a failed run.
package dev.sluice.compat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

public final class Brokers {
  /** A running broker: its name in test reports and its bootstrap address. */
  public record Broker(String name, String bootstrap) {
    public boolean isSluice() {
      return name.equals("sluice");
    }

    @Override
    public String toString() {
      return name;
    }
  }

  private static final Pattern STARTED = Pattern.compile("sluice broker started listen=\\S+:(\\d+)");
  private static Broker sluice;
  private static Broker kafka;

  private Brokers() {}

  /** Both brokers, Sluice first: the source of every {@link OnBoth} test. */
  public static Stream<Broker> both() {
    return Stream.of(sluice(), kafka());
  }

  public static synchronized Broker sluice() {
    if (sluice == null) {
      sluice = startSluice();
    }
    return sluice;
  }

  public static synchronized Broker kafka() {
    if (kafka == null) {
      kafka = startKafka();
    }
    return kafka;
  }

  static Path directory(String name) {
    Path root = Path.of(System.getProperty("brokers.dir", "target/brokers"));
    try {
      Path dir = root.resolve(name + "-" + ProcessHandle.current().pid());
      Files.createDirectories(dir);
      return dir;
    } catch (IOException e) {
      throw new IllegalStateException("cannot create a broker directory under " + root, e);
    }
  }

  private static Broker startSluice() {
    String bin = System.getProperty("sluice.bin", System.getenv("SLUICE_BIN"));
    if (bin == null || !Files.isExecutable(Path.of(bin))) {
      throw new IllegalStateException("set -Dsluice.bin (or SLUICE_BIN) to the sluice binary; got " + bin);
    }
    Path dir = directory("sluice");
    Path log = dir.resolve("sluice.log");
    try {
      Process proc =
          new ProcessBuilder(
                  bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", dir.resolve("data").toString(),
                  // As the reference is configured: no wait for more members before a first rebalance.
                  "--group-initial-rebalance-delay-ms", "0")
              .redirectErrorStream(true)
              .redirectOutput(log.toFile())
              .start();
      Runtime.getRuntime().addShutdownHook(new Thread(() -> stop(proc)));
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (System.nanoTime() < deadline) {
        if (!proc.isAlive()) {
          throw new IllegalStateException("sluice exited with " + proc.exitValue() + "; see " + log);
        }
        Matcher m = STARTED.matcher(Files.readString(log, StandardCharsets.UTF_8));
        if (m.find()) {
          return new Broker("sluice", "127.0.0.1:" + m.group(1));
        }
        Thread.sleep(50);
      }
      throw new IllegalStateException("sluice did not start within 30 s; see " + log);
    } catch (IOException e) {
      throw new IllegalStateException("cannot start " + bin, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  private static Broker startKafka() {
    String launcher = System.getProperty("reference.launcher", "../reference/reference_kafka.py");
    Path dir = directory("kafka");
    List<String> start = List.of("python3", launcher, "start", dir.toString());
    Runtime.getRuntime().addShutdownHook(new Thread(() -> run(List.of("python3", launcher, "stop", dir.toString()))));
    String out = run(start);
    String bootstrap = out.strip();
    if (!bootstrap.matches("127\\.0\\.0\\.1:\\d+(,127\\.0\\.0\\.1:\\d+)*")) {
      throw new IllegalStateException("the reference Kafka did not start: " + out);
    }
    return new Broker("kafka", bootstrap);
  }

  private static String run(List<String> command) {
    try {
      Process proc = new ProcessBuilder(command).redirectErrorStream(true).start();
      String out = new String(proc.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      if (proc.waitFor() != 0) {
        throw new IllegalStateException(String.join(" ", command) + " failed: " + out.strip());
      }
      return out;
    } catch (IOException e) {
      throw new IllegalStateException("cannot run " + command, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  private static void stop(Process proc) {
    proc.destroy();
    try {
      if (!proc.waitFor(20, TimeUnit.SECONDS)) {
        proc.destroyForcibly();
      }
    } catch (InterruptedException e) {
      proc.destroyForcibly();
    }
  }
}
