//! SigV4 authentication of a Kinesis request: the `Authorization` header's parsing
//! (`AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`), `X-Amz-Date`, the
//! canonical request (method, path, query string, signed headers, payload hash) and the
//! signature comparison, in verifying mode and in dev mode (`kinesis.auth=none`).
//!
//! Input: a raw HTTP/1.1 request: request line, header lines, a blank line, the body. The
//! clock is set to the request's own `X-Amz-Date`, so a well-formed request reaches the
//! signature check; credentials are `AKIDFUZZ:fuzz-secret:alice` (the seeds are signed with
//! them).
#![no_main]

use std::sync::OnceLock;

use esker::kinesis::sigv4::Credentials;
use libfuzzer_sys::fuzz_target;

fn credentials() -> &'static Credentials {
    static C: OnceLock<Credentials> = OnceLock::new();
    C.get_or_init(|| Credentials::parse("AKIDFUZZ:fuzz-secret:alice").expect("credentials"))
}

fuzz_target!(|data: &[u8]| {
    let outcome = esker::fuzzing::sigv4_request(data, credentials());
    if let Err(e) = &outcome {
        assert!(
            !e.starts_with("dev mode refused"),
            "dev mode must accept every request: {e}"
        );
    }
});
