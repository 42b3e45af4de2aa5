//! Changes to a stream's life cycle beyond resharding: UpdateStreamMode and
//! Start/StopStreamEncryption (each leaves the stream UPDATING for `kinesis.update.stream.ms`
//! and needs it ACTIVE), and the account-wide DescribeAccountSettings /
//! UpdateAccountSettings.
//!
//! Encryption is bookkeeping: the stream records EncryptionType KMS and the KeyId (validated
//! for the forms AWS takes), describes them and stamps them on PutRecord(s) answers, while
//! records are stored by the broker's own storage and served as written — which is what AWS's
//! readers see too (they receive records decrypted).

use super::{require_active, required, stream_name_of};
use crate::context::BrokerContext;
use crate::kinesis::error::KinesisError;
use crate::kinesis::model::{
    AccountSettings, BillingCommitment, Empty, StreamEncryptionInput, StreamOnlyInput, Timestamp,
    UpdateStreamModeInput,
};
use crate::kinesis::sigv4::Caller;
use crate::kinesis::store::{Encryption, StreamMeta};
use crate::kinesis::Kinesis;

/// Whether `id` is a KMS key id in one of the forms AWS takes: a key ARN
/// (`arn:aws:kms:<region>:<account>:key/<key id>`), an alias ARN (`…:alias/<name>`), a key id
/// (a UUID, or a multi-Region key id `mrk-<32 hex>`), or an alias name (`alias/<name>`, e.g.
/// `alias/aws/kinesis`).
pub(crate) fn valid_kms_key_id(id: &str) -> bool {
    fn key_id(s: &str) -> bool {
        uuid::Uuid::try_parse(s).is_ok_and(|u| u.hyphenated().to_string() == s.to_lowercase())
            || s.strip_prefix("mrk-")
                .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    }
    fn alias(s: &str) -> bool {
        s.strip_prefix("alias/").is_some_and(|n| {
            !n.is_empty()
                && n.len() <= 250
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
        })
    }
    if id.is_empty() || id.len() > 2048 {
        return false;
    }
    if let Some(rest) = id.strip_prefix("arn:") {
        // partition:kms:region:account:resource
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        return parts.len() == 5
            && parts[0].starts_with("aws")
            && parts[1] == "kms"
            && !parts[2].is_empty()
            && parts[3].len() == 12
            && parts[3].bytes().all(|b| b.is_ascii_digit())
            && (parts[4].strip_prefix("key/").is_some_and(key_id) || alias(parts[4]));
    }
    key_id(id) || alias(id)
}

/// Loads the stream, checks it is ACTIVE, applies `change`, marks it UPDATING and stores it.
async fn update(
    k: &Kinesis,
    name: &str,
    change: impl FnOnce(&mut StreamMeta) -> Result<(), KinesisError>,
) -> Result<(), KinesisError> {
    let _admin = k.streams.admin.lock().await;
    let stream = k.stream(name)?;
    require_active(&stream)?;
    let mut meta = (*stream.meta).clone();
    change(&mut meta)?;
    meta.updating_until_ms = BrokerContext::now_ms() + k.config.update_stream_ms;
    k.streams
        .put(&stream.topic.name, meta)
        .await
        .map_err(|e| KinesisError::Internal(format!("cannot store stream metadata: {e}")))?;
    Ok(())
}

/// Handles UpdateStreamMode (by StreamARN).
pub async fn update_stream_mode(
    k: &Kinesis,
    req: UpdateStreamModeInput,
    caller: &Caller,
) -> Result<Empty, KinesisError> {
    let arn = required(req.stream_arn, "streamARN")?;
    let mode = required(req.stream_mode_details, "streamModeDetails")?.stream_mode;
    let name = stream_name_of(&crate::kinesis::model::StreamOnlyInput {
        stream_name: None,
        stream_arn: Some(arn),
    })?;
    k.authorize(
        caller,
        "UpdateStreamMode",
        crate::auth::Operation::Alter,
        &name,
    )?;
    if mode != "ON_DEMAND" && mode != "PROVISIONED" {
        return Err(KinesisError::validation(
            &mode,
            "streamModeDetails.streamMode",
            "Member must satisfy enum value set: [ON_DEMAND, PROVISIONED]",
        ));
    }
    update(k, &name, |meta| {
        meta.mode = mode.clone();
        Ok(())
    })
    .await?;
    tracing::info!(stream = %name, mode, "kinesis stream mode changed");
    Ok(Empty {})
}

/// The checks StartStreamEncryption and StopStreamEncryption share: EncryptionType KMS and a
/// KeyId of a form KMS takes.
fn encryption_args(req: &StreamEncryptionInput) -> Result<(String, String), KinesisError> {
    let kind = required(req.encryption_type.clone(), "encryptionType")?;
    let key_id = required(req.key_id.clone(), "keyId")?;
    match kind.as_str() {
        "KMS" => {}
        "NONE" => {
            return Err(KinesisError::InvalidArgument(
                "Encryption type NONE is not valid for this operation; use KMS.".into(),
            ))
        }
        other => {
            return Err(KinesisError::validation(
                other,
                "encryptionType",
                "Member must satisfy enum value set: [KMS, NONE]",
            ))
        }
    }
    if !valid_kms_key_id(&key_id) {
        return Err(KinesisError::InvalidArgument(format!(
            "Invalid KeyId {key_id}: expected a KMS key ARN, alias ARN, key id or alias name \
             (alias/...)."
        )));
    }
    Ok((kind, key_id))
}

/// Handles StartStreamEncryption.
pub async fn start_encryption(
    k: &Kinesis,
    req: StreamEncryptionInput,
    caller: &Caller,
) -> Result<Empty, KinesisError> {
    let name = stream_name_of(&req)?;
    k.authorize(
        caller,
        "StartStreamEncryption",
        crate::auth::Operation::Alter,
        &name,
    )?;
    let (kind, key_id) = encryption_args(&req)?;
    update(k, &name, |meta| {
        meta.encryption = Some(Encryption {
            kind,
            key_id: key_id.clone(),
        });
        Ok(())
    })
    .await?;
    tracing::info!(stream = %name, key_id, "kinesis stream encryption started");
    Ok(Empty {})
}

/// Handles StopStreamEncryption.
pub async fn stop_encryption(
    k: &Kinesis,
    req: StreamEncryptionInput,
    caller: &Caller,
) -> Result<Empty, KinesisError> {
    let name = stream_name_of(&req)?;
    k.authorize(
        caller,
        "StopStreamEncryption",
        crate::auth::Operation::Alter,
        &name,
    )?;
    encryption_args(&req)?;
    update(k, &name, |meta| {
        meta.encryption = None;
        Ok(())
    })
    .await?;
    tracing::info!(stream = %name, "kinesis stream encryption stopped");
    Ok(Empty {})
}

/// The account settings as answered: the billing commitment DISABLED unless enabled.
fn answered(settings: &AccountSettings) -> AccountSettings {
    let commitment = settings
        .minimum_throughput_billing_commitment
        .clone()
        .unwrap_or_else(|| BillingCommitment {
            status: Some("DISABLED".into()),
            ..Default::default()
        });
    AccountSettings {
        minimum_throughput_billing_commitment: Some(commitment),
    }
}

/// Handles DescribeAccountSettings.
pub async fn describe_account_settings(
    k: &Kinesis,
    _req: StreamOnlyInput,
    _caller: &Caller,
) -> Result<AccountSettings, KinesisError> {
    Ok(answered(
        &k.account.lock().unwrap_or_else(|e| e.into_inner()),
    ))
}

/// Handles UpdateAccountSettings: the minimum-throughput billing commitment, ENABLED (from now,
/// for at least 24 hours) or DISABLED (from now).
pub async fn update_account_settings(
    k: &Kinesis,
    req: AccountSettings,
    caller: &Caller,
) -> Result<AccountSettings, KinesisError> {
    k.authorize_resource(
        caller,
        "UpdateAccountSettings",
        crate::auth::Operation::Alter,
        crate::auth::ResourceType::Cluster,
        crate::auth::acl::CLUSTER_NAME,
    )?;
    let wanted = required(
        req.minimum_throughput_billing_commitment,
        "minimumThroughputBillingCommitment",
    )?;
    let status = required(wanted.status, "minimumThroughputBillingCommitment.status")?;
    let now = BrokerContext::now_ms();
    let mut settings = k.account.lock().unwrap_or_else(|e| e.into_inner());
    let current = answered(&settings)
        .minimum_throughput_billing_commitment
        .unwrap_or_default();
    let next = match status.as_str() {
        "ENABLED" => BillingCommitment {
            status: Some("ENABLED".into()),
            started_at: Some(Timestamp(now)),
            ended_at: None,
            earliest_allowed_end_at: Some(Timestamp(now + 24 * 3_600_000)),
        },
        "DISABLED" => {
            if let Some(earliest) = current.earliest_allowed_end_at.filter(|e| e.0 > now) {
                return Err(KinesisError::InvalidArgument(format!(
                    "The minimum throughput billing commitment cannot be disabled before {}.",
                    crate::kinesis::model::format_time(earliest.0)
                )));
            }
            BillingCommitment {
                status: Some("DISABLED".into()),
                started_at: current.started_at,
                ended_at: Some(Timestamp(now)),
                earliest_allowed_end_at: None,
            }
        }
        other => {
            return Err(KinesisError::validation(
                other,
                "minimumThroughputBillingCommitment.status",
                "Member must satisfy enum value set: [ENABLED, DISABLED]",
            ))
        }
    };
    settings.minimum_throughput_billing_commitment = Some(next);
    k.store_account(&settings)?;
    Ok(answered(&settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kms_key_id_forms() {
        for ok in [
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-1:123456789012:alias/MyAliasName",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "mrk-1234abcd12ab34cd56ef1234567890ab",
            "alias/MyAliasName",
            "alias/aws/kinesis",
            "arn:aws-cn:kms:cn-north-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        ] {
            assert!(valid_kms_key_id(ok), "{ok}");
        }
        for bad in [
            "",
            "key",
            "alias/",
            "alias/with space",
            "arn:aws:kms:us-east-1:123:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:s3:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-1:123456789012:key/nope",
            "1234abcd12ab34cd56ef1234567890ab",
        ] {
            assert!(!valid_kms_key_id(bad), "{bad}");
        }
    }
}
