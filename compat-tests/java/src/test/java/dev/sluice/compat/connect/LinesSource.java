// A source connector of our own (connect-file 4.4.0 is not served by the
// package registry here): each line of a file becomes a record, and the
// source offset is the number of lines already sent.
package dev.sluice.compat.connect;

import java.util.List;
import java.util.Map;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.source.SourceConnector;

public class LinesSource extends SourceConnector {
  private Map<String, String> config;

  @Override
  public void start(Map<String, String> props) {
    config = Map.copyOf(props);
  }

  @Override
  public Class<? extends Task> taskClass() {
    return LinesSourceTask.class;
  }

  @Override
  public List<Map<String, String>> taskConfigs(int maxTasks) {
    return List.of(config);
  }

  @Override
  public void stop() {}

  @Override
  public ConfigDef config() {
    return new ConfigDef()
        .define("file", ConfigDef.Type.STRING, ConfigDef.Importance.HIGH, "file to read lines from")
        .define("topic", ConfigDef.Type.STRING, ConfigDef.Importance.HIGH, "topic to write them to");
  }

  @Override
  public String version() {
    return "1";
  }
}
