//! Mistyped JSON is refused, never coerced: a number, boolean, null, array or object where a
//! string is expected is 400 `invalid_request` naming the field, before any store or hashing.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, DEMO_EMAIL, DEMO_PASSWORD};

/// A path, its name and its fields with valid values.
type Body = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// Every string field of every request body, with a valid value for the others.
const BODIES: [Body; 2] = [
    (
        "/auth/login",
        "login",
        &[("email", DEMO_EMAIL), ("password", DEMO_PASSWORD)],
    ),
    (
        "/auth/register",
        "register",
        &[("email", "new.user@example.com"), ("password", "12345678")],
    ),
];

fn mistyped() -> [Value; 6] {
    [
        json!(12_345_678),
        json!(1.5),
        json!(true),
        Value::Null,
        json!(["12345678"]),
        json!({ "value": "12345678" }),
    ]
}

#[tokio::test]
async fn every_string_field_refuses_every_other_json_type() {
    let app = spawn_app().await;
    // With the stores down, any store call would answer 503: a 400 shows none was made.
    app.users.set_down(true);
    app.sessions.set_down(true);
    let before = app.hasher.calls();
    for (path, what, fields) in BODIES {
        for (field, _) in fields {
            for wrong in mistyped() {
                let mut body = serde_json::Map::new();
                for (name, value) in fields {
                    body.insert((*name).to_owned(), json!(value));
                }
                body.insert((*field).to_owned(), wrong.clone());
                let resp = app.post(path).json(&Value::Object(body)).send().await;
                resp.assert_error(400, "invalid_request");
                assert_eq!(
                    resp.json()["message"],
                    format!("{field} must be a string"),
                    "{what}.{field} = {wrong}"
                );
                assert!(
                    !resp.body.contains("12345678") && !resp.body.contains("1.5"),
                    "the value is never echoed: {}",
                    resp.body
                );
            }
        }
    }
    assert_eq!(
        app.hasher.calls(),
        before,
        "no password was hashed or verified"
    );
}

#[tokio::test]
async fn a_missing_field_answers_as_before_and_strings_still_work() {
    let app = spawn_app().await;
    let resp = app
        .post("/auth/login")
        .json(&json!({ "email": DEMO_EMAIL }))
        .send()
        .await;
    resp.assert_error(400, "invalid_request");
    assert_eq!(
        resp.json()["message"],
        "The request is malformed: check the JSON body and its fields."
    );
    assert_eq!(app.login(DEMO_EMAIL, DEMO_PASSWORD).await.status, 200);
    assert_eq!(
        app.register("typed@example.com", "12345678").await.status,
        201,
        "the password as a string is accepted"
    );
}
