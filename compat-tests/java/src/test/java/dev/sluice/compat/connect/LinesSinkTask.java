// Appends record values to a file, flushed before Connect commits offsets.
package dev.sluice.compat.connect;

import java.io.IOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collection;
import java.util.Map;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTask;

public class LinesSinkTask extends SinkTask {
  private Writer out;

  @Override
  public void start(Map<String, String> props) {
    try {
      out = Files.newBufferedWriter(Path.of(props.get("file")), StandardCharsets.UTF_8, StandardOpenOption.CREATE,
          StandardOpenOption.APPEND);
    } catch (IOException e) {
      throw new ConnectException("opening " + props.get("file"), e);
    }
  }

  @Override
  public void put(Collection<SinkRecord> records) {
    try {
      for (SinkRecord r : records) {
        out.write(r.value() + "\n");
      }
    } catch (IOException e) {
      throw new ConnectException("writing", e);
    }
  }

  @Override
  public void flush(Map<TopicPartition, OffsetAndMetadata> offsets) {
    try {
      out.flush();
    } catch (IOException e) {
      throw new ConnectException("flushing", e);
    }
  }

  @Override
  public void stop() {
    try {
      out.close();
    } catch (IOException e) {
      throw new ConnectException("closing", e);
    }
  }

  @Override
  public String version() {
    return "1";
  }
}
