//! The OpenAPI document as served: generated from the handlers by utoipa,
//! then made to describe every answer the server really gives.
//!
//! Two things utoipa alone gets wrong for dialerd: a response built of
//! parts (`#[serde(flatten)]`, an `allOf` of schemas that each say
//! `additionalProperties: false`) validates no real response, so every
//! `allOf` is merged into one object schema; and the refusals that come
//! from the layers around the handlers (token, scope, URI, body size and
//! type, time-out, faults) are answered on every route, so every
//! operation lists them.

use serde_json::{json, Map, Value};

/// Answers every token-authenticated operation may give besides its own.
const AUTHENTICATED: [(&str, &str); 2] = [
    ("401", "Missing or invalid bearer token."),
    ("403", "The token lacks the scope for this call."),
];
/// Answers of every operation: an unreadable URI, a NUL in it, a fault, a time-out.
const EVERY: [(&str, &str); 4] = [
    ("400", "A path or query that is not UTF-8, or a state that refuses the call."),
    ("422", "A path, query or body that fails validation (a NUL character included)."),
    ("500", "A fault of the server."),
    ("503", "The request took longer than http.request_timeout_seconds, or the database is unreachable."),
];
/// Answers of every operation that reads a body.
const WITH_BODY: [(&str, &str); 2] = [
    ("413", "The body is larger than http.max_body_bytes."),
    ("415", "The body is not sent as application/json."),
];

/// The served document: `generated` with its `allOf`s merged and every
/// operation's refusals listed.
pub fn served(generated: &utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(generated).expect("the OpenAPI document serializes");
    let schemas = doc["components"]["schemas"].clone();
    merge_all_of(&mut doc, &schemas);
    if let Some(paths) = doc["paths"].as_object_mut() {
        for operations in paths.values_mut().filter_map(Value::as_object_mut) {
            for operation in operations.values_mut() {
                add_refusals(operation);
            }
        }
    }
    doc
}

fn add_refusals(operation: &mut Value) {
    let authenticated = operation.get("security") != Some(&json!([{}]));
    let has_body = operation.get("requestBody").is_some();
    let Some(responses) = operation["responses"].as_object_mut() else {
        return;
    };
    let mut add = |(status, description): &(&str, &str)| {
        responses.entry(status.to_string()).or_insert_with(|| {
            json!({
                "description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
            })
        });
    };
    EVERY.iter().for_each(&mut add);
    if authenticated {
        AUTHENTICATED.iter().for_each(&mut add);
    }
    if has_body {
        WITH_BODY.iter().for_each(&mut add);
    }
}

/// Replaces every `allOf` (anywhere in `value`) by one object schema with
/// the properties and required fields of all its parts, closed to others
/// when any part was.
fn merge_all_of(value: &mut Value, schemas: &Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(parts)) = map.remove("allOf") {
                let merged = merged(&parts, schemas);
                for (k, v) in merged {
                    map.entry(k).or_insert(v);
                }
            }
            map.values_mut().for_each(|v| merge_all_of(v, schemas));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| merge_all_of(v, schemas)),
        _ => {}
    }
}

fn merged(parts: &[Value], schemas: &Value) -> Map<String, Value> {
    let mut properties = Map::new();
    let mut required: Vec<Value> = Vec::new();
    let mut closed = false;
    for part in parts {
        let mut part = resolved(part, schemas);
        merge_all_of(&mut part, schemas);
        if let Some(p) = part["properties"].as_object() {
            properties.extend(p.clone());
        }
        if let Some(r) = part["required"].as_array() {
            required.extend(r.iter().cloned());
        }
        closed |= part["additionalProperties"] == json!(false);
    }
    let mut out = Map::new();
    out.insert("type".into(), json!("object"));
    out.insert("properties".into(), Value::Object(properties));
    out.insert("required".into(), Value::Array(required));
    if closed {
        out.insert("additionalProperties".into(), json!(false));
    }
    out
}

/// A `$ref` to a component schema, followed; anything else as it is.
fn resolved(part: &Value, schemas: &Value) -> Value {
    match part["$ref"].as_str() {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            resolved(&schemas[name], schemas)
        }
        None => part.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_all_of_of_closed_parts_becomes_one_closed_object() {
        let schemas = json!({
            "A": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": false}
        });
        let mut doc = json!({"x": {"allOf": [
            {"$ref": "#/components/schemas/A"},
            {"type": "object", "properties": {"b": {"type": "integer"}}, "required": ["b"]}
        ], "description": "kept"}});
        merge_all_of(&mut doc, &schemas);
        assert_eq!(
            doc,
            json!({"x": {"type": "object", "description": "kept",
                "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
                "required": ["a", "b"], "additionalProperties": false}})
        );
    }
}
