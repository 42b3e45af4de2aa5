//! SASL messages as a client sends them in SaslAuthenticate: PLAIN (`authzid\0user\0pass`),
//! SCRAM client-first and client-final (RFC 5802, Kafka's extensions such as
//! `tokenauth=true`).
//!
//! Input: byte 0 picks the mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, or an unknown
//! name), bytes 1..3 are the big-endian length of the first message, which follows; the rest
//! is the second message. Both go through a SASL_PLAINTEXT connection's session
//! (`Session::handshake`, `Session::authenticate`), then the SCRAM messages through
//! `ScramServer` directly with a fixed server nonce, so that client-final's proof check is
//! reachable.
#![no_main]

use std::sync::{Arc, OnceLock};

use esker::auth::scram::{Mechanism, ScramCredential, ScramServer};
use esker::auth::{ListenerInfo, Security, SecurityConfig, SecurityProtocol, Session};
use libfuzzer_sys::fuzz_target;

const MECHANISMS: [&str; 4] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI"];
const SERVER_NONCE: &str = "fuzzservernonce";

struct Harness {
    security: Security,
    listener: Arc<ListenerInfo>,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("esker-fuzz-sasl-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let config = SecurityConfig {
            mechanisms: MECHANISMS[..3].iter().map(|m| m.to_string()).collect(),
            plain_users: [("alice".to_string(), "alice-secret".to_string())].into(),
            ..SecurityConfig::default()
        };
        let security = Security::open(&dir, config).expect("security");
        let creds = [Mechanism::Sha256, Mechanism::Sha512]
            .into_iter()
            .map(|m| {
                let cred = ScramCredential::from_password(m, "alice-secret", b"fuzz-salt", 4096);
                ("alice".to_string(), m, cred)
            })
            .collect();
        security.credentials.alter(&[], creds).expect("scram users");
        Harness {
            security,
            listener: Arc::new(ListenerInfo {
                name: "SASL_PLAINTEXT".into(),
                protocol: SecurityProtocol::SaslPlaintext,
                advertised: ("127.0.0.1".into(), 9092),
            }),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let h = harness();
    let mechanism = MECHANISMS[usize::from(data[0]) % MECHANISMS.len()];
    let first_len = usize::from(u16::from_be_bytes([data[1], data[2]]));
    let rest = &data[3..];
    let (first, second) = rest.split_at(first_len.min(rest.len()));

    let mut session = Session::new(h.listener.clone(), "127.0.0.1".into());
    if session.handshake(&h.security, mechanism).is_ok() {
        let ok = session.authenticate(&h.security, first).is_ok();
        if ok && !session.authenticated() {
            let _ = session.authenticate(&h.security, second);
        }
        // A third message after the exchange is a protocol error, never a panic.
        let _ = session.authenticate(&h.security, second);
    }

    if let Some(mech) = Mechanism::from_name(mechanism) {
        let mut server = ScramServer::new(mech);
        if server
            .client_first(first, &h.security.credentials, SERVER_NONCE)
            .is_ok()
        {
            let _ = server.client_final(second);
        }
    }
});
