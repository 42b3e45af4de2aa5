//! AWS's request validation, run on the parsed body of every Kinesis request before the typed
//! decoding (the router's one hook is [`decode`]). It owns what AWS's front end answers before
//! an operation runs:
//!
//! - type errors (a string where a number belongs, a blob that is not base64, a string for a
//!   timestamp): `SerializationException` with AWS's `Message` text, the first one found;
//! - constraint violations (missing required members, lengths, ranges, patterns, enums): one
//!   `ValidationException` listing up to ten of them, in AWS's member order, in AWS's words
//!   ("Value '' at 'records.1.member.partitionKey' failed to satisfy constraint: Member must
//!   have length greater than or equal to 1");
//! - AWS's number reading: an integer member given 2.7 is read as 2, one given 10^20 as
//!   2147483647 (Long members are floored only), and checked and used so.
//!
//! The constraint table, [`schema`], is generated from AWS's API model by
//! `tests/compat/kinesis_diff/generate.py`. A JSON body is parsed once into a tree borrowing
//! from it ([`json`]), checked, and the typed request is read from that tree; the checks of a
//! valid request walk it without allocating; strings are built only for errors.

mod json;
#[rustfmt::skip]
mod schema;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{OnceLock, RwLock};

use serde::de::DeserializeOwned;

use self::json::Json;
use super::error::KinesisError;
use super::server::Encoding;

/// What a shape holds.
#[derive(Debug)]
pub enum Kind {
    /// A UTF-8 string.
    String,
    /// A 32-bit integer.
    Integer,
    /// A 64-bit integer.
    Long,
    /// true / false.
    Boolean,
    /// Bytes: base64 in JSON, a byte string in CBOR.
    Blob,
    /// Epoch seconds (JSON) or a tagged epoch value (CBOR).
    Timestamp,
    /// A list of the member shape.
    List(&'static Shape),
    /// A map from the key shape to the value shape.
    Map(&'static Shape, &'static Shape),
    /// A structure with members in AWS's reporting order.
    Structure(&'static [Member]),
}

/// A shape of the API model with its constraints.
#[derive(Debug)]
pub struct Shape {
    /// The model's name of the shape.
    pub name: &'static str,
    /// What it holds.
    pub kind: Kind,
    /// Length bounds (characters, bytes, entries).
    pub min_len: Option<u64>,
    /// See `min_len`.
    pub max_len: Option<u64>,
    /// Value bounds of numbers.
    pub min: Option<i64>,
    /// See `min`.
    pub max: Option<i64>,
    /// A regular expression the whole string must match.
    pub pattern: Option<&'static str>,
    /// The allowed values (empty: any).
    pub enum_values: &'static [&'static str],
    /// How AWS prints a structure of this shape inside a list.
    pub member_str: Option<&'static str>,
}

/// A member of a structure.
#[derive(Debug)]
pub struct Member {
    /// The wire name (`StreamName`).
    pub name: &'static str,
    /// The name in messages (`streamName`).
    pub field: &'static str,
    /// Whether AWS requires it.
    pub required: bool,
    /// Its shape.
    pub shape: &'static Shape,
}

/// The input of one operation.
#[derive(Debug)]
pub struct Operation {
    /// `PutRecords`.
    pub name: &'static str,
    /// The input's members in AWS's reporting order.
    pub members: &'static [Member],
}

/// The input description of an operation of the model.
pub fn operation(name: &str) -> Option<&'static Operation> {
    schema::OPERATIONS
        .binary_search_by(|o| o.name.cmp(name))
        .ok()
        .and_then(|i| schema::OPERATIONS.get(i))
}

/// At most this many violations are reported (AWS's limit).
const MAX_ERRORS: usize = 10;

/// Parses, validates and decodes a request body of `operation` into its typed model.
pub fn decode<T: DeserializeOwned>(
    operation: &str,
    body: &[u8],
    encoding: Encoding,
) -> Result<T, KinesisError> {
    let op = self::operation(operation);
    match encoding {
        Encoding::Json => {
            if body.is_empty() {
                return Err(KinesisError::Serialization(String::new()));
            }
            let mut tree = Json::parse(body).map_err(|e| {
                tracing::debug!(operation, error = %e, "kinesis body is not JSON");
                KinesisError::Serialization(String::new())
            })?;
            if !matches!(tree, Json::Map(_)) {
                return Err(KinesisError::Serialization(String::new()));
            }
            let Some(op) = op else {
                return T::deserialize(tree)
                    .map_err(|e| KinesisError::Serialization(e.to_string()));
            };
            // What AWS answers when the quick checks or the typed decoding find something:
            // the complete checks' error (a blob's base64 text is reported in member order).
            let complete = |quick: KinesisError| -> KinesisError {
                match Json::parse(body).map(|tree| validate(op.members, &tree)) {
                    Ok(Err(e)) => e,
                    _ => quick,
                }
            };
            match validate_with(op.members, &tree, Blobs::Deferred) {
                Ok(true) => truncate_numbers(op.members, &mut tree),
                Ok(false) => {}
                Err(e) => return Err(complete(e)),
            }
            T::deserialize(tree).map_err(|e| complete(KinesisError::Serialization(e.to_string())))
        }
        Encoding::Cbor => {
            // The Java SDKs send no body at all for operations without input.
            let body = if body.is_empty() { &[0xa0u8][..] } else { body };
            let mut value: ciborium::Value = ciborium::from_reader(body).map_err(|e| {
                tracing::debug!(operation, error = %e, "kinesis body is not CBOR");
                KinesisError::Serialization(String::new())
            })?;
            if !value.is_map() {
                return Err(KinesisError::Serialization(String::new()));
            }
            let truncated = match op {
                Some(op) => validate(op.members, &value)?,
                None => false,
            };
            if truncated {
                if let Some(op) = op {
                    truncate_numbers(op.members, &mut value);
                }
            }
            // From the checked value, not the body again: one parse.
            value
                .deserialized()
                .map_err(|e| KinesisError::Serialization(e.to_string()))
        }
    }
}

/// Checks a parsed request against the members of its operation: the types first (the first
/// wrong one is a `SerializationException`), then every constraint (one
/// `ValidationException`). Answers whether some number must be truncated as AWS reads it.
pub fn validate<N: Node>(members: &'static [Member], value: &N) -> Result<bool, KinesisError> {
    validate_with(members, value, Blobs::Check)
}

/// How the checks treat base64 text of a blob member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blobs {
    /// Checked as AWS checks it.
    Check,
    /// Left to the typed decoding, which refuses exactly what AWS refuses (canonical, padded
    /// standard base64; see the tests): a valid request's records are then read once, not
    /// twice. Any error sends the request through the checks again with [`Blobs::Check`].
    Deferred,
}

fn validate_with<N: Node>(
    members: &'static [Member],
    value: &N,
    blobs: Blobs,
) -> Result<bool, KinesisError> {
    for m in members {
        if let Some(v) = value.field(m.name) {
            if let Some(message) = type_error(m.shape, v, blobs) {
                return Err(KinesisError::Type(message));
            }
        }
    }
    let mut errors = Errors::default();
    check_members(&mut errors, &Path::Root, members, value);
    if errors.list.is_empty() {
        return Ok(errors.truncate);
    }
    let n = errors.list.len();
    Err(KinesisError::Validation(format!(
        "{n} validation error{} detected: {}",
        if n == 1 { "" } else { "s" },
        errors.list.join("; ")
    )))
}

// ---------------------------------------------------------------------------------------------
// Parsed values
// ---------------------------------------------------------------------------------------------

/// A number as parsed.
#[derive(Debug, Clone, Copy)]
pub enum Num {
    /// An integer.
    Int(i128),
    /// A number with a fraction or an exponent.
    Float(f64),
}

/// One parsed value, seen without its encoding.
pub enum View<'a, N> {
    /// null, or absent.
    Null,
    /// true / false.
    Bool(bool),
    /// A number.
    Num(Num),
    /// A text string.
    Str(&'a str),
    /// A byte string (CBOR).
    Bytes(&'a [u8]),
    /// A list.
    List(&'a [N]),
    /// A map or structure.
    Map,
}

/// A parsed body: [`json::Json`], `serde_json::Value` or `ciborium::Value`.
pub trait Node: Sized {
    /// What the value is.
    fn view(&self) -> View<'_, Self>;
    /// The member of a map by name (None when absent or not a map).
    fn field(&self, name: &str) -> Option<&Self>;
    /// The entries of a map with text keys, in order.
    fn entries(&self) -> Vec<(&str, &Self)>;
    /// The member of a map, for changing it.
    fn field_mut(&mut self, name: &str) -> Option<&mut Self>;
    /// The items of a list, for changing them.
    fn items_mut(&mut self) -> Option<&mut [Self]>;
    /// Replaces the value by an integer.
    fn set_int(&mut self, v: i64);
}

impl Node for serde_json::Value {
    fn view(&self) -> View<'_, Self> {
        use serde_json::Value;
        match self {
            Value::Null => View::Null,
            Value::Bool(b) => View::Bool(*b),
            Value::Number(n) => View::Num(match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Num::Int(i128::from(i)),
                (None, Some(u)) => Num::Int(i128::from(u)),
                _ => Num::Float(n.as_f64().unwrap_or(f64::NAN)),
            }),
            Value::String(s) => View::Str(s),
            Value::Array(a) => View::List(a),
            Value::Object(_) => View::Map,
        }
    }
    fn field(&self, name: &str) -> Option<&Self> {
        self.as_object().and_then(|m| m.get(name))
    }
    fn entries(&self) -> Vec<(&str, &Self)> {
        self.as_object()
            .map(|m| m.iter().map(|(k, v)| (k.as_str(), v)).collect())
            .unwrap_or_default()
    }
    fn field_mut(&mut self, name: &str) -> Option<&mut Self> {
        self.as_object_mut().and_then(|m| m.get_mut(name))
    }
    fn items_mut(&mut self) -> Option<&mut [Self]> {
        self.as_array_mut().map(|a| a.as_mut_slice())
    }
    fn set_int(&mut self, v: i64) {
        *self = serde_json::Value::from(v);
    }
}

impl Node for ciborium::Value {
    fn view(&self) -> View<'_, Self> {
        use ciborium::Value;
        match self {
            Value::Null => View::Null,
            Value::Bool(b) => View::Bool(*b),
            Value::Integer(i) => View::Num(Num::Int(i128::from(*i))),
            Value::Float(f) => View::Num(Num::Float(*f)),
            Value::Text(s) => View::Str(s),
            Value::Bytes(b) => View::Bytes(b),
            Value::Array(a) => View::List(a),
            Value::Map(_) => View::Map,
            Value::Tag(_, inner) => inner.view(),
            _ => View::Null,
        }
    }
    fn field(&self, name: &str) -> Option<&Self> {
        match self {
            ciborium::Value::Map(m) => m
                .iter()
                .find(|(k, _)| k.as_text() == Some(name))
                .map(|(_, v)| v),
            _ => None,
        }
    }
    fn entries(&self) -> Vec<(&str, &Self)> {
        match self {
            ciborium::Value::Map(m) => m
                .iter()
                .filter_map(|(k, v)| k.as_text().map(|k| (k, v)))
                .collect(),
            _ => Vec::new(),
        }
    }
    fn field_mut(&mut self, name: &str) -> Option<&mut Self> {
        match self {
            ciborium::Value::Map(m) => m
                .iter_mut()
                .find(|(k, _)| k.as_text() == Some(name))
                .map(|(_, v)| v),
            _ => None,
        }
    }
    fn items_mut(&mut self) -> Option<&mut [Self]> {
        match self {
            ciborium::Value::Array(a) => Some(a.as_mut_slice()),
            _ => None,
        }
    }
    fn set_int(&mut self, v: i64) {
        *self = ciborium::Value::Integer(v.into());
    }
}

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

const LIST_FOUND: &str = "Start of list found where not expected";
const MAP_FOUND: &str = "Start of structure or map found where not expected.";
const BIG_NUMBER: &str = "class com.amazon.coral.value.json.numbers.TruncatingBigNumber";

/// AWS's `SerializationException` text when `v` cannot be read as `shape`, else None.
fn type_error<N: Node>(shape: &Shape, v: &N, blobs: Blobs) -> Option<String> {
    let view = v.view();
    if let View::Null = view {
        return None;
    }
    let scalar_name = match shape.kind {
        Kind::Integer => "an Integer",
        Kind::Long => "an Long",
        Kind::String => "an String",
        Kind::Boolean => "an Boolean",
        Kind::Blob => "a Blob",
        Kind::Timestamp => "milliseconds since epoch",
        _ => "",
    };
    let text = |s: &str| -> String { format!("'{s}' can not be converted to {scalar_name}") };
    match (&shape.kind, view) {
        (_, View::Null) => None,
        (Kind::List(member), View::List(items)) => items
            .iter()
            .find_map(|item| type_error(member, item, blobs)),
        (Kind::List(_), View::Map) => Some(MAP_FOUND.into()),
        (Kind::List(_), _) => Some("Expected list or null".into()),
        (Kind::Map(_, value), View::Map) => v
            .entries()
            .into_iter()
            .find_map(|(_, item)| type_error(value, item, blobs)),
        (Kind::Map(..), View::List(_)) => Some(LIST_FOUND.into()),
        (Kind::Map(..), _) => Some("Expected map or null".into()),
        (Kind::Structure(members), View::Map) => members.iter().find_map(|m| {
            v.field(m.name)
                .and_then(|child| type_error(m.shape, child, blobs))
        }),
        (Kind::Structure(_), View::List(_)) => Some(LIST_FOUND.into()),
        (Kind::Structure(_), _) => Some("Expected null".into()),
        (_, View::List(_)) => Some(LIST_FOUND.into()),
        (_, View::Map) => Some(MAP_FOUND.into()),
        (Kind::Boolean, View::Bool(_)) => None,
        (Kind::Boolean, View::Str(s)) => Some(text(&s.to_uppercase())),
        (Kind::Integer | Kind::Long | Kind::Timestamp, View::Num(_)) => None,
        (
            Kind::Integer | Kind::Long | Kind::String | Kind::Blob | Kind::Timestamp,
            View::Bool(_),
        ) => Some(format!(
            "class java.lang.Boolean can not be converted to {scalar_name}"
        )),
        (Kind::Integer | Kind::Long | Kind::Timestamp, View::Str(_) | View::Bytes(_)) => Some(
            format!("class java.lang.String can not be converted to {scalar_name}"),
        ),
        (Kind::String, View::Str(_)) => None,
        (Kind::String | Kind::Blob | Kind::Boolean, View::Num(_)) => Some(format!(
            "{BIG_NUMBER} can not be converted to {scalar_name}"
        )),
        (Kind::String | Kind::Boolean, View::Bytes(b)) => Some(text(&String::from_utf8_lossy(b))),
        (Kind::Blob, View::Bytes(_)) => None,
        (Kind::Blob, View::Str(_)) if blobs == Blobs::Deferred => None,
        (Kind::Blob, View::Str(s)) => {
            base64_error(s).map(|reason| format!("{}: {reason}", text(s)))
        }
    }
}

/// Why a string is not AWS's base64 (standard alphabet, padded, canonical), or None.
fn base64_error(s: &str) -> Option<String> {
    let units = utf16_len(s);
    if units % 4 != 0 {
        return Some(format!(
            "Base64 encoded length is expected a multiple of 4 bytes but found: {units}"
        ));
    }
    let bytes = s.as_bytes();
    let pad = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    if !all_base64_alphabet(&bytes[..bytes.len() - pad]) {
        return Some(base64_character_error(s));
    }
    let last = bytes.len().checked_sub(pad + 1).and_then(|i| bytes.get(i));
    let canonical = match (pad, last) {
        (0, _) => true,
        (1, Some(&c)) => sextet(c) & 0b11 == 0,
        (2, Some(&c)) => sextet(c) & 0b1111 == 0,
        _ => false,
    };
    (!canonical).then(|| "Invalid last non-pad Base64 character dectected".to_string())
}

/// Whether every byte is of base64's alphabet (no padding): the hot path of every record's
/// Data, so written without an early exit per byte (the compiler vectorises it).
fn all_base64_alphabet(bytes: &[u8]) -> bool {
    bytes.chunks(64).all(|chunk| {
        chunk.iter().fold(true, |ok, &b| {
            ok & ((b.wrapping_sub(b'A') < 26)
                | (b.wrapping_sub(b'a') < 26)
                | (b.wrapping_sub(b'0') < 10)
                | (b == b'+')
                | (b == b'/'))
        })
    })
}

/// AWS's text for the first character that cannot be in base64 where it stands (a character
/// outside the alphabet, or padding followed by something else).
fn base64_character_error(s: &str) -> String {
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let bad = !(b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
            || (b == b'=' && bytes.get(i + 1).is_some_and(|&n| n != b'='));
        if bad {
            let c = s[i..].chars().next().unwrap_or('?');
            return format!("Invalid Base64 character: '{c}'");
        }
    }
    // Not reached: the caller found such a character.
    "Invalid Base64 character".to_string()
}

fn sextet(c: u8) -> u8 {
    match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    }
}

/// The decoded length of valid base64.
fn base64_len(s: &str) -> u64 {
    let pad = s.bytes().rev().take_while(|&b| b == b'=').count() as u64;
    (s.len() as u64 / 4 * 3).saturating_sub(pad)
}

/// A string's length as Java counts it (UTF-16 code units).
fn utf16_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.encode_utf16().count()
    }
}

// ---------------------------------------------------------------------------------------------
// Constraints
// ---------------------------------------------------------------------------------------------

/// Where a value is, rendered only for messages (`records.3.member.partitionKey`).
enum Path<'a> {
    Root,
    Field(&'a Path<'a>, &'a str),
    Item(&'a Path<'a>, usize),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Field(Path::Root, name) => f.write_str(name),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Item(parent, i) => write!(f, "{parent}.{}.member", i + 1),
        }
    }
}

#[derive(Default)]
struct Errors {
    list: Vec<String>,
    /// A number must be read as AWS reads it (floored, capped) before the typed decoding.
    truncate: bool,
}

impl Errors {
    fn full(&self) -> bool {
        self.list.len() >= MAX_ERRORS
    }

    fn push(
        &mut self,
        value: Option<String>,
        path: &Path<'_>,
        constraint: std::fmt::Arguments<'_>,
    ) {
        if self.full() {
            return;
        }
        let value = match value {
            Some(v) => format!("'{v}'"),
            None => "null".to_string(),
        };
        self.list.push(format!(
            "Value {value} at '{path}' failed to satisfy constraint: {constraint}"
        ));
    }
}

fn check_members<N: Node>(errors: &mut Errors, parent: &Path<'_>, members: &[Member], value: &N) {
    for m in members {
        if errors.full() {
            return;
        }
        let path = Path::Field(parent, m.field);
        check(errors, &path, m.required, m.shape, value.field(m.name));
    }
}

/// The number as AWS reads it into a member of `kind`, and whether that changed it.
fn effective(kind: &Kind, n: Num) -> (f64, bool) {
    let cap = |v: f64| match kind {
        Kind::Integer => v.min(f64::from(i32::MAX)),
        _ => v,
    };
    match n {
        Num::Int(i) => {
            let v = cap(i as f64);
            let changed = match kind {
                Kind::Integer => i > i128::from(i32::MAX),
                _ => i > i128::from(i64::MAX) || i < i128::from(i64::MIN),
            };
            if changed {
                (v, true)
            } else {
                // Exact (no float rounding) for the message.
                (i as f64, false)
            }
        }
        Num::Float(f) => (cap(f.floor()), true),
    }
}

/// A number as JavaScript / Java print it in these messages.
fn number_text(n: Num, effective: f64, changed: bool) -> String {
    match n {
        Num::Int(i) if !changed => i.to_string(),
        _ if effective.is_finite() && effective.abs() < 1e21 => format!("{effective:.0}"),
        _ => {
            let s = format!("{effective:e}");
            match s.split_once('e') {
                Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
                _ => s,
            }
        }
    }
}

fn check<N: Node>(
    errors: &mut Errors,
    path: &Path<'_>,
    required: bool,
    shape: &Shape,
    v: Option<&N>,
) {
    let Some(v) = v.filter(|v| !matches!(v.view(), View::Null)) else {
        if required {
            errors.push(None, path, format_args!("Member must not be null"));
        }
        return;
    };
    match (&shape.kind, v.view()) {
        (Kind::Integer | Kind::Long, View::Num(n)) => {
            let (value, changed) = effective(&shape.kind, n);
            if changed {
                errors.truncate = true;
            }
            if let Some(min) = shape.min {
                if value < min as f64 {
                    errors.push(
                        Some(number_text(n, value, changed)),
                        path,
                        format_args!("Member must have value greater than or equal to {min}"),
                    );
                }
            }
            if let Some(max) = shape.max {
                if value > max as f64 {
                    errors.push(
                        Some(number_text(n, value, changed)),
                        path,
                        format_args!("Member must have value less than or equal to {max}"),
                    );
                }
            }
        }
        (Kind::String, View::Str(s)) => check_string(errors, path, shape, s),
        (Kind::Blob, View::Str(_) | View::Bytes(_)) => {
            let len = match v.view() {
                View::Bytes(b) => b.len() as u64,
                View::Str(s) => base64_len(s),
                _ => 0,
            };
            let render = || {
                Some(format!(
                    "java.nio.HeapByteBuffer[pos=0 lim={len} cap={len}]"
                ))
            };
            check_len(errors, path, shape, len, render);
        }
        (Kind::List(member), View::List(items)) => {
            let render = || Some(render_list(member, items));
            check_len(errors, path, shape, items.len() as u64, render);
            if has_scalar_constraints(member)
                && items.iter().any(|i| match i.view() {
                    View::Str(s) => !string_ok(member, s),
                    _ => false,
                })
            {
                errors.push(
                    render(),
                    path,
                    format_args!(
                        "Member must satisfy constraint: [{}]",
                        constraint_list(member)
                    ),
                );
            }
            if let Kind::Structure(members) = member.kind {
                for (i, item) in items.iter().enumerate() {
                    if errors.full() {
                        return;
                    }
                    if !matches!(item.view(), View::Null) {
                        check_members(errors, &Path::Item(path, i), members, item);
                    }
                }
            }
        }
        (Kind::Map(key, value), View::Map) => {
            let entries = v.entries();
            let render = || Some(render_map(&entries));
            check_len(errors, path, shape, entries.len() as u64, render);
            if has_scalar_constraints(key) && entries.iter().any(|(k, _)| !string_ok(key, k)) {
                errors.push(
                    render(),
                    path,
                    format_args!(
                        "Map keys must satisfy constraint: [{}]",
                        constraint_list(key)
                    ),
                );
            }
            if has_scalar_constraints(value)
                && entries.iter().any(|(_, v)| match v.view() {
                    View::Str(s) => !string_ok(value, s),
                    _ => false,
                })
            {
                errors.push(
                    render(),
                    path,
                    format_args!(
                        "Map value must satisfy constraint: [{}]",
                        constraint_list(value)
                    ),
                );
            }
        }
        (Kind::Structure(members), View::Map) => check_members(errors, path, members, v),
        // Booleans, timestamps; a wrong type was reported before.
        _ => {}
    }
}

fn check_len(
    errors: &mut Errors,
    path: &Path<'_>,
    shape: &Shape,
    len: u64,
    render: impl Fn() -> Option<String>,
) {
    if let Some(min) = shape.min_len.filter(|&m| m > 0) {
        if len < min {
            errors.push(
                render(),
                path,
                format_args!("Member must have length greater than or equal to {min}"),
            );
        }
    }
    if let Some(max) = shape.max_len {
        if len > max {
            errors.push(
                render(),
                path,
                format_args!("Member must have length less than or equal to {max}"),
            );
        }
    }
}

fn check_string(errors: &mut Errors, path: &Path<'_>, shape: &Shape, s: &str) {
    if let Some(pattern) = shape.pattern {
        if !pattern_matches(pattern, s) {
            errors.push(
                Some(s.to_string()),
                path,
                format_args!("Member must satisfy regular expression pattern: {pattern}"),
            );
        }
    }
    check_len(errors, path, shape, utf16_len(s) as u64, || {
        Some(s.to_string())
    });
    if !shape.enum_values.is_empty() && !shape.enum_values.contains(&s) {
        errors.push(
            Some(s.to_string()),
            path,
            format_args!(
                "Member must satisfy enum value set: [{}]",
                shape.enum_values.join(", ")
            ),
        );
    }
}

/// Whether a string member of a list or map satisfies its shape.
fn string_ok(shape: &Shape, s: &str) -> bool {
    let len = utf16_len(s) as u64;
    shape.pattern.map_or(true, |p| pattern_matches(p, s))
        && shape.min_len.map_or(true, |m| len >= m)
        && shape.max_len.map_or(true, |m| len <= m)
        && (shape.enum_values.is_empty() || shape.enum_values.contains(&s))
}

fn has_scalar_constraints(shape: &Shape) -> bool {
    matches!(shape.kind, Kind::String)
        && (shape.pattern.is_some()
            || shape.min_len.is_some()
            || shape.max_len.is_some()
            || !shape.enum_values.is_empty())
}

/// The constraints of a list's or map's members, as AWS lists them (maximum length first).
fn constraint_list(shape: &Shape) -> String {
    let mut parts = Vec::new();
    if let Some(max) = shape.max_len {
        parts.push(format!(
            "Member must have length less than or equal to {max}"
        ));
    }
    if let Some(min) = shape.min_len {
        parts.push(format!(
            "Member must have length greater than or equal to {min}"
        ));
    }
    if let Some(p) = shape.pattern {
        parts.push(format!(
            "Member must satisfy regular expression pattern: {p}"
        ));
    }
    if !shape.enum_values.is_empty() {
        parts.push(format!(
            "Member must satisfy enum value set: [{}]",
            shape.enum_values.join(", ")
        ));
    }
    parts.join(", ")
}

fn render_list<N: Node>(member: &Shape, items: &[N]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        match member.member_str {
            Some(s) => out.push_str(s),
            None => out.push_str(&render_scalar(item)),
        }
    }
    out.push(']');
    out
}

fn render_map<N: Node>(entries: &[(&str, &N)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{k}={}", render_scalar(*v));
    }
    out.push('}');
    out
}

fn render_scalar<N: Node>(v: &N) -> String {
    match v.view() {
        View::Null => "null".into(),
        View::Bool(b) => b.to_string(),
        View::Num(Num::Int(i)) => i.to_string(),
        View::Num(Num::Float(f)) => f.to_string(),
        View::Str(s) => s.to_string(),
        View::Bytes(b) => format!("java.nio.HeapByteBuffer[pos=0 lim={0} cap={0}]", b.len()),
        View::List(_) | View::Map => "{...}".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Patterns
// ---------------------------------------------------------------------------------------------

/// Whether the whole string matches one of the model's patterns (Java `matches`). The common
/// ones are checked by hand; the others (ARNs) by a cached regex.
fn pattern_matches(pattern: &'static str, s: &str) -> bool {
    match pattern {
        "[a-zA-Z0-9_.-]+" => {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        }
        "0|([1-9]\\d{0,38})" => decimal(s, 39),
        "0|([1-9]\\d{0,128})" => decimal(s, 129),
        _ => regex_for(pattern).map_or(true, |re| re.is_match(s)),
    }
}

/// `0` or up to `digits` decimal digits without a leading zero.
fn decimal(s: &str, digits: usize) -> bool {
    let b = s.as_bytes();
    s == "0"
        || (!b.is_empty() && b.len() <= digits && b[0] != b'0' && b.iter().all(u8::is_ascii_digit))
}

fn regex_for(pattern: &'static str) -> Option<regex::Regex> {
    static CACHE: OnceLock<RwLock<HashMap<&'static str, Option<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(re) = cache.read().ok().and_then(|c| c.get(pattern).cloned()) {
        return re;
    }
    // Java's \d is ASCII only.
    let re = regex::Regex::new(&format!("^(?:{})$", pattern.replace("\\d", "[0-9]")))
        .map_err(|e| tracing::warn!(pattern, error = %e, "cannot compile a model pattern"))
        .ok();
    if let Ok(mut c) = cache.write() {
        c.insert(pattern, re.clone());
    }
    re
}

// ---------------------------------------------------------------------------------------------
// Truncation
// ---------------------------------------------------------------------------------------------

/// Replaces every number of an integer member by the value AWS reads (see [`effective`]).
fn truncate_numbers<N: Node>(members: &[Member], value: &mut N) {
    for m in members {
        if let Some(v) = value.field_mut(m.name) {
            truncate_value(m.shape, v);
        }
    }
}

fn truncate_value<N: Node>(shape: &Shape, v: &mut N) {
    match &shape.kind {
        Kind::Integer | Kind::Long => {
            if let View::Num(n) = v.view() {
                let (value, changed) = effective(&shape.kind, n);
                if changed {
                    // Saturating: out-of-range floats become i64::MIN / MAX.
                    v.set_int(value as i64);
                }
            }
        }
        Kind::List(member) => {
            if let Some(items) = v.items_mut() {
                for item in items {
                    truncate_value(member, item);
                }
            }
        }
        Kind::Structure(members) => truncate_numbers(members, v),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
