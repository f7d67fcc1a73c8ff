// The Java Admin client: every method whose API Sluice advertises, with the
// answers a user reads from it, and the UnsupportedVersionException (not a
// hang) for an API it does not.
package dev.sluice.compat;

import static dev.sluice.compat.Clients.admin;
import static dev.sluice.compat.Clients.consumer;
import static dev.sluice.compat.Clients.fill;
import static dev.sluice.compat.Clients.poll;
import static dev.sluice.compat.Clients.producer;
import static dev.sluice.compat.Clients.topic;
import static dev.sluice.compat.Clients.unique;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sluice.compat.Brokers.Broker;
import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.AbortTransactionSpec;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.RemoveMembersFromConsumerGroupOptions;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.ElectionNotNeededException;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.quota.ClientQuotaFilter;

class AdminTest {
  static Throwable cause(Future<?> f) {
    ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(30, TimeUnit.SECONDS));
    return e.getCause();
  }

  @OnBoth
  void topicsAreCreatedListedDescribedGrownAndDeleted(Broker broker) throws Exception {
    String name = unique("admin-topic");
    try (Admin admin = admin(broker)) {
      NewTopic topic = new NewTopic(name, 2, (short) 1).configs(Map.of("cleanup.policy", "compact"));
      admin.createTopics(List.of(topic), new CreateTopicsOptions().validateOnly(true)).all().get();
      assertFalse(admin.listTopics().names().get().contains(name), "validateOnly creates nothing");
      admin.createTopics(List.of(topic)).all().get();
      assertInstanceOf(TopicExistsException.class, cause(admin.createTopics(List.of(topic)).all()));
      assertTrue(admin.listTopics().names().get().contains(name));

      TopicDescription d = admin.describeTopics(List.of(name)).allTopicNames().get().get(name);
      assertEquals(2, d.partitions().size());
      assertEquals(1, d.partitions().get(0).replicas().size());
      assertEquals(d.partitions().get(0).leader(), d.partitions().get(0).isr().get(0));
      assertFalse(d.isInternal());

      admin.createPartitions(Map.of(name, NewPartitions.increaseTo(5))).all().get();
      assertEquals(5, admin.describeTopics(List.of(name)).allTopicNames().get().get(name).partitions().size());
      assertInstanceOf(
          InvalidPartitionsException.class, cause(admin.createPartitions(Map.of(name, NewPartitions.increaseTo(3))).all()));

      admin.deleteTopics(List.of(name)).all().get();
      assertInstanceOf(UnknownTopicOrPartitionException.class, cause(admin.deleteTopics(List.of(name)).all()));
      assertInstanceOf(
          UnknownTopicOrPartitionException.class, cause(admin.describeTopics(List.of(name)).allTopicNames()));
    }
  }

  @OnBoth
  void configsAreDescribedAndIncrementallyAltered(Broker broker) throws Exception {
    String name = topic(broker, "admin-configs", 1, Map.of("retention.ms", "3600000"));
    ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, name);
    try (Admin admin = admin(broker)) {
      Config config = admin.describeConfigs(List.of(resource)).all().get().get(resource);
      ConfigEntry retention = config.get("retention.ms");
      assertEquals("3600000", retention.value());
      assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, retention.source());
      ConfigEntry segment = config.get("segment.bytes");
      assertEquals("1073741824", segment.value());
      assertTrue(segment.isDefault());
      assertEquals(ConfigEntry.ConfigSource.DEFAULT_CONFIG, segment.source());
      assertEquals("delete", config.get("cleanup.policy").value());

      admin
          .incrementalAlterConfigs(
              Map.of(
                  resource,
                  List.of(
                      new AlterConfigOp(new ConfigEntry("retention.ms", null), AlterConfigOp.OpType.DELETE),
                      new AlterConfigOp(new ConfigEntry("max.message.bytes", "20000"), AlterConfigOp.OpType.SET),
                      new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.APPEND))))
          .all()
          .get();
      config = admin.describeConfigs(List.of(resource)).all().get().get(resource);
      assertEquals("604800000", config.get("retention.ms").value());
      assertTrue(config.get("retention.ms").isDefault());
      assertEquals("20000", config.get("max.message.bytes").value());
      assertEquals("delete,compact", config.get("cleanup.policy").value());

      Throwable bad =
          cause(
              admin
                  .incrementalAlterConfigs(
                      Map.of(
                          resource,
                          List.of(new AlterConfigOp(new ConfigEntry("retention.ms", "soon"), AlterConfigOp.OpType.SET))))
                  .all());
      assertInstanceOf(InvalidConfigurationException.class, bad);

      String brokerId = String.valueOf(admin.describeCluster().controller().get().id());
      ConfigResource node = new ConfigResource(ConfigResource.Type.BROKER, brokerId);
      Config brokerConfig = admin.describeConfigs(List.of(node)).all().get().get(node);
      assertEquals("1", brokerConfig.get("num.partitions").value());
      assertEquals("true", brokerConfig.get("auto.create.topics.enable").value());
    }
  }

  @OnBoth
  void recordsAreDeletedAndOffsetsListed(Broker broker) throws Exception {
    String name = topic(broker, "admin-records", 1);
    long t0 = System.currentTimeMillis() - 10_000;
    try (KafkaProducer<String, String> p = producer(broker, Map.of())) {
      for (int i = 0; i < 10; i++) {
        p.send(new ProducerRecord<>(name, 0, t0 + (i == 6 ? 9000 : i * 100L), null, "r" + i));
      }
    }
    TopicPartition tp = new TopicPartition(name, 0);
    try (Admin admin = admin(broker)) {
      assertEquals(4, admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(4))).lowWatermarks().get(tp).get().lowWatermark());
      Map<OffsetSpec, Long> expected =
          Map.of(
              OffsetSpec.earliest(), 4L,
              OffsetSpec.latest(), 10L,
              OffsetSpec.forTimestamp(t0 + 450), 5L,
              OffsetSpec.maxTimestamp(), 6L,
              OffsetSpec.earliestLocal(), 4L);
      for (Map.Entry<OffsetSpec, Long> e : expected.entrySet()) {
        ListOffsetsResultInfo info = admin.listOffsets(Map.of(tp, e.getKey())).partitionResult(tp).get();
        assertEquals(e.getValue(), info.offset(), e.getKey().getClass().getSimpleName());
      }
      assertEquals(
          -1,
          admin.listOffsets(Map.of(tp, OffsetSpec.forTimestamp(t0 + 60_000))).partitionResult(tp).get().offset(),
          "no record at or after that time");
    }
  }

  @OnBoth
  void clusterLogDirsAndLeadership(Broker broker) throws Exception {
    String name = topic(broker, "admin-cluster", 1);
    fill(broker, name, 1, 5);
    TopicPartition tp = new TopicPartition(name, 0);
    try (Admin admin = admin(broker)) {
      DescribeClusterResult cluster = admin.describeCluster();
      assertEquals(1, cluster.nodes().get().size());
      int id = cluster.nodes().get().iterator().next().id();
      assertEquals(id, cluster.controller().get().id());
      assertFalse(cluster.clusterId().get().isEmpty());

      Map<String, LogDirDescription> dirs = admin.describeLogDirs(List.of(id)).allDescriptions().get().get(id);
      assertEquals(1, dirs.size());
      LogDirDescription dir = dirs.values().iterator().next();
      assertTrue(dir.error() == null);
      assertTrue(dir.replicaInfos().get(tp).size() > 0, "the partition's bytes are counted");
      assertTrue(dir.totalBytes().orElse(0) > 0 && dir.usableBytes().orElse(0) > 0);

      Optional<Throwable> election = admin.electLeaders(ElectionType.PREFERRED, Set.of(tp)).partitions().get().get(tp);
      assertInstanceOf(ElectionNotNeededException.class, election.orElse(null));

      assertTrue(admin.listPartitionReassignments().reassignments().get().isEmpty());
      admin.alterPartitionReassignments(Map.of(tp, Optional.of(new NewPartitionReassignment(List.of(id))))).all().get();
      assertTrue(admin.listPartitionReassignments().reassignments().get().isEmpty(), "a no-op move completes at once");
      Throwable noBroker =
          cause(admin.alterPartitionReassignments(Map.of(tp, Optional.of(new NewPartitionReassignment(List.of(id + 100))))).all());
      assertEquals("InvalidReplicaAssignmentException", noBroker.getClass().getSimpleName(), noBroker.toString());
    }
  }

  @OnBoth
  void consumerGroupsAreListedDescribedEditedAndDeleted(Broker broker) throws Exception {
    String name = topic(broker, "admin-groups", 2);
    fill(broker, name, 2, 10);
    String group = unique("admin-group");
    TopicPartition p0 = new TopicPartition(name, 0);
    TopicPartition p1 = new TopicPartition(name, 1);
    try (Admin admin = admin(broker)) {
      try (KafkaConsumer<String, String> c = consumer(broker, group, Map.of("client.id", "the-member"))) {
        c.subscribe(List.of(name));
        poll(c, 20);
        c.commitSync(Map.of(p0, new OffsetAndMetadata(10), p1, new OffsetAndMetadata(4)));

        Collection<GroupListing> groups = admin.listGroups().all().get();
        GroupListing listing = groups.stream().filter(g -> g.groupId().equals(group)).findFirst().orElseThrow();
        assertEquals(Optional.of(GroupState.STABLE), listing.groupState());
        assertEquals("consumer", listing.protocol());

        ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).all().get().get(group);
        assertEquals(GroupState.STABLE, d.groupState());
        assertEquals("range", d.partitionAssignor());
        assertEquals(1, d.members().size());
        assertEquals("the-member", d.members().iterator().next().clientId());
        assertEquals(Set.of(p0, p1), d.members().iterator().next().assignment().topicPartitions());

        assertInstanceOf(GroupNotEmptyException.class, cause(admin.deleteConsumerGroups(List.of(group)).all()));
        Throwable active =
            cause(admin.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(1))).all());
        assertEquals("UnknownMemberIdException", active.getClass().getSimpleName(), active.toString());
        admin
            .removeMembersFromConsumerGroup(group, new RemoveMembersFromConsumerGroupOptions())
            .all()
            .get();
      }
      assertEquals(
          Map.of(p0, new OffsetAndMetadata(10), p1, new OffsetAndMetadata(4)),
          admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get());
      admin.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(2))).all().get();
      admin.deleteConsumerGroupOffsets(group, Set.of(p1)).all().get();
      assertEquals(
          Map.of(p0, new OffsetAndMetadata(2)), admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get());
      admin.deleteConsumerGroups(List.of(group)).all().get();
      assertTrue(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get().isEmpty());
    }
  }

  @OnBoth
  void producersAndTransactionsAreDescribedAndAHangingOneAborted(Broker broker) throws Exception {
    String name = topic(broker, "admin-txn", 1);
    String id = unique("admin-txn");
    TopicPartition tp = new TopicPartition(name, 0);
    try (Admin admin = admin(broker);
        KafkaProducer<String, String> p = producer(broker, Map.of("transactional.id", id))) {
      p.initTransactions();
      p.beginTransaction();
      p.send(new ProducerRecord<>(name, "open")).get();

      TransactionListing listing =
          admin.listTransactions().all().get().stream().filter(t -> t.transactionalId().equals(id)).findFirst().orElseThrow();
      assertEquals(TransactionState.ONGOING, listing.state());
      TransactionDescription t = admin.describeTransactions(List.of(id)).description(id).get();
      assertEquals(TransactionState.ONGOING, t.state());
      assertEquals(Set.of(tp), t.topicPartitions());
      assertEquals(listing.producerId(), t.producerId());

      ProducerState state = admin.describeProducers(List.of(tp)).partitionResult(tp).get().activeProducers().get(0);
      assertEquals(t.producerId(), state.producerId());
      assertEquals(java.util.OptionalLong.of(0L), state.currentTransactionStartOffset());

      // What kafka-transactions.sh abort does for a transaction whose producer is gone.
      admin
          .abortTransaction(
              new AbortTransactionSpec(tp, state.producerId(), (short) state.producerEpoch(), state.coordinatorEpoch().orElse(0)))
          .all()
          .get();
      ProducerState after = admin.describeProducers(List.of(tp)).partitionResult(tp).get().activeProducers().get(0);
      assertFalse(after.currentTransactionStartOffset().isPresent(), "the partition has no open transaction");
      try (KafkaConsumer<String, String> c = consumer(broker, null, Map.of("isolation.level", "read_committed"))) {
        assertEquals(Map.of(tp, 2L), c.endOffsets(List.of(tp)), "the record and its abort marker are stable");
      }
    }
  }

  @OnBoth
  void anApiTheBrokerDoesNotAdvertiseFailsWithUnsupportedVersion(Broker broker) throws Exception {
    try (Admin admin = admin(broker)) {
      if (broker.isSluice()) {
        // Sluice has no authorizer and no quotas: it advertises neither API.
        assertInstanceOf(UnsupportedVersionException.class, cause(admin.describeAcls(AclBindingFilter.ANY).values()));
        assertInstanceOf(
            UnsupportedVersionException.class, cause(admin.describeClientQuotas(ClientQuotaFilter.all()).entities()));
      } else {
        // Kafka serves both; without an authorizer DescribeAcls says so.
        assertEquals(
            "SecurityDisabledException",
            cause(admin.describeAcls(AclBindingFilter.ANY).values()).getClass().getSimpleName());
        assertTrue(admin.describeClientQuotas(ClientQuotaFilter.all()).entities().get().isEmpty());
      }
    }
  }
}
