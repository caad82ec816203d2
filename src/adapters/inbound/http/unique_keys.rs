//! JSON bodies whose objects repeat a key are refused: serde keeps the last value, while a
//! proxy, a WAF or a log reader may take the first, so `{"email": "a", "email": "b"}` would
//! mean one account to them and another to us. serde_json has no switch for this; a visitor
//! that walks the document once (bounded by the body limit and serde_json's depth limit)
//! does it.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

const DUPLICATE: &str = "duplicate key";

/// Whether `body` is JSON with a repeated key in some object. Malformed JSON is `false`: the
/// operation's own parsing answers it as before.
pub fn has_duplicate_keys(body: &[u8]) -> bool {
    match serde_json::from_slice::<Walk>(body) {
        Ok(Walk) => false,
        Err(e) => e.is_data() && e.to_string().starts_with(DUPLICATE),
    }
}

/// A JSON value, walked and dropped.
struct Walk;

impl<'de> Deserialize<'de> for Walk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(WalkVisitor)
    }
}

struct WalkVisitor;

impl<'de> Visitor<'de> for WalkVisitor {
    type Value = Walk;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_str<E>(self, _: &str) -> Result<Walk, E> {
        Ok(Walk)
    }
    fn visit_unit<E>(self) -> Result<Walk, E> {
        Ok(Walk)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Walk, A::Error> {
        while seq.next_element::<Walk>()?.is_some() {}
        Ok(Walk)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Walk, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(de::Error::custom(DUPLICATE));
            }
            map.next_value::<Walk>()?;
        }
        Ok(Walk)
    }
}

#[cfg(test)]
mod tests {
    use super::has_duplicate_keys;

    #[test]
    fn a_repeated_key_at_any_depth_is_found() {
        assert!(has_duplicate_keys(br#"{"email":"a","email":"b"}"#));
        assert!(has_duplicate_keys(br#"{"x":[{"k":1,"k":2}]}"#));
        // The same key after JSON escapes is the same key.
        assert!(has_duplicate_keys(br#"{"email":"a","\u0065mail":"b"}"#));
    }

    #[test]
    fn distinct_keys_and_malformed_bodies_are_left_alone() {
        assert!(!has_duplicate_keys(br#"{"email":"a","password":"b"}"#));
        assert!(!has_duplicate_keys(br#"[{"k":1},{"k":2}]"#));
        assert!(!has_duplicate_keys(br#"{"email":"#));
        assert!(!has_duplicate_keys(b"not json"));
    }
}
