// Runs one of Kafka's command-line tools the way its bin/ script does: a
// JVM of its own with the tools on the classpath, arguments, optional
// stdin; returns what a person would read.
package dev.sluice.compat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

public final class Tool {
  /** A finished tool run. */
  public record Run(int exit, String out, String err) {
    @Override
    public String toString() {
      return "exit " + exit + "\n--- stdout\n" + out + "--- stderr\n" + err;
    }
  }

  private Tool() {}

  static List<String> command(String mainClass, String... args) {
    List<String> cmd = new ArrayList<>(List.of(
        Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
        "-cp", System.getProperty("java.class.path"), mainClass));
    cmd.addAll(List.of(args));
    return cmd;
  }

  /** Starts a long-running JVM (an application under test), its output going to `log`. */
  public static Process start(Path log, String mainClass, String... args) {
    try {
      return new ProcessBuilder(command(mainClass, args)).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    } catch (IOException e) {
      throw new AssertionError("cannot start " + mainClass, e);
    }
  }

  public static Run run(String mainClass, String stdin, String... args) {
    List<String> cmd = command(mainClass, args);
    try {
      Path out = Files.createTempFile("tool", ".out");
      Path err = Files.createTempFile("tool", ".err");
      ProcessBuilder pb = new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(err.toFile());
      Process proc = pb.start();
      try (var in = proc.getOutputStream()) {
        if (stdin != null) {
          in.write(stdin.getBytes(StandardCharsets.UTF_8));
        }
      }
      if (!proc.waitFor(120, TimeUnit.SECONDS)) {
        proc.destroyForcibly();
        throw new AssertionError(mainClass + " did not finish within 120 s");
      }
      Run run = new Run(proc.exitValue(), Files.readString(out), Files.readString(err));
      Files.delete(out);
      Files.delete(err);
      return run;
    } catch (IOException e) {
      throw new AssertionError("cannot run " + mainClass, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new AssertionError(e);
    }
  }

  /** Runs the tool and fails the test unless it exits 0. */
  public static String ok(String mainClass, String stdin, String... args) {
    Run run = run(mainClass, stdin, args);
    if (run.exit() != 0) {
      throw new AssertionError(mainClass + " " + String.join(" ", args) + " failed:\n" + run);
    }
    return run.out();
  }
}
