//! DeleteStream: deletes the topic (and its data) and the stream's metadata; with
//! `kinesis.delete.stream.ms` the stream is DELETING that long first (stored, so a restart
//! finishes the deletion on the stream's next lookup).

use super::stream_name_of;
use crate::context::BrokerContext;
use crate::kinesis::error::KinesisError;
use crate::kinesis::model::{DeleteStreamInput, Empty};
use crate::kinesis::sigv4::Caller;
use crate::kinesis::Kinesis;

/// Handles DeleteStream.
pub async fn handle(
    k: &Kinesis,
    req: DeleteStreamInput,
    caller: &Caller,
) -> Result<Empty, KinesisError> {
    let name = stream_name_of(&req)?;
    k.authorize(
        caller,
        "DeleteStream",
        crate::auth::Operation::Delete,
        &name,
    )?;
    let _admin = k.streams.admin.lock().await;
    let stream = k.stream(&name)?;
    if !stream.meta.consumers.is_empty() && req.enforce_consumer_deletion != Some(true) {
        return Err(KinesisError::ResourceInUse(format!(
            "Stream {name} under account {} has registered consumers; deregister them or set \
             EnforceConsumerDeletion.",
            crate::kinesis::ACCOUNT_ID
        )));
    }
    if k.config.delete_stream_ms > 0 {
        // DELETING for a while (listed, refusing records), then the topic goes.
        if stream.meta.deleting_until_ms > 0 {
            return Ok(Empty {});
        }
        let mut meta = (*stream.meta).clone();
        meta.deleting_until_ms = BrokerContext::now_ms() + k.config.delete_stream_ms;
        k.streams
            .put(&stream.topic.name, meta)
            .await
            .map_err(|e| KinesisError::Internal(format!("cannot store stream metadata: {e}")))?;
        super::finish_delete(
            k.ctx.clone(),
            stream.topic.name.to_string(),
            stream.topic.id,
            k.config.delete_stream_ms,
        );
        tracing::info!(stream = %name, "kinesis stream DELETING");
        return Ok(Empty {});
    }
    k.ctx
        .delete_topic(&stream.topic.name)
        .await
        .ok_or_else(|| KinesisError::stream_not_found(&name))?;
    if let Err(e) = k.streams.remove(&stream.topic.name) {
        tracing::warn!(stream = %name, error = %e, "cannot remove kinesis stream metadata");
    }
    tracing::info!(stream = %name, "kinesis stream deleted");
    Ok(Empty {})
}
