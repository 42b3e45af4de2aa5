//! DescribeLogDirs (key 35), versions 1..=4: the one log directory with the size of every
//! (requested) partition.

use std::sync::Arc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::context::BrokerContext;
use crate::shard::ShardState;

/// Supported versions.
pub const VERSIONS: (i16, i16) = (1, 4);

/// Handles a DescribeLogDirs request.
pub async fn handle(
    ctx: Arc<BrokerContext>,
    req: DescribeLogDirsRequest,
    _version: i16,
) -> DescribeLogDirsResponse {
    // null = every partition; otherwise the named ones that exist.
    let wanted: Vec<(Arc<str>, Vec<i32>)> = match req.topics {
        None => ctx
            .catalog
            .all()
            .into_iter()
            .map(|m| (m.name.clone(), (0..m.partitions).collect()))
            .collect(),
        Some(topics) => topics
            .into_iter()
            .filter_map(|t| {
                let m = ctx.catalog.get(t.topic.as_str())?;
                let parts = t
                    .partitions
                    .into_iter()
                    .filter(|p| *p >= 0 && *p < m.partitions)
                    .collect();
                Some((m.name.clone(), parts))
            })
            .collect(),
    };
    let mut topics = Vec::with_capacity(wanted.len());
    for (name, parts) in wanted {
        let mut partitions = Vec::with_capacity(parts.len());
        for p in parts {
            let topic = name.clone();
            let snap = ctx
                .shard(&name, p)
                .call(move |s: &mut ShardState| s.snapshot(&topic, p))
                .await;
            if let Ok(Ok(snap)) = snap {
                partitions.push(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p)
                        .with_partition_size(snap.size_bytes as i64),
                );
            }
        }
        topics.push(
            DescribeLogDirsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_partitions(partitions),
        );
    }
    let dir =
        std::fs::canonicalize(&ctx.config.log_dir).unwrap_or_else(|_| ctx.config.log_dir.clone());
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(dir.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(-1)
        .with_usable_bytes(-1)])
}
