//! A minimal Kafka protocol client for broker-to-broker calls (a follower's Fetch and
//! OffsetForLeaderEpoch to its leader): one TCP connection, one request in flight, every call
//! bounded by a deadline. Built on the same `kafka-protocol` types the broker serves.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest response accepted (a fetch answers at most `replica.fetch.response.max.bytes`
/// plus one oversized batch).
const MAX_RESPONSE: usize = 256 << 20;

/// Errors of a broker-to-broker call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, writing or reading failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The call did not complete before its deadline.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The request could not be encoded or the response decoded.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// One connection to a broker.
pub struct BrokerClient {
    stream: TcpStream,
    client_id: StrBytes,
    correlation: i32,
}

impl BrokerClient {
    /// Connects to `addr` (`host:port`) within `timeout`.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout(timeout))??;
        stream.set_nodelay(true)?;
        Ok(BrokerClient {
            stream,
            client_id: StrBytes::from_string(client_id.to_string()),
            correlation: 0,
        })
    }

    /// Whether the connection still looks usable: the peer has not closed it and sent nothing
    /// unasked (checked without blocking, e.g. before reusing a pooled connection).
    pub fn is_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(
            self.stream.try_read(&mut probe),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        )
    }

    /// Sends `req` as `key` version `version` and decodes the response, within `timeout`.
    pub async fn call<Req, Resp>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, ClientError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        match tokio::time::timeout(timeout, self.exchange(key, version, req)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout(timeout)),
        }
    }

    async fn exchange<Req, Resp>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Result<Resp, ClientError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        self.correlation = self.correlation.wrapping_add(1);
        let correlation = self.correlation;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(self.client_id.clone()));
        let header_version = Req::header_version(version);
        let size = header.compute_size(header_version).map_err(protocol)?
            + req.compute_size(version).map_err(protocol)?;
        let mut buf = BytesMut::with_capacity(4 + size);
        buf.extend_from_slice(&(size as i32).to_be_bytes());
        header.encode(&mut buf, header_version).map_err(protocol)?;
        req.encode(&mut buf, version).map_err(protocol)?;
        self.stream.write_all(&buf).await?;

        let len = self.stream.read_i32().await?;
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= MAX_RESPONSE && *l >= 4)
            .ok_or_else(|| ClientError::Protocol(format!("response length {len}")))?;
        // Grows as the response arrives: the length field alone never reserves MAX_RESPONSE.
        let mut body = Vec::new();
        if (&mut self.stream)
            .take(len as u64)
            .read_to_end(&mut body)
            .await?
            < len
        {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        let mut body = Bytes::from(body);
        let header =
            ResponseHeader::decode(&mut body, Resp::header_version(version)).map_err(protocol)?;
        if header.correlation_id != correlation {
            return Err(ClientError::Protocol(format!(
                "correlation id {} answers request {correlation}",
                header.correlation_id
            )));
        }
        Resp::decode(&mut body, version).map_err(protocol)
    }
}

/// A codec error (its concrete type differs between encoding and decoding) as text.
fn protocol(e: impl std::fmt::Display) -> ClientError {
    ClientError::Protocol(e.to_string())
}
