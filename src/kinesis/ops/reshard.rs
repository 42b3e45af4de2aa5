//! SplitShard, MergeShards and UpdateShardCount. Resharding closes parent shards and opens
//! children as new partitions of the topic (`BrokerContext::add_partitions`, so Kafka clients
//! see them through Metadata). A closed shard keeps its data until retention removes it and
//! remains readable; its EndingSequenceNumber is the last record it held when it closed, and
//! GetRecords answers no NextShardIterator (but its ChildShards) once it is drained. All three
//! complete before they answer, so the stream is ACTIVE again at once.

use super::{parse_shard_id, required, shard_id, stream_name_of, Stream};
use crate::context::BrokerContext;
use crate::kinesis::error::KinesisError;
use crate::kinesis::hash::{even_ranges, parse_hash_key, HashRange};
use crate::kinesis::model::{
    Empty, MergeShardsInput, SplitShardInput, UpdateShardCountInput, UpdateShardCountOutput,
};
use crate::kinesis::sigv4::Caller;
use crate::kinesis::store::{Closed, ShardMeta, StreamMeta};
use crate::kinesis::{Kinesis, ACCOUNT_ID};

/// Adds `children` (their partitions are the next ones of the topic), closes `parents` at
/// their current log end, and stores the new metadata.
async fn reshard(
    k: &Kinesis,
    stream: &Stream,
    parents: &[i32],
    children: Vec<ShardMeta>,
) -> Result<(), KinesisError> {
    let open_after =
        stream.meta.open_shards() as i64 - parents.len() as i64 + children.len() as i64;
    let open_elsewhere: i64 = k
        .all_streams()
        .iter()
        .filter(|s| s.name != stream.name)
        .map(|s| s.meta.open_shards() as i64)
        .sum();
    if open_elsewhere + open_after > k.config.shard_limit {
        return Err(KinesisError::LimitExceeded(format!(
            "This request would exceed the shard limit for the account {ACCOUNT_ID} in this \
             region. Limit: {}.",
            k.config.shard_limit
        )));
    }
    let count = stream.topic.partitions + children.len() as i32;
    k.ctx
        .add_partitions(&stream.topic.name, count)
        .await
        .map_err(KinesisError::Internal)?;
    let now = BrokerContext::now_ms();
    let mut meta: StreamMeta = (*stream.meta).clone();
    meta.shards.truncate(stream.topic.partitions as usize);
    for &p in parents {
        let (_, end) = k.offsets(&stream.topic, p).await?;
        if let Some(s) = meta.shards.iter_mut().find(|s| s.partition == p) {
            s.closed = Some(Closed {
                end_offset: end,
                at_ms: now,
            });
        }
    }
    meta.shards.extend(children);
    meta.updating_until_ms = now + k.config.update_stream_ms;
    k.streams
        .put(&stream.topic.name, meta)
        .await
        .map_err(|e| KinesisError::Internal(format!("cannot store stream metadata: {e}")))?;
    tracing::info!(stream = %stream.name, ?parents, partitions = count, "kinesis stream resharded");
    Ok(())
}

/// A shard SplitShard or MergeShards names, or AWS's "Could not find shard" for one the stream
/// lacks.
fn shard_of(stream: &Stream, partition: i32) -> Result<ShardMeta, KinesisError> {
    stream
        .meta
        .shard(partition)
        .cloned()
        .ok_or_else(|| KinesisError::could_not_find_shard(&stream.name, &shard_id(partition)))
}

fn not_open(stream: &str, shard: &ShardMeta) -> KinesisError {
    KinesisError::InvalidArgument(format!(
        "Shard {} in stream {stream} under account {ACCOUNT_ID} has already been merged or \
         split, and thus is not eligible for merging or splitting.",
        shard_id(shard.partition)
    ))
}

/// Handles SplitShard.
pub async fn split(
    k: &Kinesis,
    req: SplitShardInput,
    caller: &Caller,
) -> Result<Empty, KinesisError> {
    let name = stream_name_of(&req)?;
    k.authorize(caller, "SplitShard", crate::auth::Operation::Alter, &name)?;
    let to_split = required(req.shard_to_split, "shardToSplit")?;
    let raw_key = required(req.new_starting_hash_key, "newStartingHashKey")?;
    let key = parse_hash_key(&raw_key).map_err(|_| {
        KinesisError::validation(
            &raw_key,
            "newStartingHashKey",
            "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})",
        )
    })?;
    let partition = parse_shard_id(&to_split)
        .ok_or_else(|| KinesisError::could_not_find_shard(&name, &to_split))?;
    let _admin = k.streams.admin.lock().await;
    let stream = k.stream(&name)?;
    super::require_active(&stream)?;
    let parent = shard_of(&stream, partition)?;
    if !parent.is_open() {
        return Err(not_open(&name, &parent));
    }
    let range = parent.range();
    if key <= range.start.saturating_add(1) || key >= range.end {
        return Err(KinesisError::InvalidArgument(format!(
            "NewStartingHashKey {raw_key} used in SplitShard() on shard {} in stream {name} under \
             account {ACCOUNT_ID} is not both greater than one plus the shard's StartingHashKey \
             {} and less than the shard's EndingHashKey {}.",
            shard_id(parent.partition),
            range.start,
            range.end
        )));
    }
    let now = BrokerContext::now_ms();
    let next = stream.topic.partitions;
    let child = |p: i32, r: HashRange| ShardMeta {
        parent: Some(parent.partition),
        ..ShardMeta::new(p, r, now)
    };
    let children = vec![
        child(
            next,
            HashRange {
                start: range.start,
                end: key - 1,
            },
        ),
        child(
            next + 1,
            HashRange {
                start: key,
                end: range.end,
            },
        ),
    ];
    reshard(k, &stream, &[parent.partition], children).await?;
    Ok(Empty {})
}

/// Handles MergeShards.
pub async fn merge(
    k: &Kinesis,
    req: MergeShardsInput,
    caller: &Caller,
) -> Result<Empty, KinesisError> {
    let name = stream_name_of(&req)?;
    k.authorize(caller, "MergeShards", crate::auth::Operation::Alter, &name)?;
    let a = required(req.shard_to_merge, "shardToMerge")?;
    let b = required(req.adjacent_shard_to_merge, "adjacentShardToMerge")?;
    let pa = parse_shard_id(&a).ok_or_else(|| KinesisError::could_not_find_shard(&name, &a))?;
    let pb = parse_shard_id(&b).ok_or_else(|| KinesisError::could_not_find_shard(&name, &b))?;
    let _admin = k.streams.admin.lock().await;
    let stream = k.stream(&name)?;
    super::require_active(&stream)?;
    let first = shard_of(&stream, pa)?;
    let second = shard_of(&stream, pb)?;
    for s in [&first, &second] {
        if !s.is_open() {
            return Err(not_open(&name, s));
        }
    }
    let (ra, rb) = (first.range(), second.range());
    let adjacent =
        ra.end.checked_add(1) == Some(rb.start) || rb.end.checked_add(1) == Some(ra.start);
    if !adjacent || first.partition == second.partition {
        return Err(KinesisError::InvalidArgument(format!(
            "Shards {} and {} in stream {name} under account {ACCOUNT_ID} are not an adjacent \
             pair of shards eligible for merging",
            shard_id(first.partition),
            shard_id(second.partition)
        )));
    }
    let child = ShardMeta {
        parent: Some(first.partition),
        adjacent_parent: Some(second.partition),
        ..ShardMeta::new(
            stream.topic.partitions,
            HashRange {
                start: ra.start.min(rb.start),
                end: ra.end.max(rb.end),
            },
            BrokerContext::now_ms(),
        )
    };
    reshard(
        k,
        &stream,
        &[first.partition, second.partition],
        vec![child],
    )
    .await?;
    Ok(Empty {})
}

/// Handles UpdateShardCount (UNIFORM_SCALING): every open shard is closed and the target count
/// of shards splitting the hash-key space evenly is opened. A new shard's parent is the old
/// shard holding its starting hash key, its adjacent parent the next old shard it overlaps.
/// As in AWS the target must lie within half and double the open shard count.
pub async fn update_shard_count(
    k: &Kinesis,
    req: UpdateShardCountInput,
    caller: &Caller,
) -> Result<UpdateShardCountOutput, KinesisError> {
    let name = stream_name_of(&req)?;
    k.authorize(
        caller,
        "UpdateShardCount",
        crate::auth::Operation::Alter,
        &name,
    )?;
    let target = required(req.target_shard_count, "targetShardCount")?;
    let scaling = required(req.scaling_type, "scalingType")?;
    if scaling != "UNIFORM_SCALING" {
        return Err(KinesisError::validation(
            &scaling,
            "scalingType",
            "Member must satisfy enum value set: [UNIFORM_SCALING]",
        ));
    }
    if target < 1 {
        return Err(KinesisError::validation(
            target,
            "targetShardCount",
            "Member must have value greater than or equal to 1",
        ));
    }
    let _admin = k.streams.admin.lock().await;
    let stream = k.stream(&name)?;
    super::require_active(&stream)?;
    let current = stream.meta.open_shards() as i64;
    if target > current * 2 || target * 2 < current {
        return Err(KinesisError::LimitExceeded(format!(
            "UpdateShardCount cannot scale stream {name} from {current} to {target} shards: the \
             target must be between half and double the current open shard count."
        )));
    }
    if target != current {
        let old: Vec<ShardMeta> = stream
            .meta
            .shards
            .iter()
            .filter(|s| s.is_open())
            .cloned()
            .collect();
        let now = BrokerContext::now_ms();
        let next = stream.topic.partitions;
        let children = even_ranges(target as u32)
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let mut overlapping = old
                    .iter()
                    .filter(|o| {
                        let or = o.range();
                        or.start <= r.end && r.start <= or.end
                    })
                    .map(|o| (o.range().start, o.partition))
                    .collect::<Vec<_>>();
                overlapping.sort_unstable();
                ShardMeta {
                    parent: overlapping.first().map(|x| x.1),
                    adjacent_parent: overlapping.get(1).map(|x| x.1),
                    ..ShardMeta::new(next + i as i32, r, now)
                }
            })
            .collect();
        let parents: Vec<i32> = old.iter().map(|s| s.partition).collect();
        reshard(k, &stream, &parents, children).await?;
    }
    Ok(UpdateShardCountOutput {
        stream_arn: super::stream_arn(&caller.region, &name),
        stream_name: name,
        current_shard_count: current,
        target_shard_count: target,
    })
}
