//! Tests of transactional offset commits against a real coordinator: a broker in a temporary
//! directory with one `__consumer_offsets` partition, so every group lives in partition 0.
//! Markers are appended by hand as control batches, then the partition is replayed.

use tempfile::TempDir;

use super::{
    CommitOffset, CommitParams, Coordinator, GroupError, JoinParams, TxnCommitParams, OFFSETS_TOPIC,
};
use crate::config::Config;
use crate::context::BrokerContext;
use crate::shard::ShardState;
use crate::Broker; // a whole broker, through the crate's entry point, as an integration test would

async fn start() -> (Broker, TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pairs = [
        ("listeners", "PLAINTEXT://127.0.0.1:0".to_string()),
        ("log.dirs", dir.path().display().to_string()),
        ("num.shards", "1".to_string()),
        ("kinesis.listener", "127.0.0.1:0".to_string()),
        ("metrics.listener", "127.0.0.1:0".to_string()),
        ("offsets.topic.num.partitions", "1".to_string()),
        ("group.initial.rebalance.delay.ms", "0".to_string()),
        ("group.min.session.timeout.ms", "100".to_string()),
    ];
    let config = Config::from_pairs(pairs.into_iter().map(|(k, v)| (k.to_string(), v)))
        .expect("valid config");
    let broker = Broker::start(config).await.expect("broker starts");
    (broker, dir)
}

fn offsets(list: &[(&str, i32, i64)]) -> Vec<CommitOffset> {
    list.iter()
        .map(|(t, p, o)| CommitOffset {
            topic: t.to_string(),
            partition: *p,
            offset: *o,
            leader_epoch: -1,
            metadata: Some("m".into()),
        })
        .collect()
}

fn txn_params(group: &str, producer_id: i64, list: &[(&str, i32, i64)]) -> TxnCommitParams {
    TxnCommitParams {
        group_id: group.into(),
        transactional_id: format!("tx-{producer_id}"),
        producer_id,
        producer_epoch: 0,
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        offsets: offsets(list),
    }
}

/// A TxnOffsetCommit without member (as before v3); every partition must succeed.
async fn txn(c: &Coordinator, group: &str, producer_id: i64, list: &[(&str, i32, i64)]) {
    let r = c.txn_commit(txn_params(group, producer_id, list)).await;
    assert_eq!(r, Ok(vec![Ok(()); list.len()]), "txn commit {list:?}");
}

/// A standalone OffsetCommit; every partition must succeed.
async fn plain(c: &Coordinator, group: &str, list: &[(&str, i32, i64)]) {
    let r = c
        .commit(CommitParams {
            group_id: group.into(),
            member_id: String::new(),
            instance_id: None,
            generation: -1,
            offsets: offsets(list),
        })
        .await;
    assert_eq!(r, Ok(vec![Ok(()); list.len()]), "commit {list:?}");
}

/// OffsetFetch of `parts`: (offset, error) per partition.
async fn fetch(
    c: &Coordinator,
    group: &str,
    parts: &[(&str, i32)],
    require_stable: bool,
) -> Vec<(i64, Option<GroupError>)> {
    let parts = parts.iter().map(|(t, p)| (t.to_string(), *p)).collect();
    c.fetch_offsets(group, Some(parts), None, require_stable)
        .await
        .expect("fetch")
        .into_iter()
        .map(|o| (o.offset, o.error))
        .collect()
}

fn visible(list: &[i64]) -> Vec<(i64, Option<GroupError>)> {
    list.iter().map(|o| (*o, None)).collect()
}

/// Appends a marker to `__consumer_offsets-0` without telling the coordinator.
async fn write_marker(ctx: &BrokerContext, producer_id: i64, commit: bool) {
    let (_, wait) = ctx
        .shard(OFFSETS_TOPIC, 0)
        .call(move |s: &mut ShardState| {
            s.write_txn_marker(OFFSETS_TOPIC, 0, producer_id, 0, commit, 0)
        })
        .await
        .expect("shard")
        .expect("append");
    if let Some(w) = wait {
        w.await.expect("fsync answered").expect("fsync");
    }
}

/// What the partition leader does for a marker: append it, then tell the coordinator.
async fn end_txn(ctx: &BrokerContext, producer_id: i64, commit: bool) {
    write_marker(ctx, producer_id, commit).await;
    ctx.coordinator
        .complete_transaction(0, producer_id, commit)
        .await;
}

async fn reload(c: &Coordinator) {
    c.unload_partition(0).await;
    c.load_partition(0).await.expect("replay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_offsets_show_on_commit_and_vanish_on_abort() {
    let (broker, _dir) = start().await;
    let ctx = broker.context();
    let c = &ctx.coordinator;
    plain(c, "g", &[("t", 0, 5)]).await;
    txn(c, "g", 100, &[("t", 0, 10), ("t", 1, 20)]).await;
    let parts = [("t", 0), ("t", 1)];
    assert_eq!(fetch(c, "g", &parts, false).await, visible(&[5, -1]));
    let unstable = Some(GroupError::UnstableOffsetCommit);
    assert_eq!(
        fetch(c, "g", &parts, true).await,
        vec![(-1, unstable), (-1, unstable)]
    );
    // Every partition: only committed ones are listed, those with pending offsets unstable.
    let all = c.fetch_offsets("g", None, None, true).await.expect("fetch");
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].partition, all[0].error), (0, unstable));
    // Another producer's marker changes nothing.
    end_txn(ctx, 999, true).await;
    assert_eq!(fetch(c, "g", &parts, false).await, visible(&[5, -1]));
    end_txn(ctx, 100, true).await;
    assert_eq!(fetch(c, "g", &parts, true).await, visible(&[10, 20]));

    txn(c, "g", 100, &[("t", 0, 30), ("t", 1, 40)]).await;
    end_txn(ctx, 100, false).await;
    assert_eq!(fetch(c, "g", &parts, true).await, visible(&[10, 20]));
    // Nothing pending is left to replay either.
    reload(c).await;
    assert_eq!(fetch(c, "g", &parts, true).await, visible(&[10, 20]));

    // A group that only an aborted transaction created goes away.
    txn(c, "only-txn", 101, &[("t", 0, 1)]).await;
    end_txn(ctx, 101, false).await;
    assert!(c
        .list()
        .await
        .expect("list")
        .iter()
        .all(|g| g.group_id != "only-txn"));
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_later_record_wins_when_a_transaction_commits() {
    let (broker, _dir) = start().await;
    let ctx = broker.context();
    let c = &ctx.coordinator;
    // A plain commit written after the transactional one keeps its value.
    txn(c, "g", 200, &[("t", 0, 10)]).await;
    plain(c, "g", &[("t", 0, 7)]).await;
    assert_eq!(fetch(c, "g", &[("t", 0)], false).await, visible(&[7]));
    end_txn(ctx, 200, true).await;
    assert_eq!(fetch(c, "g", &[("t", 0)], true).await, visible(&[7]));
    // A transactional commit written after the plain one replaces it.
    plain(c, "g", &[("t", 1, 3)]).await;
    txn(c, "g", 201, &[("t", 1, 9)]).await;
    end_txn(ctx, 201, true).await;
    assert_eq!(fetch(c, "g", &[("t", 1)], true).await, visible(&[9]));
    // Replay reaches the same state.
    reload(c).await;
    assert_eq!(
        fetch(c, "g", &[("t", 0), ("t", 1)], true).await,
        visible(&[7, 9])
    );
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_completes_transactions_from_their_markers() {
    let (broker, _dir) = start().await;
    let ctx = broker.context();
    let c = &ctx.coordinator;
    plain(c, "g", &[("t", 0, 1)]).await;
    txn(c, "g", 1, &[("t", 0, 10), ("t", 1, 11)]).await;
    plain(c, "g", &[("t", 1, 7)]).await;
    txn(c, "g", 2, &[("t", 2, 20)]).await;
    txn(c, "h", 3, &[("t", 3, 30)]).await;
    write_marker(ctx, 1, true).await;
    write_marker(ctx, 2, false).await;
    let parts = [("t", 0), ("t", 1), ("t", 2)];
    // The coordinator was not told: everything is still pending.
    assert_eq!(fetch(c, "g", &parts, false).await, visible(&[1, 7, -1]));

    reload(c).await;
    // Producer 1 committed (its (t,1) is older than the plain commit), producer 2 aborted,
    // producer 3 is still open.
    assert_eq!(fetch(c, "g", &parts, true).await, visible(&[10, 7, -1]));
    assert_eq!(
        fetch(c, "h", &[("t", 3)], true).await,
        vec![(-1, Some(GroupError::UnstableOffsetCommit))]
    );
    end_txn(ctx, 3, true).await;
    assert_eq!(fetch(c, "h", &[("t", 3)], true).await, visible(&[30]));
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_not_loaded_leaves_markers_to_its_replay() {
    let (broker, _dir) = start().await;
    let ctx = broker.context();
    let c = &ctx.coordinator;
    txn(c, "g", 5, &[("t", 0, 10)]).await;
    c.unload_partition(0).await;
    // The call answers at once and changes nothing; the replay finds the marker.
    end_txn(ctx, 5, true).await;
    c.load_partition(0).await.expect("replay");
    assert_eq!(fetch(c, "g", &[("t", 0)], true).await, visible(&[10]));
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_and_generation_are_checked_when_given() {
    let (broker, _dir) = start().await;
    let ctx = broker.context();
    let c = &ctx.coordinator;
    let joined = c
        .join(JoinParams {
            group_id: "g".into(),
            member_id: String::new(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), bytes::Bytes::new())],
            require_known_member_id: false,
        })
        .await;
    assert_eq!(joined.error, None);
    assert_eq!(joined.generation, 1);
    let member = joined.member_id;
    let with = |member: &str, generation: i32| TxnCommitParams {
        generation_id: generation,
        member_id: member.to_string(),
        ..txn_params("g", 300, &[("t", 0, 10)])
    };
    assert_eq!(
        c.txn_commit(with(&member, 7)).await,
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        c.txn_commit(with("stranger", 1)).await,
        Err(GroupError::UnknownMemberId)
    );
    let fenced = TxnCommitParams {
        group_instance_id: Some("i1".into()),
        ..with(&member, 1)
    };
    assert_eq!(c.txn_commit(fenced).await, Err(GroupError::UnknownMemberId));
    // Nothing was written: no transaction is pending.
    assert_eq!(fetch(c, "g", &[("t", 0)], true).await, visible(&[-1]));
    // The member of the current generation may commit, also while the group rebalances, and
    // so may a producer that names no member (before v3).
    assert_eq!(c.txn_commit(with(&member, 1)).await, Ok(vec![Ok(())]));
    assert_eq!(c.txn_commit(with("", -1)).await, Ok(vec![Ok(())]));

    // A group that does not exist: a generation is stale, none creates the group.
    let unknown = TxnCommitParams {
        generation_id: 2,
        member_id: "m".into(),
        ..txn_params("nobody", 301, &[("t", 0, 1)])
    };
    assert_eq!(
        c.txn_commit(unknown).await,
        Err(GroupError::IllegalGeneration)
    );
    txn(c, "new", 301, &[("t", 0, 1)]).await;
    // Metadata over offset.metadata.max.bytes fails that partition only.
    let mut big = txn_params("new", 301, &[("t", 1, 1), ("t", 2, 2)]);
    big.offsets[0].metadata = Some("x".repeat(c.config().offset_metadata_max_bytes + 1));
    assert_eq!(
        c.txn_commit(big).await,
        Ok(vec![Err(GroupError::OffsetMetadataTooLarge), Ok(())])
    );
    end_txn(ctx, 301, true).await;
    assert_eq!(
        fetch(c, "new", &[("t", 0), ("t", 1), ("t", 2)], true).await,
        visible(&[1, -1, 2])
    );
    assert_eq!(c.txn_commit(with("", -1)).await, Ok(vec![Ok(())]));
    assert_eq!(
        c.txn_commit(TxnCommitParams {
            group_id: String::new(),
            ..with("", -1)
        })
        .await,
        Err(GroupError::InvalidGroupId)
    );
    broker.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marker_during_the_write_applies_once_it_is_durable() {
    let (broker, _dir) = start().await;
    let c = &broker.context().coordinator;
    // Both commands are queued before the write can be durable: the marker finds the write
    // in flight (or, if the fsync was quicker, pending); either way the outcome is the same.
    let (written, ()) = tokio::join!(
        c.txn_commit(txn_params("g", 400, &[("t", 0, 10)])),
        c.complete_transaction(0, 400, true)
    );
    assert_eq!(written, Ok(vec![Ok(())]));
    assert_eq!(fetch(c, "g", &[("t", 0)], true).await, visible(&[10]));
    let (written, ()) = tokio::join!(
        c.txn_commit(txn_params("g", 401, &[("t", 0, 20)])),
        c.complete_transaction(0, 401, false)
    );
    assert_eq!(written, Ok(vec![Ok(())]));
    assert_eq!(fetch(c, "g", &[("t", 0)], true).await, visible(&[10]));
    broker.shutdown().await.expect("shutdown");
}
