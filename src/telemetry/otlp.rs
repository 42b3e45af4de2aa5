//! A small protobuf reader for the one message clients push (KIP-714): OpenTelemetry's
//! `MetricsData` (`opentelemetry/proto/metrics/v1/metrics.proto`), reduced to what the broker
//! exports: resource attributes, and per metric its name, kind and number data points (gauge,
//! sum, histogram count and sum) with their attributes.
//!
//! Sans-io and total: any input either decodes or yields an [`OtlpError`]; nothing here panics,
//! allocates more than the input can describe, or recurses on input-controlled depth (nested
//! `AnyValue` arrays and key-value lists are skipped, not walked).

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtlpError {
    /// The input ended inside a field.
    #[error("truncated protobuf at byte {0}")]
    Truncated(usize),
    /// A varint longer than 10 bytes.
    #[error("malformed varint at byte {0}")]
    Varint(usize),
    /// Wire types 3 and 4 (groups) and 6, 7 do not occur in OTLP.
    #[error("unsupported wire type {wire} at byte {at}")]
    WireType {
        /// The wire type.
        wire: u8,
        /// Offset of the tag.
        at: usize,
    },
    /// Field number 0 is never valid.
    #[error("field number 0 at byte {0}")]
    FieldZero(usize),
}

/// What kind of instrument a point came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointKind {
    /// A gauge: the value is the latest measurement.
    Gauge,
    /// A sum; `delta` when the value is the change since the last push.
    Sum {
        /// AGGREGATION_TEMPORALITY_DELTA.
        delta: bool,
    },
    /// The count or sum of a histogram (`<name>.count`, `<name>.sum`).
    Histogram {
        /// AGGREGATION_TEMPORALITY_DELTA.
        delta: bool,
    },
}

/// One number of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Metric name (`org.apache.kafka.producer.node.request.latency.avg`; a histogram's
    /// points get `.count` and `.sum` appended).
    pub name: String,
    /// Instrument kind and temporality.
    pub kind: PointKind,
    /// Data point attributes (`node.id`, `topic`, ...) in payload order, as text.
    pub attributes: Vec<(String, String)>,
    /// The value (integers converted to f64).
    pub value: f64,
}

/// The decoded payload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Attributes of every resource in the payload, in order.
    pub resource: Vec<(String, String)>,
    /// Every number data point.
    pub points: Vec<Point>,
}

type Result<T> = std::result::Result<T, OtlpError>;

/// Protobuf wire types that OTLP uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Varint,
    Fixed64,
    Len,
    Fixed32,
}

/// A cursor over one message's bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf` in the whole payload (for error positions).
    base: usize,
}

/// A field's value as read.
enum Value<'a> {
    Int(u64),
    Fixed64(u64),
    Fixed32,
    Bytes(Reader<'a>),
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            base: 0,
        }
    }

    fn at(&self) -> usize {
        self.base + self.pos
    }

    fn varint(&mut self) -> Result<u64> {
        let start = self.at();
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(OtlpError::Truncated(self.at()));
            };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(OtlpError::Varint(start))
    }

    fn take(&mut self, n: usize) -> Result<Reader<'a>> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(OtlpError::Truncated(self.at()))?;
        let r = Reader {
            buf: &self.buf[self.pos..end],
            pos: 0,
            base: self.at(),
        };
        self.pos = end;
        Ok(r)
    }

    fn fixed64(&mut self) -> Result<u64> {
        let r = self.take(8)?;
        let mut b = [0u8; 8];
        b.copy_from_slice(r.buf);
        Ok(u64::from_le_bytes(b))
    }

    /// The next field: its number and value, or `None` at the end of the message.
    fn field(&mut self) -> Result<Option<(u64, Value<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let at = self.at();
        let tag = self.varint()?;
        let number = tag >> 3;
        if number == 0 {
            return Err(OtlpError::FieldZero(at));
        }
        let wire = match tag & 7 {
            0 => Wire::Varint,
            1 => Wire::Fixed64,
            2 => Wire::Len,
            5 => Wire::Fixed32,
            w => return Err(OtlpError::WireType { wire: w as u8, at }),
        };
        let value = match wire {
            Wire::Varint => Value::Int(self.varint()?),
            Wire::Fixed64 => Value::Fixed64(self.fixed64()?),
            Wire::Fixed32 => {
                self.take(4)?;
                Value::Fixed32
            }
            Wire::Len => {
                let n = self.varint()?;
                let n = usize::try_from(n).map_err(|_| OtlpError::Truncated(self.at()))?;
                Value::Bytes(self.take(n)?)
            }
        };
        Ok(Some((number, value)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(self.buf).into_owned()
    }
}

/// Decodes an (uncompressed) `MetricsData` message.
pub fn decode(payload: &[u8]) -> Result<Metrics> {
    let mut out = Metrics::default();
    let mut r = Reader::new(payload);
    while let Some((n, v)) = r.field()? {
        // MetricsData.resource_metrics = 1
        if let (1, Value::Bytes(rm)) = (n, v) {
            resource_metrics(rm, &mut out)?;
        }
    }
    Ok(out)
}

fn resource_metrics(mut r: Reader<'_>, out: &mut Metrics) -> Result<()> {
    while let Some((n, v)) = r.field()? {
        match (n, v) {
            // ResourceMetrics.resource = 1 { attributes = 1 }
            (1, Value::Bytes(mut res)) => {
                while let Some((n, v)) = res.field()? {
                    if let (1, Value::Bytes(kv)) = (n, v) {
                        if let Some(kv) = key_value(kv)? {
                            out.resource.push(kv);
                        }
                    }
                }
            }
            // ResourceMetrics.scope_metrics = 2 { metrics = 2 }
            (2, Value::Bytes(mut sm)) => {
                while let Some((n, v)) = sm.field()? {
                    if let (2, Value::Bytes(m)) = (n, v) {
                        metric(m, &mut out.points)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// `Metric { name = 1; gauge = 5; sum = 7; histogram = 9 }`; other kinds are skipped.
fn metric(mut r: Reader<'_>, out: &mut Vec<Point>) -> Result<()> {
    let mut name = String::new();
    let mut data: Option<(u64, Reader<'_>)> = None;
    while let Some((n, v)) = r.field()? {
        match (n, v) {
            (1, Value::Bytes(s)) => name = s.text(),
            (5 | 7 | 9, Value::Bytes(d)) => data = Some((n, d)),
            _ => {}
        }
    }
    let Some((kind, mut d)) = data else {
        return Ok(());
    };
    // Gauge/Sum/Histogram { data_points = 1; aggregation_temporality = 2 (not in Gauge) }
    let mut delta = false;
    let mut points = Vec::new();
    while let Some((n, v)) = d.field()? {
        match (n, v) {
            (1, Value::Bytes(p)) => points.push(p),
            (2, Value::Int(t)) => delta = t == 1,
            _ => {}
        }
    }
    for p in points {
        if kind == 9 {
            let (attributes, count, sum) = histogram_point(p)?;
            let kind = PointKind::Histogram { delta };
            out.push(Point {
                name: format!("{name}.count"),
                kind,
                attributes: attributes.clone(),
                value: count as f64,
            });
            if let Some(sum) = sum {
                out.push(Point {
                    name: format!("{name}.sum"),
                    kind,
                    attributes,
                    value: sum,
                });
            }
        } else if let (attributes, Some(value)) = number_point(p)? {
            let kind = if kind == 5 {
                PointKind::Gauge
            } else {
                PointKind::Sum { delta }
            };
            out.push(Point {
                name: name.clone(),
                kind,
                attributes,
                value,
            });
        }
    }
    Ok(())
}

type Attributes = Vec<(String, String)>;

/// `NumberDataPoint { as_double = 4; as_int = 6 (sfixed64); attributes = 7 }`.
fn number_point(mut r: Reader<'_>) -> Result<(Attributes, Option<f64>)> {
    let mut attributes = Vec::new();
    let mut value = None;
    while let Some((n, v)) = r.field()? {
        match (n, v) {
            (4, Value::Fixed64(bits)) => value = Some(f64::from_bits(bits)),
            (6, Value::Fixed64(bits)) => value = Some(bits as i64 as f64),
            (7, Value::Bytes(kv)) => attributes.extend(key_value(kv)?),
            _ => {}
        }
    }
    Ok((attributes, value))
}

/// `HistogramDataPoint { count = 4 (fixed64); sum = 5 (double); attributes = 9 }`.
fn histogram_point(mut r: Reader<'_>) -> Result<(Attributes, u64, Option<f64>)> {
    let mut attributes = Vec::new();
    let (mut count, mut sum) = (0, None);
    while let Some((n, v)) = r.field()? {
        match (n, v) {
            (4, Value::Fixed64(c)) => count = c,
            (5, Value::Fixed64(bits)) => sum = Some(f64::from_bits(bits)),
            (9, Value::Bytes(kv)) => attributes.extend(key_value(kv)?),
            _ => {}
        }
    }
    Ok((attributes, count, sum))
}

/// `KeyValue { key = 1; value = 2 }` with a scalar `AnyValue { string = 1; bool = 2; int = 3;
/// double = 4 }`; arrays, key-value lists and bytes are skipped (`None`).
fn key_value(mut r: Reader<'_>) -> Result<Option<(String, String)>> {
    let mut key = None;
    let mut value = None;
    while let Some((n, v)) = r.field()? {
        match (n, v) {
            (1, Value::Bytes(k)) => key = Some(k.text()),
            (2, Value::Bytes(mut any)) => {
                while let Some((n, v)) = any.field()? {
                    value = match (n, v) {
                        (1, Value::Bytes(s)) => Some(s.text()),
                        (2, Value::Int(b)) => Some((b != 0).to_string()),
                        (3, Value::Int(i)) => Some((i as i64).to_string()),
                        (4, Value::Fixed64(bits)) => Some(f64::from_bits(bits).to_string()),
                        _ => value,
                    };
                }
            }
            _ => {}
        }
    }
    Ok(key.zip(value))
}

/// A minimal protobuf writer for tests (of this module and of the telemetry manager).
#[cfg(test)]
pub(crate) mod encode {
    /// Appends a varint.
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A length-delimited field.
    pub fn bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
        varint(out, field << 3 | 2);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }

    /// A fixed64 field.
    pub fn fixed64(out: &mut Vec<u8>, field: u64, v: u64) {
        varint(out, field << 3 | 1);
        out.extend_from_slice(&v.to_le_bytes());
    }

    /// A varint field.
    pub fn int(out: &mut Vec<u8>, field: u64, v: u64) {
        varint(out, field << 3);
        varint(out, v);
    }

    /// `KeyValue` with a string value.
    pub fn kv(key: &str, value: &str) -> Vec<u8> {
        let mut any = Vec::new();
        bytes(&mut any, 1, value.as_bytes());
        let mut kv = Vec::new();
        bytes(&mut kv, 1, key.as_bytes());
        bytes(&mut kv, 2, &any);
        kv
    }

    /// A number point: `Ok(int)` as `as_int`, `Err(double)` as `as_double`.
    pub fn point(value: Result<i64, f64>, attrs: &[(&str, &str)]) -> Vec<u8> {
        let mut p = Vec::new();
        for (k, v) in attrs {
            bytes(&mut p, 7, &kv(k, v));
        }
        match value {
            Ok(i) => fixed64(&mut p, 6, i as u64),
            Err(d) => fixed64(&mut p, 4, d.to_bits()),
        }
        p
    }

    /// A metric: `kind` 5 gauge, 7 sum (cumulative), 9 histogram with the given raw points.
    pub fn metric(name: &str, kind: u64, points: &[Vec<u8>], delta: bool) -> Vec<u8> {
        let mut data = Vec::new();
        for p in points {
            bytes(&mut data, 1, p);
        }
        if kind != 5 {
            int(&mut data, 2, if delta { 1 } else { 2 });
        }
        let mut m = Vec::new();
        bytes(&mut m, 1, name.as_bytes());
        bytes(&mut m, kind, &data);
        m
    }

    /// A whole `MetricsData` with one resource and one scope.
    pub fn metrics_data(resource: &[(&str, &str)], metrics: &[Vec<u8>]) -> Vec<u8> {
        let mut res = Vec::new();
        for (k, v) in resource {
            bytes(&mut res, 1, &kv(k, v));
        }
        let mut scope = Vec::new();
        for m in metrics {
            bytes(&mut scope, 2, m);
        }
        let mut rm = Vec::new();
        bytes(&mut rm, 1, &res);
        bytes(&mut rm, 2, &scope);
        let mut out = Vec::new();
        bytes(&mut out, 1, &rm);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::encode::{bytes, fixed64, kv, metric, metrics_data, point};
    use super::{decode, Metrics, OtlpError, Point, PointKind};
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        let mut hist = Vec::new();
        bytes(&mut hist, 9, &kv("topic", "t"));
        fixed64(&mut hist, 4, 7);
        fixed64(&mut hist, 5, 3.5f64.to_bits());
        // Bucket counts and bounds are read past.
        fixed64(&mut hist, 6, 1);
        metrics_data(
            &[("client_rack", "r1")],
            &[
                metric(
                    "org.apache.kafka.producer.node.request.latency.avg",
                    5,
                    &[point(Err(1.25), &[("node.id", "1")])],
                    false,
                ),
                metric(
                    "org.apache.kafka.producer.connection.creation.total",
                    7,
                    &[point(Ok(-3), &[])],
                    true,
                ),
                metric("h", 9, &[hist], false),
            ],
        )
    }

    #[test]
    fn decodes_gauges_sums_and_histograms() {
        let m = decode(&sample()).unwrap();
        assert_eq!(m.resource, vec![("client_rack".into(), "r1".into())]);
        assert_eq!(
            m.points,
            vec![
                Point {
                    name: "org.apache.kafka.producer.node.request.latency.avg".into(),
                    kind: PointKind::Gauge,
                    attributes: vec![("node.id".into(), "1".into())],
                    value: 1.25,
                },
                Point {
                    name: "org.apache.kafka.producer.connection.creation.total".into(),
                    kind: PointKind::Sum { delta: true },
                    attributes: vec![],
                    value: -3.0,
                },
                Point {
                    name: "h.count".into(),
                    kind: PointKind::Histogram { delta: false },
                    attributes: vec![("topic".into(), "t".into())],
                    value: 7.0,
                },
                Point {
                    name: "h.sum".into(),
                    kind: PointKind::Histogram { delta: false },
                    attributes: vec![("topic".into(), "t".into())],
                    value: 3.5,
                },
            ]
        );
    }

    #[test]
    fn empty_payload_is_no_metrics() {
        assert_eq!(decode(&[]).unwrap(), Metrics::default());
    }

    #[test]
    fn malformed_input_is_an_error() {
        // A length running past the end.
        assert_eq!(decode(&[0x0a, 0x05, 1]), Err(OtlpError::Truncated(2)));
        // Eleven continuation bytes.
        assert_eq!(decode(&[0x80; 11]), Err(OtlpError::Varint(0)));
        // A group (wire type 3).
        assert!(matches!(
            decode(&[0x0b]),
            Err(OtlpError::WireType { wire: 3, at: 0 })
        ));
        assert_eq!(decode(&[0x00, 0x00]), Err(OtlpError::FieldZero(0)));
        // Every truncation of a valid payload either fails or decodes a prefix, never panics.
        let full = sample();
        for n in 0..full.len() {
            let _ = decode(&full[..n]);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn mutated_payloads_never_panic(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
        ) {
            let mut b = sample();
            for (i, v) in flips {
                let i = i.index(b.len());
                b[i] = v;
            }
            let _ = decode(&b);
        }

        #[test]
        fn gauges_round_trip(
            name in "[a-z.]{1,40}",
            value in any::<f64>().prop_filter("not NaN", |v| !v.is_nan()),
            node in 0u32..1000,
        ) {
            let node = node.to_string();
            let payload = metrics_data(&[], &[metric(&name, 5, &[point(Err(value), &[("node.id", &node)])], false)]);
            let m = decode(&payload).unwrap();
            prop_assert_eq!(m.points.len(), 1);
            prop_assert_eq!(&m.points[0].name, &name);
            prop_assert_eq!(m.points[0].value, value);
            prop_assert_eq!(&m.points[0].attributes, &vec![("node.id".to_string(), node)]);
        }
    }
}
