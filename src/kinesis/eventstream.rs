//! The `application/vnd.amazon.eventstream` framing SubscribeToShard answers with. A message is
//!
//! ```text
//! total length u32 | headers length u32 | prelude CRC u32 (CRC-32 of the 8 bytes before)
//!   | headers | payload | message CRC u32 (CRC-32 of everything before it)
//! ```
//!
//! all big-endian, CRC-32 being the IEEE polynomial (as zlib's). A header is name length u8,
//! name, value type u8 (7 = string), value length u16, value. Only string headers are written.

use bytes::{BufMut, Bytes, BytesMut};

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

/// CRC-32 (IEEE 802.3, reflected, as zlib's `crc32`).
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for b in data {
        c = CRC_TABLE[((c ^ u32::from(*b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// Header value type of a string.
const STRING: u8 = 7;

/// Encodes one message with string headers.
pub fn message(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let mut h = BytesMut::new();
    for (name, value) in headers {
        let name = &name.as_bytes()[..name.len().min(255)];
        let value = &value.as_bytes()[..value.len().min(u16::MAX as usize)];
        h.put_u8(name.len() as u8);
        h.put_slice(name);
        h.put_u8(STRING);
        h.put_u16(value.len() as u16);
        h.put_slice(value);
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut m = BytesMut::with_capacity(total);
    m.put_u32(total as u32);
    m.put_u32(h.len() as u32);
    let prelude_crc = crc32(&m[..8]);
    m.put_u32(prelude_crc);
    m.put_slice(&h);
    m.put_slice(payload);
    let crc = crc32(&m);
    m.put_u32(crc);
    m.freeze()
}

/// An event message (`:message-type` event).
pub fn event(event_type: &str, content_type: &str, payload: &[u8]) -> Bytes {
    message(
        &[
            (":event-type", event_type),
            (":content-type", content_type),
            (":message-type", "event"),
        ],
        payload,
    )
}

/// An exception message (`:message-type` exception).
pub fn exception(exception_type: &str, content_type: &str, payload: &[u8]) -> Bytes {
    message(
        &[
            (":exception-type", exception_type),
            (":content-type", content_type),
            (":message-type", "exception"),
        ],
        payload,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_and_framing() {
        // The CRC-32 check value.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        let m = message(&[("a", "bc")], b"xyz");
        let total = u32::from_be_bytes([m[0], m[1], m[2], m[3]]) as usize;
        assert_eq!(total, m.len());
        let headers = u32::from_be_bytes([m[4], m[5], m[6], m[7]]) as usize;
        assert_eq!(headers, 1 + 1 + 1 + 2 + 2);
        assert_eq!(
            u32::from_be_bytes([m[8], m[9], m[10], m[11]]),
            crc32(&m[..8])
        );
        let end = m.len() - 4;
        assert_eq!(
            u32::from_be_bytes([m[end], m[end + 1], m[end + 2], m[end + 3]]),
            crc32(&m[..end])
        );
        assert_eq!(&m[12 + headers..end], b"xyz");
    }
}
