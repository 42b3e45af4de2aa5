//! The web console: a small single-page application and its JSON API under `/ui`, served on
//! `metrics.listener` (`console.enable=true`) and/or on a listener of its own
//! (`console.listener`, HTTPS and client certificates with `console.ssl.*`). Off by default.
//!
//! The API answers from this broker's [`BrokerContext`] directly: the catalog, the shards (by
//! message, for offsets, sizes and records), the group coordinator, the ACL and SCRAM stores,
//! the Kinesis stream metadata, the configuration and the metrics counters. In a cluster it
//! shows what this node holds: records and sizes of partitions with a replica here, groups
//! whose coordinator partition this node leads.
//!
//! Authentication is the listeners': HTTP basic against SCRAM (or `sasl.plain.users`) users,
//! or a client certificate on a TLS `console.listener`; open (as `User:ANONYMOUS`) when the
//! broker has no authorizer and no users. Every API call is authorized by the same
//! [`crate::auth::Authorizer`] as Kafka requests, and every change is logged on the
//! `esker::audit` target. It runs as tasks on shard 0's runtime, like the metrics endpoint.
//!
//! - [`api`]: the JSON handlers.
//! - `auth`: credentials → principal.
//! - `records`: reading and decoding a page of a partition's records.
//! - [`server`]: `console.listener` (HTTP or HTTPS).

pub mod api;
mod assets;
mod auth;
mod records;
pub mod server;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::watch;

use crate::auth::Principal;
use crate::context::BrokerContext;

/// The console's path prefix.
pub const PREFIX: &str = "/ui";

/// The largest request body the API reads.
const MAX_BODY: usize = 64 * 1024;

/// How often the throughput sampler reads the counters, and how many samples it keeps.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);
const SAMPLES: usize = 90;

/// The header the console's own scripts send with every API call. Changes require it, so a
/// form on another site cannot make a logged-in browser change anything (it cannot set
/// headers, and a cross-origin fetch that sets one needs a CORS preflight this server refuses).
pub const CSRF_HEADER: &str = "x-esker-console";

/// `Content-Security-Policy` of every console response: scripts, styles and requests from the
/// console itself only; no inline scripts, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The `console.*` keys.
#[derive(Debug, Clone, Default)]
pub struct ConsoleConfig {
    /// `console.enable`: serve `/ui` on `metrics.listener`.
    pub on_metrics: bool,
    /// `console.listener`: `host:port` of a listener of its own; `None` when unset.
    pub listener: Option<String>,
    /// `console.ssl.enabled`: HTTPS on `console.listener`.
    pub tls: bool,
    /// `console.ssl.client.auth`: none, requested or required.
    pub client_auth: String,
}

impl ConsoleConfig {
    /// Reads the keys from the configuration's effective values.
    pub fn from_values(get: impl Fn(&str) -> String) -> Self {
        let listener = get("console.listener").trim().to_string();
        ConsoleConfig {
            on_metrics: get("console.enable") == "true",
            listener: (!listener.is_empty()).then_some(listener),
            tls: get("console.ssl.enabled") == "true",
            client_auth: get("console.ssl.client.auth").trim().to_string(),
        }
    }

    /// Whether the console is served anywhere.
    pub fn enabled(&self) -> bool {
        self.on_metrics || self.listener.is_some()
    }
}

/// Why an API call failed; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Malformed parameters or body.
    #[error("{0}")]
    BadRequest(String),
    /// No or wrong credentials.
    #[error("authentication required")]
    Unauthorized,
    /// The principal's ACLs do not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// No such topic, group or route.
    #[error("{0}")]
    NotFound(String),
    /// The topic exists already.
    #[error("{0}")]
    Conflict(String),
    /// The broker could not do it now (a shard or the coordinator is unavailable).
    #[error("{0}")]
    Unavailable(String),
}

impl ConsoleError {
    fn status(&self) -> StatusCode {
        match self {
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Unauthorized => StatusCode::UNAUTHORIZED,
            ConsoleError::Forbidden(_) => StatusCode::FORBIDDEN,
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::Conflict(_) => StatusCode::CONFLICT,
            ConsoleError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Who is calling: the authenticated principal and the peer address (the ACL host).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The principal.
    pub principal: Principal,
    /// The peer's IP address, as ACL hosts are written.
    pub host: String,
}

/// One throughput sample: rates per second over the interval before `at_ms`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Sample {
    /// When it was taken (ms since the epoch).
    pub at_ms: i64,
    /// Record bytes produced per second.
    pub bytes_in: f64,
    /// Record bytes fetched per second.
    pub bytes_out: f64,
    /// Records produced per second.
    pub messages_in: f64,
}

/// The console's state, shared by the listeners that serve it.
pub struct Console {
    ctx: Arc<BrokerContext>,
    verifier: auth::Verifier,
    samples: Mutex<VecDeque<Sample>>,
}

impl Console {
    /// The console over a broker's context.
    pub fn new(ctx: Arc<BrokerContext>) -> Arc<Console> {
        Arc::new(Console {
            ctx,
            verifier: auth::Verifier::new(),
            samples: Mutex::new(VecDeque::with_capacity(SAMPLES)),
        })
    }

    /// Samples the throughput counters every [`SAMPLE_INTERVAL`] until `stop` turns true.
    pub async fn sample_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut last = self.ctx.metrics.topic_totals();
        let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            let now = self.ctx.metrics.topic_totals();
            let secs = SAMPLE_INTERVAL.as_secs_f64();
            // A deleted topic takes its counters with it: never a negative rate.
            let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
            let sample = Sample {
                at_ms: BrokerContext::now_ms(),
                messages_in: rate(last.0, now.0),
                bytes_in: rate(last.1, now.1),
                bytes_out: rate(last.2, now.2),
            };
            last = now;
            let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
            if samples.len() == SAMPLES {
                samples.pop_front();
            }
            samples.push_back(sample);
        }
    }

    /// The samples kept, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect()
    }

    /// Answers a request under [`PREFIX`]. `cert` is the principal of a verified client
    /// certificate (TLS `console.listener`).
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        peer: IpAddr,
        cert: Option<Principal>,
    ) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        if let Some(asset) = assets::get(&path) {
            if method != Method::GET && method != Method::HEAD {
                return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            }
            let mut resp = Response::new(Full::new(Bytes::from_static(asset.body)));
            set(&mut resp, hyper::header::CONTENT_TYPE, asset.content_type);
            set(&mut resp, hyper::header::CACHE_CONTROL, "no-cache");
            return secure(resp);
        }
        if path == PREFIX {
            let mut resp = plain(StatusCode::PERMANENT_REDIRECT, "");
            set(&mut resp, hyper::header::LOCATION, "/ui/");
            return resp;
        }
        let Some(route) = path.strip_prefix("/ui/api/") else {
            return secure(plain(StatusCode::NOT_FOUND, "not found"));
        };
        let from_script = req.headers().contains_key(CSRF_HEADER);
        let result = self.api(req, route, &method, peer, cert, from_script).await;
        let mut resp = match result {
            Ok((status, body)) => json(status, &body),
            Err(e) => {
                let status = e.status();
                let mut resp = json(status, &serde_json::json!({ "error": e.to_string() }));
                if status == StatusCode::UNAUTHORIZED {
                    // The console's own scripts show a login form; a browser's built-in basic
                    // dialog is for everything else (curl, a typed URL).
                    let scheme = if from_script {
                        "Console realm=\"esker\""
                    } else {
                        "Basic realm=\"esker\", charset=\"UTF-8\""
                    };
                    set(&mut resp, hyper::header::WWW_AUTHENTICATE, scheme);
                }
                resp
            }
        };
        set(&mut resp, hyper::header::CACHE_CONTROL, "no-store");
        secure(resp)
    }

    async fn api(
        &self,
        req: Request<Incoming>,
        route: &str,
        method: &Method,
        peer: IpAddr,
        cert: Option<Principal>,
        from_script: bool,
    ) -> Result<(StatusCode, serde_json::Value), ConsoleError> {
        let principal = self
            .verifier
            .principal(&self.ctx, req.headers(), cert, peer)?;
        let caller = Caller {
            principal,
            host: peer.to_string(),
        };
        let query = req.uri().query().unwrap_or("").to_string();
        let changes = !(method == Method::GET || method == Method::HEAD);
        if changes && !from_script {
            return Err(ConsoleError::Forbidden(format!(
                "changes need the `{CSRF_HEADER}` header (sent by the console's own pages)"
            )));
        }
        let body = if method == Method::POST {
            let collected = Limited::new(req.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| ConsoleError::BadRequest(format!("cannot read the body: {e}")))?;
            collected.to_bytes()
        } else {
            Bytes::new()
        };
        // Boxed: the routes' futures together are deep enough to exceed the layout limit.
        Box::pin(api::route(self, &caller, method, route, &query, &body)).await
    }
}

fn set(resp: &mut Response<Full<Bytes>>, name: HeaderName, value: &'static str) {
    resp.headers_mut()
        .insert(name, HeaderValue::from_static(value));
}

/// Adds the security headers every console response carries.
fn secure(mut resp: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    set(
        &mut resp,
        HeaderName::from_static("content-security-policy"),
        CSP,
    );
    set(&mut resp, hyper::header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(&mut resp, hyper::header::X_FRAME_OPTIONS, "DENY");
    set(&mut resp, hyper::header::REFERRER_POLICY, "no-referrer");
    resp
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    set(&mut resp, hyper::header::CONTENT_TYPE, "text/plain");
    resp
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    set(&mut resp, hyper::header::CONTENT_TYPE, "application/json");
    resp
}
