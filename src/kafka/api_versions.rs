//! ApiVersions (key 18). The answer is built from [`super::SUPPORTED`]. Only default values are
//! put in the tagged fields, so the body carries no tagged field longer than one byte (Debian's
//! kcat 1.7.1 / librdkafka 2.0.2 misparses longer ones), and the response header is never
//! flexible (the codec's header version for ApiVersions is 0).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;

/// Supported versions (0..=4).
pub const VERSIONS: (i16, i16) = (0, 4);

/// The response body with `error_code` (0, or 35 for an unknown version).
pub fn response(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            super::SUPPORTED
                .iter()
                .map(|(k, min, max)| {
                    ApiVersion::default()
                        .with_api_key(*k as i16)
                        .with_min_version(*min)
                        .with_max_version(*max)
                })
                .collect(),
        )
}
