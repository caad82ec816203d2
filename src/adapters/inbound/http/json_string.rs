//! A string field of a request body that accepts only a JSON string. poem-openapi's `String`
//! takes a number or a boolean as its text, so `{"password": 12345678}` would pass as
//! `"12345678"`; the contract says 400. The schema stays `type: string` with the field's
//! validators, which apply to the inner `String`.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

use crate::domain::{LOGIN_EMAIL_PATTERN, NEW_EMAIL_PATTERN};

/// The JSON name of a field, for an error that names it without echoing the value; `SECRET`
/// keeps the value out of `Debug`.
pub trait FieldName: Send + Sync + 'static {
    const NAME: &'static str;
    const SECRET: bool = false;
    /// The shape the schema states. Not checked here: the domain type the edge parses into
    /// checks the same rule (a test holds the two equal), and poem-openapi's `pattern`
    /// validator would compile its regex again on every request.
    const PATTERN: Option<&'static str> = None;
}

/// The fields every request body uses.
pub enum LoginEmailField {}
pub enum NewEmailField {}
pub enum PasswordField {}

impl FieldName for LoginEmailField {
    const NAME: &'static str = "email";
    const PATTERN: Option<&'static str> = Some(LOGIN_EMAIL_PATTERN);
}

impl FieldName for NewEmailField {
    const NAME: &'static str = "email";
    const PATTERN: Option<&'static str> = Some(NEW_EMAIL_PATTERN);
}

impl FieldName for PasswordField {
    const NAME: &'static str = "password";
    const SECRET: bool = true;
}

/// A strictly typed JSON string field named by `F`.
pub struct JsonString<F: FieldName>(String, PhantomData<F>);

impl<F: FieldName> JsonString<F> {
    pub fn into_inner(self) -> String {
        self.0
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<F: FieldName> From<&str> for JsonString<F> {
    fn from(s: &str) -> Self {
        Self(s.to_owned(), PhantomData)
    }
}

impl<F: FieldName> fmt::Debug for JsonString<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if F::SECRET {
            f.write_str("<redacted>")
        } else {
            fmt::Debug::fmt(&self.0, f)
        }
    }
}

/// The message `errors::validation_message` turns into "`<field>` must be a string".
pub const NOT_A_STRING: &str = "must be a string";

impl<F: FieldName> Type for JsonString<F> {
    const IS_REQUIRED: bool = true;

    type RawValueType = String;

    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new("string");
        schema.pattern = F::PATTERN.map(str::to_owned);
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.0))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<F: FieldName> ParseFromJSON for JsonString<F> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(s)) => Ok(Self(s, PhantomData)),
            // A missing field answers as it always has (poem's own message).
            None => Err(ParseError::expected_type(Value::Null)),
            Some(_) => Err(ParseError::custom(format!(
                "field `{}` {NOT_A_STRING}",
                F::NAME
            ))),
        }
    }
}

impl<F: FieldName> ToJSON for JsonString<F> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_a_json_string_parses_and_the_error_names_the_field_not_the_value() {
        let ok = JsonString::<LoginEmailField>::parse_from_json(Some(json!("a@b.c"))).unwrap();
        assert_eq!(ok.as_str(), "a@b.c");
        for wrong in [
            json!(41_999),
            json!(true),
            Value::Null,
            json!([]),
            json!({}),
        ] {
            let err = JsonString::<PasswordField>::parse_from_json(Some(wrong.clone()))
                .map(|_| ())
                .unwrap_err()
                .into_message();
            assert!(err.contains("field `password` must be a string"), "{err}");
            assert!(!err.contains("41999"), "{err}");
        }
    }

    #[test]
    fn secret_fields_are_redacted_in_debug() {
        let password = JsonString::<PasswordField>::from("hunter2-canary");
        assert_eq!(format!("{password:?}"), "<redacted>");
        let email = JsonString::<LoginEmailField>::from("a@b.c");
        assert_eq!(format!("{email:?}"), r#""a@b.c""#);
    }
}
