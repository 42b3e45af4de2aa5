//! A hand-rolled protocol client for malformed-input tests and for APIs the rdkafka crate
//! does not expose.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The size-prefixed frame of `req` with a request header (any transport can send it).
pub fn request_frame<Req: Request + Encodable>(
    req: &Req,
    version: i16,
    correlation_id: i32,
    client_id: &'static str,
) -> BytesMut {
    let header = RequestHeader::default()
        .with_request_api_key(Req::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(client_id)));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, Req::header_version(version))
        .expect("header");
    req.encode(&mut body, version).expect("body");
    let mut frame = BytesMut::with_capacity(4 + body.len());
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    frame
}

/// A raw connection to the broker.
pub struct Raw {
    s: TcpStream,
    /// Last correlation id used.
    pub corr: i32,
    /// The client id in request headers.
    pub client_id: &'static str,
}

impl Raw {
    pub async fn connect(addr: &str) -> Raw {
        Self::connect_as(addr, "raw").await
    }

    /// Connects with `client_id` in every request header.
    pub async fn connect_as(addr: &str, client_id: &'static str) -> Raw {
        Raw {
            s: TcpStream::connect(addr).await.expect("connect"),
            corr: 0,
            client_id,
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.expect("write");
    }

    /// Sends a request without reading the response; returns its correlation id.
    pub async fn send<Req: Request + Encodable>(&mut self, req: &Req, version: i16) -> i32 {
        self.corr += 1;
        let frame = request_frame(req, version, self.corr, self.client_id);
        self.send_raw(&frame).await;
        self.corr
    }

    /// Reads the next response and returns its correlation id and body.
    pub async fn recv<Resp: Decodable + HeaderVersion>(&mut self, version: i16) -> (i32, Resp) {
        let mut resp = self.read_frame().await.expect("response");
        let h =
            ResponseHeader::decode(&mut resp, Resp::header_version(version)).expect("resp header");
        (
            h.correlation_id,
            Resp::decode(&mut resp, version).expect("resp body"),
        )
    }

    /// Sends a request and decodes its response, checking the correlation id.
    pub async fn call<Req: Request + Encodable>(&mut self, req: &Req, version: i16) -> Req::Response
    where
        Req::Response: Decodable + HeaderVersion,
    {
        let sent = self.send(req, version).await;
        let (corr, resp) = self.recv::<Req::Response>(version).await;
        assert_eq!(corr, sent, "responses come back in request order");
        resp
    }

    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(10), self.s.read_exact(&mut len))
            .await
            .expect("no hang")
            .ok()?;
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.s.read_exact(&mut buf).await.ok()?;
        Some(Bytes::from(buf))
    }

    /// True when the broker closed the connection (EOF) within the timeout.
    pub async fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(10), self.s.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}
