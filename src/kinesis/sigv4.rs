//! AWS Signature Version 4 verification of the `Authorization` header.
//!
//! `Authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/<service>/aws4_request,
//! SignedHeaders=<h1;h2;...>, Signature=<hex>`. The canonical request is rebuilt from the
//! request (method, path, sorted query, the signed headers with trimmed values, the payload's
//! SHA-256), hashed into the string to sign, and signed with the key derived from the secret
//! (HMAC chain over date, region, service, `aws4_request`). Requests dated more than 5 minutes
//! from now are refused as AWS does.

use std::collections::HashMap;

use hmac::{Hmac, KeyInit, Mac};
use hyper::HeaderMap;
use sha2::{Digest, Sha256};

use super::error::KinesisError;
use crate::auth::Principal;

/// Whether signatures are checked (`kinesis.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Dev mode: any signature (or none) is accepted; the access key still names the principal.
    None,
    /// Signatures are verified against `kinesis.credentials`.
    SigV4,
}

/// One configured credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The secret access key.
    pub secret: String,
    /// The user the key belongs to (the principal is `User:<user>`).
    pub user: String,
}

/// `kinesis.credentials`: `ACCESS:SECRET[:user],...`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    keys: HashMap<String, Credential>,
}

impl Credentials {
    /// Parses `ACCESS:SECRET[:user]` entries separated by commas; the user defaults to the
    /// access key.
    pub fn parse(s: &str) -> Result<Credentials, String> {
        let mut keys = HashMap::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let mut parts = entry.splitn(3, ':');
            let access = parts.next().unwrap_or_default().trim();
            let secret = parts
                .next()
                .ok_or_else(|| format!("`{access}` has no secret (expected ACCESS:SECRET[:user])"))?
                .trim();
            let user = parts.next().map(str::trim).unwrap_or(access);
            if access.is_empty() || secret.is_empty() || user.is_empty() {
                return Err(format!("`{entry}` is not ACCESS:SECRET[:user]"));
            }
            keys.insert(
                access.to_string(),
                Credential {
                    secret: secret.to_string(),
                    user: user.to_string(),
                },
            );
        }
        Ok(Credentials { keys })
    }

    /// The credential of an access key.
    pub fn get(&self, access_key: &str) -> Option<&Credential> {
        self.keys.get(access_key)
    }
}

/// Who sent a request, and where they think they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `User:<name>`: the configured user of the access key, the access key itself in dev
    /// mode, `User:ANONYMOUS` for an unsigned request in dev mode. Authorized by the same ACLs
    /// as Kafka principals.
    pub principal: Principal,
    /// The region of the credential scope (`us-east-1` when unsigned).
    pub region: String,
    /// The peer IP (ACL host matching); empty until the server fills it in, which only
    /// host `*` ACLs match.
    pub ip: String,
}

impl Caller {
    fn new(user: &str, region: &str) -> Caller {
        Caller {
            principal: Principal::user(user),
            region: region.to_string(),
            ip: String::new(),
        }
    }
}

/// The parts of the `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AuthHeader<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<AuthHeader<'_>, KinesisError> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256").ok_or_else(|| {
        KinesisError::IncompleteSignature(
            "Authorization header requires the AWS4-HMAC-SHA256 algorithm.".into(),
        )
    })?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v.trim());
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v.trim());
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v.trim());
        }
    }
    let missing = |name: &str| {
        KinesisError::IncompleteSignature(format!(
            "Authorization header requires '{name}' parameter. Authorization={value}"
        ))
    };
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed_headers = signed.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[4] != "aws4_request" {
        return Err(KinesisError::IncompleteSignature(format!(
            "Credential should be scoped to a valid region, not '{credential}'."
        )));
    }
    Ok(AuthHeader {
        access_key: scope[0],
        date: scope[1],
        region: scope[2],
        service: scope[3],
        signed_headers,
        signature,
    })
}

/// The request parts the signature covers.
pub struct SignedRequest<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// The path as sent.
    pub path: &'a str,
    /// The query string as sent (without `?`).
    pub query: &'a str,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// `Host` for HTTP/2 requests, which carry it as `:authority`.
    pub authority: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

/// Authenticates a request. `now_ms` is the wall clock.
pub fn authenticate(
    mode: AuthMode,
    credentials: &Credentials,
    req: &SignedRequest<'_>,
    now_ms: i64,
) -> Result<Caller, KinesisError> {
    let header = req
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(header) = header else {
        return match mode {
            AuthMode::None => Ok(Caller::new("ANONYMOUS", "us-east-1")),
            AuthMode::SigV4 => Err(KinesisError::MissingAuthenticationToken(
                "Missing Authentication Token".into(),
            )),
        };
    };
    let auth = match (mode, parse_authorization(header)) {
        (_, Ok(a)) => a,
        (AuthMode::None, Err(_)) => return Ok(Caller::new("ANONYMOUS", "us-east-1")),
        (AuthMode::SigV4, Err(e)) => return Err(e),
    };
    if mode == AuthMode::None {
        return Ok(Caller::new(auth.access_key, auth.region));
    }
    let Some(cred) = credentials.get(auth.access_key) else {
        return Err(KinesisError::UnrecognizedClient(
            "The security token included in the request is invalid.".into(),
        ));
    };
    let amz_date = header_value(req.headers, "x-amz-date")
        .ok_or_else(|| {
            KinesisError::IncompleteSignature(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                    .into(),
            )
        })?
        .to_string();
    check_skew(&amz_date, now_ms)?;
    let expected = signature(req, &auth, &amz_date, &cred.secret);
    if !constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        return Err(KinesisError::InvalidSignature(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details."
                .into(),
        ));
    }
    Ok(Caller::new(&cred.user, auth.region))
}

fn header_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

const SKEW_MS: i64 = 5 * 60 * 1000;

fn check_skew(amz_date: &str, now_ms: i64) -> Result<(), KinesisError> {
    let Some(t) = parse_amz_date(amz_date) else {
        return Err(KinesisError::IncompleteSignature(format!(
            "Date must be in ISO-8601 'basic format'. Got '{amz_date}'."
        )));
    };
    if t > now_ms + SKEW_MS {
        return Err(KinesisError::InvalidSignature(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 5 min.)",
            format_amz_date(now_ms + SKEW_MS),
            format_amz_date(now_ms)
        )));
    }
    if t < now_ms - SKEW_MS {
        return Err(KinesisError::InvalidSignature(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 5 min.)",
            format_amz_date(now_ms - SKEW_MS),
            format_amz_date(now_ms)
        )));
    }
    Ok(())
}

/// `20130524T000000Z` → ms since the epoch.
pub(crate) fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number (inverse of [`days_from_civil`]).
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn format_amz_date(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        // HMAC accepts keys of every length.
        Err(_) => Vec::new(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Collapses runs of spaces and trims, as SigV4 canonical header values require.
fn canonical_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn signature(
    req: &SignedRequest<'_>,
    auth: &AuthHeader<'_>,
    amz_date: &str,
    secret: &str,
) -> String {
    let mut canonical_headers = String::new();
    for name in auth.signed_headers.split(';') {
        let values: Vec<String> = if name == "host" && !req.headers.contains_key("host") {
            req.authority
                .map(|a| vec![a.to_string()])
                .unwrap_or_default()
        } else {
            req.headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(canonical_value)
                .collect()
        };
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&values.join(","));
        canonical_headers.push('\n');
    }
    let payload_hash = header_value(req.headers, "x-amz-content-sha256")
        .map(str::to_string)
        .unwrap_or_else(|| hex(&Sha256::digest(req.body)));
    let path = if req.path.is_empty() { "/" } else { req.path };
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        path,
        canonical_query(req.query),
        canonical_headers,
        auth.signed_headers,
        payload_hash
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), auth.date.as_bytes());
    let k_region = hmac(&k_date, auth.region.as_bytes());
    let k_service = hmac(&k_region, auth.service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    hex(&hmac(&k_signing, string_to_sign.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_parse() {
        let c = Credentials::parse("AK1:s1, AK2:s2:alice").unwrap();
        assert_eq!(c.get("AK1").unwrap().user, "AK1");
        assert_eq!(c.get("AK2").unwrap().user, "alice");
        assert!(Credentials::parse("AK1").is_err());
        assert_eq!(Credentials::parse("").unwrap(), Credentials::default());
    }

    #[test]
    fn dates() {
        let t = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(format_amz_date(t), "20150830T123600Z");
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("2015-08-30"), None);
    }

    /// The "get-vanilla" example of AWS's SigV4 test suite (service `service`, secret
    /// `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`).
    #[test]
    fn aws_test_suite_get_vanilla() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "example.amazonaws.com".parse().unwrap());
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        headers.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
                .parse()
                .unwrap(),
        );
        let req = SignedRequest {
            method: "GET",
            path: "/",
            query: "",
            headers: &headers,
            authority: None,
            body: b"",
        };
        let creds =
            Credentials::parse("AKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY:example")
                .unwrap();
        let now = parse_amz_date("20150830T123600Z").unwrap();
        let caller = authenticate(AuthMode::SigV4, &creds, &req, now).unwrap();
        assert_eq!(caller.principal.to_string(), "User:example");
        assert_eq!(caller.region, "us-east-1");
        // Too late.
        assert!(matches!(
            authenticate(AuthMode::SigV4, &creds, &req, now + 6 * 60_000),
            Err(KinesisError::InvalidSignature(_))
        ));
        // Wrong secret.
        let wrong = Credentials::parse("AKIDEXAMPLE:other").unwrap();
        assert!(matches!(
            authenticate(AuthMode::SigV4, &wrong, &req, now),
            Err(KinesisError::InvalidSignature(_))
        ));
        // Unknown key.
        assert!(matches!(
            authenticate(AuthMode::SigV4, &Credentials::default(), &req, now),
            Err(KinesisError::UnrecognizedClient(_))
        ));
        // Dev mode: any signature, the key names the principal.
        let caller = authenticate(AuthMode::None, &Credentials::default(), &req, now).unwrap();
        assert_eq!(caller.principal.to_string(), "User:AKIDEXAMPLE");
    }
}
