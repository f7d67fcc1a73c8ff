//! Group coordinator error handling on the wire: the Kafka error codes a
//! client gets for bad joins, stale generations, unknown members and
//! unknown topics, and group deletion rules.

mod common;

use bytes::Bytes;
use common::Broker;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as E;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn join(group: &str, member: &str, session_ms: i32) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"md"))])
}

fn commit(group: &str, member: &str, generation: i32, topic: &str) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_generation_id_or_member_epoch(generation)
        .with_topics(vec![OffsetCommitRequestTopic::default().with_name(TopicName(s(topic))).with_partitions(vec![
            OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(5),
        ])])
}

/// Auto-creates topic "t" to commit offsets for.
fn create_topic_t(c: &mut common::Client) {
    let md = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s("t"))))]));
    let _: MetadataResponse = c.call(ApiKey::Metadata, 12, &md);
}

fn commit_error(c: &mut common::Client, req: &OffsetCommitRequest) -> i16 {
    let resp: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, req);
    resp.topics[0].partitions[0].error_code
}

#[test]
fn joins_commits_and_deletes_get_kafka_errors() {
    let broker = Broker::start(&["--group-initial-rebalance-delay-ms", "0"]);
    let mut c = broker.connect();
    create_topic_t(&mut c);

    let resp: JoinGroupResponse = c.call(ApiKey::JoinGroup, 9, &join("", "", 10_000));
    assert_eq!(resp.error_code, E::InvalidGroupId.code());
    let resp: JoinGroupResponse = c.call(ApiKey::JoinGroup, 9, &join("g", "", 10));
    assert_eq!(resp.error_code, E::InvalidSessionTimeout.code());

    // KIP-394: a new member first gets its id, then joins with it.
    let resp: JoinGroupResponse = c.call(ApiKey::JoinGroup, 9, &join("g", "", 10_000));
    assert_eq!(resp.error_code, E::MemberIdRequired.code());
    let member = resp.member_id.to_string();
    assert!(!member.is_empty());
    let resp: JoinGroupResponse = c.call(ApiKey::JoinGroup, 9, &join("g", &member, 10_000));
    assert_eq!((resp.error_code, resp.generation_id, resp.leader.as_str()), (0, 1, member.as_str()));
    assert_eq!(resp.members.len(), 1, "the leader gets the member list");
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_generation_id(1)
        .with_member_id(s(&member))
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(s(&member))
            .with_assignment(Bytes::from_static(b"mine"))]);
    let resp: SyncGroupResponse = c.call(ApiKey::SyncGroup, 5, &sync);
    assert_eq!((resp.error_code, &resp.assignment[..]), (0, &b"mine"[..]));

    let hb = |member: &str, generation: i32| {
        HeartbeatRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_member_id(s(member))
            .with_generation_id(generation)
    };
    let resp: HeartbeatResponse = c.call(ApiKey::Heartbeat, 4, &hb(&member, 1));
    assert_eq!(resp.error_code, 0);
    let resp: HeartbeatResponse = c.call(ApiKey::Heartbeat, 4, &hb(&member, 0));
    assert_eq!(resp.error_code, E::IllegalGeneration.code());
    let resp: HeartbeatResponse = c.call(ApiKey::Heartbeat, 4, &hb("nobody", 1));
    assert_eq!(resp.error_code, E::UnknownMemberId.code());

    assert_eq!(commit_error(&mut c, &commit("g", &member, 0, "t")), E::IllegalGeneration.code(), "stale generation");
    assert_eq!(commit_error(&mut c, &commit("g", "nobody", 1, "t")), E::UnknownMemberId.code());
    assert_eq!(commit_error(&mut c, &commit("g", &member, 1, "no-such-topic")), E::UnknownTopicOrPartition.code());
    assert_eq!(commit_error(&mut c, &commit("g", &member, 1, "t")), 0);
    // Standalone consumers (no group management) commit with generation -1.
    assert_eq!(commit_error(&mut c, &commit("solo", "", -1, "t")), 0);
    assert_eq!(commit_error(&mut c, &commit("solo-2", "x", 3, "t")), E::IllegalGeneration.code());

    let delete = |group: &str| DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]);
    let resp: DeleteGroupsResponse = c.call(ApiKey::DeleteGroups, 2, &delete("g"));
    assert_eq!(resp.results[0].error_code, E::NonEmptyGroup.code());
    let resp: DeleteGroupsResponse = c.call(ApiKey::DeleteGroups, 2, &delete("never-existed"));
    assert_eq!(resp.results[0].error_code, E::GroupIdNotFound.code());

    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_members(vec![leave_group_request::MemberIdentity::default().with_member_id(s(&member))]);
    let resp: LeaveGroupResponse = c.call(ApiKey::LeaveGroup, 5, &leave);
    assert_eq!((resp.error_code, resp.members[0].error_code), (0, 0));
    let resp: DeleteGroupsResponse = c.call(ApiKey::DeleteGroups, 2, &delete("g"));
    assert_eq!(resp.results[0].error_code, 0, "an empty group can be deleted");
    let fetch = OffsetFetchRequest::default().with_group_id(GroupId(s("g"))).with_topics(None);
    let resp: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 7, &fetch);
    assert!(resp.topics.is_empty(), "its offsets went with it");
}

#[test]
fn list_describe_and_offset_delete() {
    let broker = Broker::start(&["--group-initial-rebalance-delay-ms", "0"]);
    let mut c = broker.connect();
    create_topic_t(&mut c);
    assert_eq!(commit_error(&mut c, &commit("solo", "", -1, "t")), 0);

    let resp: ListGroupsResponse = c.call(ApiKey::ListGroups, 5, &ListGroupsRequest::default());
    let listed: Vec<_> = resp.groups.iter().map(|g| (g.group_id.as_str(), g.group_state.as_str())).collect();
    assert_eq!(listed, vec![("solo", "Empty")]);
    let stable_only = ListGroupsRequest::default().with_states_filter(vec![s("Stable")]);
    let resp: ListGroupsResponse = c.call(ApiKey::ListGroups, 5, &stable_only);
    assert!(resp.groups.is_empty());

    let resp: DescribeGroupsResponse = c.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("solo")), GroupId(s("ghost"))]),
    );
    assert_eq!(resp.groups[0].group_state.as_str(), "Empty");
    assert_eq!(resp.groups[1].group_state.as_str(), "Dead");

    let del = OffsetDeleteRequest::default().with_group_id(GroupId(s("solo"))).with_topics(vec![
        offset_delete_request::OffsetDeleteRequestTopic::default().with_name(TopicName(s("t"))).with_partitions(vec![
            offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(0),
        ]),
    ]);
    let resp: OffsetDeleteResponse = c.call(ApiKey::OffsetDelete, 0, &del);
    assert_eq!((resp.error_code, resp.topics[0].partitions[0].error_code), (0, 0));
    let fetch = OffsetFetchRequest::default().with_group_id(GroupId(s("solo"))).with_topics(None);
    let resp: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 7, &fetch);
    assert!(resp.topics.is_empty());
}

#[test]
fn internal_topic_missing_groups_and_coordinator_key_types() {
    let broker = Broker::start(&["--group-initial-rebalance-delay-ms", "0"]);
    let mut c = broker.connect();
    create_topic_t(&mut c);

    // Committing creates __consumer_offsets, which Metadata shows as internal.
    assert_eq!(commit_error(&mut c, &commit("solo", "", -1, "t")), 0);
    let md = MetadataRequest::default().with_topics(None);
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 12, &md);
    let internal: Vec<_> =
        resp.topics.iter().filter(|t| t.is_internal).map(|t| t.name.as_ref().unwrap().to_string()).collect();
    assert_eq!(internal, vec!["__consumer_offsets".to_string()]);

    let resp: DescribeGroupsResponse =
        c.call(ApiKey::DescribeGroups, 6, &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("ghost"))]));
    assert_eq!((resp.groups[0].error_code, resp.groups[0].group_state.as_str()), (E::GroupIdNotFound.code(), "Dead"));

    let find = FindCoordinatorRequest::default().with_key_type(2).with_coordinator_keys(vec![s("share")]);
    let resp: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 6, &find);
    assert_eq!(resp.coordinators[0].error_code, E::InvalidRequest.code());
    let find = FindCoordinatorRequest::default().with_coordinator_keys(vec![s("a"), s("b")]);
    let resp: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 6, &find);
    assert!(resp.coordinators.iter().all(|k| k.error_code == 0 && k.port == i32::from(broker.port)), "batched keys");
}

#[test]
fn shutdown_does_not_wait_for_a_pending_rebalance() {
    let broker = Broker::start(&["--group-initial-rebalance-delay-ms", "0"]);
    let mut a = broker.connect();
    let resp: JoinGroupResponse = a.call(ApiKey::JoinGroup, 9, &join("slow", "", 10_000));
    let first = resp.member_id.to_string();
    let resp: JoinGroupResponse = a.call(ApiKey::JoinGroup, 9, &join("slow", &first, 10_000));
    assert_eq!(resp.error_code, 0);
    // A second member's join now waits for the first to rejoin (up to 10 s).
    let mut b = broker.connect();
    let resp: JoinGroupResponse = b.call(ApiKey::JoinGroup, 9, &join("slow", "", 10_000));
    let second = resp.member_id.to_string();
    b.send(ApiKey::JoinGroup, 9, &join("slow", &second, 10_000));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let (code, _dir) = broker.terminate();
    assert_eq!(code, 0);
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "stopped in {:?}", started.elapsed());
    let (_, resp) = b.recv::<JoinGroupResponse>(9);
    assert_eq!(resp.error_code, E::CoordinatorNotAvailable.code(), "the waiting join is answered, not dropped");
}

/// A coordinator partition loads in the background: after a restart the
/// broker serves and applies metadata (a topic created meanwhile is there)
/// while the group's coordinator still answers COORDINATOR_LOAD_IN_PROGRESS
/// for a big `__consumer_offsets` log; once loaded, every offset is back.
#[test]
fn a_coordinator_partition_loads_without_holding_up_metadata() {
    const PARTITIONS: i32 = 100;
    const ROUNDS: i64 = 500;
    let args = ["--group-initial-rebalance-delay-ms", "0", "--log-cleaner-backoff-ms", "3600000"];
    let broker = Broker::start(&args);
    let mut c = broker.connect();
    create_topics(&mut c, "wide", PARTITIONS);
    // About 200 MB of commits, each with 4000 bytes of metadata.
    let metadata = "m".repeat(4000);
    for round in 0..ROUNDS {
        let partitions = (0..PARTITIONS)
            .map(|p| {
                OffsetCommitRequestPartition::default()
                    .with_partition_index(p)
                    .with_committed_offset(round)
                    .with_committed_metadata(Some(s(&metadata)))
            })
            .collect();
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(s("big")))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("wide")))
                .with_partitions(partitions)]);
        let resp: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &req);
        assert!(resp.topics[0].partitions.iter().all(|p| p.error_code == 0));
    }
    let broker = Broker::start_in(broker.kill9(), &args);
    let mut c = broker.connect();
    let fetch = OffsetFetchRequest::default().with_group_id(GroupId(s("big"))).with_topics(None);
    let loading = |c: &mut common::Client| {
        let resp: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 7, &fetch);
        match resp.error_code {
            0 => Some(resp),
            e => {
                assert_eq!(e, E::CoordinatorLoadInProgress.code());
                None
            }
        }
    };
    assert!(loading(&mut c).is_none(), "serving while the coordinator loads");
    create_topics(&mut c, "during", 1);
    let md = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s("during"))))
    ]));
    let resp: MetadataResponse = c.call(ApiKey::Metadata, 12, &md);
    assert_eq!(resp.topics[0].error_code, 0, "metadata applied meanwhile");
    assert!(loading(&mut c).is_none(), "the load was still going on");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let loaded = loop {
        if let Some(resp) = loading(&mut c) {
            break resp;
        }
        assert!(std::time::Instant::now() < deadline, "loaded in time");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let offsets: Vec<i64> = loaded.topics[0].partitions.iter().map(|p| p.committed_offset).collect();
    assert_eq!(offsets, vec![ROUNDS - 1; PARTITIONS as usize]);
}

fn create_topics(c: &mut common::Client, name: &str, partitions: i32) {
    let req = CreateTopicsRequest::default().with_topics(vec![create_topics_request::CreatableTopic::default()
        .with_name(TopicName(s(name)))
        .with_num_partitions(partitions)
        .with_replication_factor(1)]);
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req);
    assert_eq!(resp.topics[0].error_code, 0);
}

/// KIP-345 and KIP-814: a static leader restarting with new subscription
/// metadata (its owned partitions are gone) gets the current generation
/// back, told to skip the assignment, and the group does not rebalance.
#[test]
fn a_static_leader_rejoining_a_stable_group_skips_the_assignment() {
    let broker = Broker::start(&["--group-initial-rebalance-delay-ms", "0"]);
    let mut c = broker.connect();
    let static_join = |member: &str, metadata: &'static [u8]| {
        join("static", member, 10_000).with_group_instance_id(Some(s("a"))).with_protocols(vec![
            JoinGroupRequestProtocol::default().with_name(s("range")).with_metadata(Bytes::from_static(metadata)),
        ])
    };
    let first: JoinGroupResponse = c.call(ApiKey::JoinGroup, 9, &static_join("", b"owns p0"));
    assert_eq!((first.error_code, first.generation_id), (0, 1), "a static member joins at once");
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s("static")))
        .with_generation_id(1)
        .with_member_id(first.member_id.clone())
        .with_group_instance_id(Some(s("a")))
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(first.member_id.clone())
            .with_assignment(Bytes::from_static(b"p0"))]);
    let resp: SyncGroupResponse = c.call(ApiKey::SyncGroup, 5, &sync);
    assert_eq!(resp.error_code, 0);

    let again: JoinGroupResponse = c.call(ApiKey::JoinGroup, 9, &static_join("", b"owns nothing"));
    assert_eq!((again.error_code, again.generation_id), (0, 1), "no new generation");
    assert_ne!(again.member_id, first.member_id);
    assert_eq!(again.leader, again.member_id, "still the leader, under its new id");
    assert!(again.skip_assignment);
    assert_eq!(&again.members[0].metadata[..], b"owns nothing", "its metadata is replaced");
    let resp: SyncGroupResponse =
        c.call(ApiKey::SyncGroup, 5, &sync.with_member_id(again.member_id.clone()).with_assignments(vec![]));
    assert_eq!((resp.error_code, &resp.assignment[..]), (0, &b"p0"[..]), "the assignment it had");
    let hb = HeartbeatRequest::default()
        .with_group_id(GroupId(s("static")))
        .with_member_id(first.member_id)
        .with_group_instance_id(Some(s("a")))
        .with_generation_id(1);
    let resp: HeartbeatResponse = c.call(ApiKey::Heartbeat, 4, &hb);
    assert_eq!(resp.error_code, E::FencedInstanceId.code(), "the old id is fenced");
}
