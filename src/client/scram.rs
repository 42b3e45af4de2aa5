//! The client side of SCRAM (RFC 5802, SHA-256/512 as RFC 7677): client-first, client-final
//! with the proof, and the check of the server's signature. The hash functions are the
//! broker's own (`crate::auth::scram::Mechanism`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::ClientError;
use crate::auth::scram::Mechanism;

/// One SCRAM exchange from the client's side.
pub struct ScramClient {
    mech: Mechanism,
    password: String,
    client_nonce: String,
    client_first_bare: String,
    server_signature: Vec<u8>,
}

/// `=` and `,` in a user name are escaped as `=3D` and `=2C` (RFC 5802 §5.1).
fn escape(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

fn attr(msg: &str, key: char) -> Option<&str> {
    msg.split(',').find_map(|kv| {
        let mut it = kv.chars();
        (it.next() == Some(key) && it.next() == Some('=')).then(|| &kv[2..])
    })
}

fn auth_failed(msg: impl Into<String>) -> ClientError {
    ClientError::Auth(msg.into())
}

impl ScramClient {
    /// Starts an exchange with a fresh random nonce; returns the client and client-first.
    pub fn start(mech: Mechanism, user: &str, password: &str) -> (ScramClient, Vec<u8>) {
        let nonce = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        Self::start_with_nonce(mech, user, password, &nonce)
    }

    /// Starts an exchange with a given nonce (tests).
    pub fn start_with_nonce(
        mech: Mechanism,
        user: &str,
        password: &str,
        nonce: &str,
    ) -> (ScramClient, Vec<u8>) {
        let bare = format!("n={},r={nonce}", escape(user));
        let first = format!("n,,{bare}").into_bytes();
        (
            ScramClient {
                mech,
                password: password.to_string(),
                client_nonce: nonce.to_string(),
                client_first_bare: bare,
                server_signature: Vec::new(),
            },
            first,
        )
    }

    /// Takes server-first, returns client-final with the proof.
    pub fn server_first(&mut self, msg: &[u8]) -> Result<Vec<u8>, ClientError> {
        let msg = std::str::from_utf8(msg).map_err(|_| auth_failed("server-first is not UTF-8"))?;
        if let Some(e) = attr(msg, 'e') {
            return Err(auth_failed(format!("the broker refused SCRAM: {e}")));
        }
        let nonce = attr(msg, 'r').ok_or_else(|| auth_failed("server-first without a nonce"))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(auth_failed("server nonce does not extend the client nonce"));
        }
        let salt = attr(msg, 's')
            .and_then(|s| B64.decode(s).ok())
            .ok_or_else(|| auth_failed("server-first without a valid salt"))?;
        let iterations: u32 = attr(msg, 'i')
            .and_then(|i| i.parse().ok())
            .filter(|i| *i >= 1)
            .ok_or_else(|| auth_failed("server-first without valid iterations"))?;
        let m = self.mech;
        let salted = m.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{msg},{without_proof}", self.client_first_bare);
        let signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        self.server_signature = m.hmac(&server_key, auth_message.as_bytes());
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks server-final's signature.
    pub fn server_final(&self, msg: &[u8]) -> Result<(), ClientError> {
        let msg = std::str::from_utf8(msg).map_err(|_| auth_failed("server-final is not UTF-8"))?;
        if let Some(e) = attr(msg, 'e') {
            return Err(auth_failed(format!("authentication failed: {e}")));
        }
        let v = attr(msg, 'v')
            .and_then(|v| B64.decode(v).ok())
            .ok_or_else(|| auth_failed("server-final without a signature"))?;
        if v != self.server_signature {
            return Err(auth_failed(
                "the broker's SCRAM signature does not match (not the server holding the password)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SCRAM-SHA-256 example of RFC 7677 §3.
    #[test]
    fn rfc7677_example() {
        let (mut c, first) = ScramClient::start_with_nonce(
            Mechanism::Sha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(first, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let fin = c.server_first(server_first).unwrap();
        assert_eq!(
            String::from_utf8(fin).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(c.server_final(b"v=AAAA").is_err());
    }

    #[test]
    fn names_are_escaped() {
        let (_, first) = ScramClient::start_with_nonce(Mechanism::Sha512, "a=b,c", "p", "n");
        assert_eq!(first, b"n,,n=a=3Db=2Cc,r=n");
    }
}
