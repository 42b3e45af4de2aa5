//! The client's errors: what failed (settings, connection, authentication, a broker's answer),
//! kept apart so the CLI can map them to its exit codes.

use kafka_protocol::error::ResponseError;

/// A failure of the admin client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection settings are invalid or name something unsupported.
    #[error("{0}")]
    Settings(String),
    /// No broker could be reached, or a connection broke.
    #[error("{0}")]
    Connection(String),
    /// TLS could not be set up (files) or the handshake failed.
    #[error("tls: {0}")]
    Tls(String),
    /// SASL authentication failed.
    #[error("{0}")]
    Auth(String),
    /// A broker answered with an error code for something the request asked.
    #[error("{what} ({code_name}){detail}", code_name = error_name(*.code), detail = detail(.message))]
    Response {
        /// What was being asked, for the message ("topic 'x' does not exist").
        what: String,
        /// The Kafka error code.
        code: i16,
        /// The broker's error message, when it sent one.
        message: Option<String>,
    },
    /// The broker supports no version of an API the command needs.
    #[error("the broker does not support {api} (no common version)")]
    Unsupported {
        /// The API name.
        api: String,
    },
    /// A request or response could not be encoded or decoded.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A command-level failure that is not a broker error code (e.g. a refused reset).
    #[error("{0}")]
    Request(String),
}

impl ClientError {
    /// True for failures to reach or authenticate to the cluster (exit code 3).
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            ClientError::Connection(_) | ClientError::Tls(_) | ClientError::Auth(_)
        )
    }
}

fn detail(message: &Option<String>) -> String {
    match message.as_deref() {
        Some(m) if !m.is_empty() => format!(": {m}"),
        _ => String::new(),
    }
}

/// The Kafka name of an error code, `UNKNOWN_TOPIC_OR_PARTITION` for 3 (as Apache Kafka's
/// `Errors` enum spells them).
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(c)) => format!("UNKNOWN_ERROR_CODE_{c}"),
        Some(e) => {
            // kafka-protocol names the variants in CamelCase; Kafka's own names are the
            // same words in SCREAMING_SNAKE_CASE.
            let camel = format!("{e}");
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, ch) in camel.chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(ch.to_ascii_uppercase());
            }
            out
        }
    }
}

/// `Err(Response)` when `code` is not 0.
pub fn check(
    code: i16,
    message: Option<&str>,
    what: impl FnOnce() -> String,
) -> Result<(), ClientError> {
    if code == 0 {
        return Ok(());
    }
    let what = what();
    // Brokers often repeat what the code already says ("TopicAuthorizationFailed", or the
    // same sentence): keep the message only when it adds something.
    let camel = format!(
        "{}",
        ResponseError::try_from_code(code).unwrap_or(ResponseError::Unknown(code))
    );
    let message = message
        .filter(|m| !m.is_empty() && !m.eq_ignore_ascii_case(&what) && *m != camel)
        .map(str::to_string);
    Err(ClientError::Response {
        what,
        code,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(29), "TOPIC_AUTHORIZATION_FAILED");
        assert_eq!(error_name(58), "SASL_AUTHENTICATION_FAILED");
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
    }
}
