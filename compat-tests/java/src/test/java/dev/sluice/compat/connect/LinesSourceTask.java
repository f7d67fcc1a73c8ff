// Sends the lines of a file appended since the committed source offset.
package dev.sluice.compat.connect;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.source.SourceRecord;
import org.apache.kafka.connect.source.SourceTask;

public class LinesSourceTask extends SourceTask {
  private Path file;
  private String topic;
  private long sent;

  @Override
  public void start(Map<String, String> props) {
    file = Path.of(props.get("file"));
    topic = props.get("topic");
    Map<String, Object> offset = context.offsetStorageReader().offset(partition());
    sent = offset == null ? 0 : ((Number) offset.get("lines")).longValue();
  }

  private Map<String, String> partition() {
    return Map.of("file", file.toString());
  }

  @Override
  public List<SourceRecord> poll() throws InterruptedException {
    List<String> lines;
    try {
      lines = Files.exists(file) ? Files.readAllLines(file) : List.of();
    } catch (IOException e) {
      throw new ConnectException("reading " + file, e);
    }
    // Only whole lines: the last one may still be being written.
    List<SourceRecord> out = new ArrayList<>();
    while (sent < lines.size()) {
      String line = lines.get((int) sent);
      sent++;
      out.add(new SourceRecord(partition(), Map.of("lines", sent), topic, null, Schema.STRING_SCHEMA, line));
    }
    if (out.isEmpty()) {
      Thread.sleep(200);
      return null;
    }
    return out;
  }

  @Override
  public void stop() {}

  @Override
  public String version() {
    return "1";
  }
}
