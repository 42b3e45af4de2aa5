//! A JSON request body parsed for validation without copying it: strings borrow from the body
//! (unless they hold escapes), a map keeps its entries in a vector. It reads numbers, duplicate
//! keys and key order exactly as `serde_json::Value` does, so the checks see what they saw on a
//! `Value`, and it is itself a serde `Deserializer` answering as a `Value` does, so the typed
//! request is read from the checked tree: a valid PutRecords is tokenised once and costs a few
//! small allocations per record, not a copy of every record's data.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{
    self, Deserialize, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};

use super::{Node, Num, View};

/// One JSON value borrowing from the body it was parsed from.
#[derive(Debug)]
pub enum Json<'a> {
    /// null.
    Null,
    /// true / false.
    Bool(bool),
    /// A number, read as `serde_json` reads it (i64, else u64, else f64).
    Num(Num),
    /// A string.
    Str(Cow<'a, str>),
    /// An array.
    List(Vec<Json<'a>>),
    /// An object's entries in the body's order, duplicates included (the last one counts).
    Map(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// Parses a body; the same errors as `serde_json::from_slice`.
    pub fn parse(body: &'a [u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(body)
    }

    /// The value as a `serde_json::Value` (duplicate keys: the last one wins, as there).
    #[cfg(test)]
    pub fn into_value(self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(b),
            Json::Num(Num::Int(i)) => match (i64::try_from(i), u64::try_from(i)) {
                (Ok(i), _) => Value::from(i),
                (_, Ok(u)) => Value::from(u),
                _ => Value::from(i as f64),
            },
            Json::Num(Num::Float(f)) => serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Json::Str(s) => Value::String(s.into_owned()),
            Json::List(items) => Value::Array(items.into_iter().map(Json::into_value).collect()),
            Json::Map(entries) => Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.into_owned(), v.into_value()))
                    .collect(),
            ),
        }
    }
}

/// Reads the typed request from the tree as `serde_json::from_value` reads it from a `Value`
/// (numbers as u64 / i64 / f64, a repeated key: the last one counts).
impl<'de> Deserializer<'de> for Json<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Json::Null => visitor.visit_unit(),
            Json::Bool(b) => visitor.visit_bool(b),
            Json::Num(Num::Int(i)) => match (u64::try_from(i), i64::try_from(i)) {
                (Ok(u), _) => visitor.visit_u64(u),
                (_, Ok(i)) => visitor.visit_i64(i),
                _ => visitor.visit_f64(i as f64),
            },
            Json::Num(Num::Float(f)) => visitor.visit_f64(f),
            Json::Str(Cow::Borrowed(s)) => visitor.visit_borrowed_str(s),
            Json::Str(Cow::Owned(s)) => visitor.visit_string(s),
            Json::List(items) => {
                let mut seq = SeqDeserializer::new(items.into_iter());
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Json::Map(entries) => {
                let mut map = MapDeserializer::new(last_of_each_key(entries));
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self {
            Json::Null => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de> IntoDeserializer<'de, serde_json::Error> for Json<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

/// A map's entries with only the last of each repeated key, in the body's order otherwise
/// (without a copy of the entries when no key repeats, the usual case).
fn last_of_each_key<'a>(
    entries: Vec<(Cow<'a, str>, Json<'a>)>,
) -> impl Iterator<Item = (Json<'a>, Json<'a>)> {
    let n = entries.len();
    // Requests have a few members; a map of many (tags) is checked through a set.
    let keep: Option<Vec<bool>> = if n <= 32 {
        let repeats = |i: usize| {
            entries[i + 1..]
                .iter()
                .any(|(later, _)| *later == entries[i].0)
        };
        (0..n)
            .any(repeats)
            .then(|| (0..n).map(|i| !repeats(i)).collect())
    } else {
        let mut seen = std::collections::HashSet::with_capacity(n);
        let mut keep: Vec<bool> = entries
            .iter()
            .rev()
            .map(|(k, _)| seen.insert(k.as_ref()))
            .collect();
        keep.reverse();
        keep.contains(&false).then_some(keep)
    };
    entries
        .into_iter()
        .enumerate()
        .filter(move |(i, _)| {
            keep.as_ref()
                .map_or(true, |keep| keep.get(*i) == Some(&true))
        })
        .map(|(_, (k, v))| (Json::Str(k), v))
}

impl Node for Json<'_> {
    fn view(&self) -> View<'_, Self> {
        match self {
            Json::Null => View::Null,
            Json::Bool(b) => View::Bool(*b),
            Json::Num(n) => View::Num(*n),
            Json::Str(s) => View::Str(s),
            Json::List(items) => View::List(items),
            Json::Map(_) => View::Map,
        }
    }

    fn field(&self, name: &str) -> Option<&Self> {
        match self {
            Json::Map(entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v),
            _ => None,
        }
    }

    fn entries(&self) -> Vec<(&str, &Self)> {
        let Json::Map(entries) = self else {
            return Vec::new();
        };
        // As a `serde_json::Map` holds them: sorted by key, the last of duplicates.
        let mut out: Vec<(&str, &Self)> = Vec::with_capacity(entries.len());
        for (k, v) in entries.iter().rev() {
            if !out.iter().any(|(seen, _)| *seen == k.as_ref()) {
                out.push((k, v));
            }
        }
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }

    fn field_mut(&mut self, name: &str) -> Option<&mut Self> {
        match self {
            Json::Map(entries) => entries
                .iter_mut()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v),
            _ => None,
        }
    }

    fn items_mut(&mut self) -> Option<&mut [Self]> {
        match self {
            Json::List(items) => Some(items),
            _ => None,
        }
    }

    fn set_int(&mut self, v: i64) {
        *self = Json::Num(Num::Int(i128::from(v)));
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Json::deserialize(d)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Self::Value, E> {
        Ok(Json::Num(Num::Int(i128::from(i))))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Self::Value, E> {
        Ok(Json::Num(Num::Int(i128::from(u))))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Self::Value, E> {
        Ok(Json::Num(Num::Float(f)))
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Borrowed(s)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Json::Map(entries))
    }
}

/// Reads an object key, borrowing it where the body allows.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree reads every body as `serde_json::Value` does.
    #[test]
    fn reads_bodies_as_serde_json_value_does() {
        let bodies: &[&str] = &[
            r#"{"A":1,"B":-2,"C":18446744073709551615,"D":1e400,"E":2.5,"F":100000000000000000000}"#,
            r#"{"S":"plain","T":"esc\"aped\u00e9","L":[1,"x",null,true,{"k":[]}]}"#,
            r#"{"Dup":1,"Dup":"two","Tags":{"b":"1","a":"2","b":"3"}}"#,
            r#"{}"#,
            r#"[1,2]"#,
            r#""s""#,
        ];
        for body in bodies {
            let tree = Json::parse(body.as_bytes());
            let value: Result<serde_json::Value, _> = serde_json::from_slice(body.as_bytes());
            match (tree, value) {
                (Ok(t), Ok(v)) => assert_eq!(t.into_value(), v, "{body}"),
                (Err(_), Err(_)) => {}
                (t, v) => panic!("{body}: tree {t:?}, value {v:?}"),
            }
        }
    }

    /// Typed requests read from the tree are what `serde_json::from_value` reads.
    #[test]
    fn typed_requests_read_from_the_tree_as_from_a_value() {
        use crate::kinesis::model::{GetRecordsInput, PutRecordsInput};
        let put = r#"{"StreamName":"s","Records":[{"Data":"AAEC","PartitionKey":"k\u00e9",
            "ExplicitHashKey":"7"},{"Data":"","PartitionKey":"p","Extra":[1,{"x":null}]}],
            "StreamName":"t"}"#;
        let from_tree: PutRecordsInput =
            PutRecordsInput::deserialize(Json::parse(put.as_bytes()).expect("JSON"))
                .expect("typed");
        let from_value: PutRecordsInput = serde_json::from_str(
            &serde_json::from_str::<serde_json::Value>(put)
                .expect("JSON")
                .to_string(),
        )
        .expect("typed");
        assert_eq!(format!("{from_tree:?}"), format!("{from_value:?}"));
        for get in [
            r#"{"ShardIterator":"x","Limit":5}"#,
            r#"{"ShardIterator":"x","Limit":null}"#,
            r#"{"ShardIterator":"x","Limit":-1}"#,
            r#"{"ShardIterator":"x","Limit":"5"}"#,
            r#"{"ShardIterator":7}"#,
            r#"{"Limit":2.5,"ShardIterator":"x"}"#,
        ] {
            let from_tree =
                GetRecordsInput::deserialize(Json::parse(get.as_bytes()).expect("JSON"))
                    .map(|t| format!("{t:?}"))
                    .map_err(|e| e.to_string());
            let from_value =
                serde_json::from_value::<GetRecordsInput>(serde_json::from_str(get).expect("JSON"))
                    .map(|t| format!("{t:?}"))
                    .map_err(|e| e.to_string());
            assert_eq!(from_tree, from_value, "{get}");
        }
    }

    #[test]
    fn strings_without_escapes_borrow_the_body() {
        let body = br#"{"Data":"AAAA","Key":"a\nb"}"#;
        let tree = Json::parse(body).expect("valid JSON");
        assert!(matches!(
            tree.field("Data"),
            Some(Json::Str(Cow::Borrowed("AAAA")))
        ));
        assert!(matches!(tree.field("Key"), Some(Json::Str(Cow::Owned(_)))));
    }

    #[test]
    fn entries_are_sorted_and_the_last_duplicate_counts() {
        let tree = Json::parse(br#"{"b":1,"a":2,"b":3}"#).expect("valid JSON");
        let entries: Vec<(&str, String)> = tree
            .entries()
            .into_iter()
            .map(|(k, v)| (k, format!("{:?}", v.view_num())))
            .collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0, "a");
        assert_eq!(entries[1].0, "b");
        assert!(entries[1].1.contains('3'));
        assert!(matches!(tree.field("b"), Some(Json::Num(Num::Int(3)))));
    }

    impl Json<'_> {
        fn view_num(&self) -> Option<Num> {
            match self {
                Json::Num(n) => Some(*n),
                _ => None,
            }
        }
    }
}
