//! Tool schemas every official MCP SDK accepts (spec §3, client compatibility). schemars writes
//! valid JSON Schema that the TypeScript SDK (the MCP Inspector, Claude Code) and the Python SDK
//! still reject or misread: a bare `true` as a property's schema, Rust-only `format`s such as
//! `uint64`, and optional inputs typed `["array", "null"]` that argument builders turn into
//! strings. Every tool's input and output schema passes through `conform` once, when the server
//! is built.

use rmcp::model::{JsonObject, Tool};
use serde_json::{Map, Value};
use std::sync::Arc;

/// The `format`s of JSON Schema 2020-12; any other is dropped (its bounds stay as `minimum`).
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Which side of a tool a schema describes: inputs lose `null` from optional properties (an
/// omitted property already says "none"); outputs keep it where a value may really be null.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Input,
    Output,
}

/// Makes a tool's schemas acceptable to every official SDK.
pub fn conform_tool(tool: &mut Tool) {
    tool.input_schema = conform_object(&tool.input_schema, Side::Input);
    if let Some(out) = &tool.output_schema {
        tool.output_schema = Some(conform_object(out, Side::Output));
    }
}

fn conform_object(schema: &Arc<JsonObject>, side: Side) -> Arc<JsonObject> {
    let mut value = Value::Object(schema.as_ref().clone());
    conform(&mut value, side);
    match value {
        Value::Object(o) => Arc::new(o),
        _ => schema.clone(),
    }
}

/// Rewrites one schema (and every schema inside it) in place.
pub fn conform(schema: &mut Value, side: Side) {
    let Value::Object(obj) = schema else {
        return;
    };
    if let Some(Value::String(f)) = obj.get("format")
        && !STANDARD_FORMATS.contains(&f.as_str())
    {
        obj.remove("format");
    }
    if side == Side::Input {
        drop_null(obj);
    }
    for key in ["properties", "$defs", "definitions", "patternProperties"] {
        if let Some(Value::Object(props)) = obj.get_mut(key) {
            for (_, sub) in props.iter_mut() {
                if sub.is_boolean() {
                    // `true` (anything) and `false` (nothing) as objects, which every SDK reads.
                    *sub = if sub.as_bool() == Some(true) {
                        Value::Object(Map::new())
                    } else {
                        serde_json::json!({"not": {}})
                    };
                }
                conform(sub, side);
            }
        }
    }
    for key in ["items", "additionalProperties", "not", "contains"] {
        if let Some(sub) = obj.get_mut(key)
            && sub.is_object()
        {
            conform(sub, side);
        }
    }
    for key in ["anyOf", "oneOf", "allOf", "prefixItems"] {
        if let Some(Value::Array(subs)) = obj.get_mut(key) {
            subs.iter_mut().for_each(|s| conform(s, side));
        }
    }
}

/// `"type": ["array", "null"]` → `"type": "array"`; `anyOf: [X, {"type": "null"}]` → X.
fn drop_null(obj: &mut Map<String, Value>) {
    if let Some(Value::Array(types)) = obj.get("type") {
        let kept: Vec<Value> = types
            .iter()
            .filter(|t| t.as_str() != Some("null"))
            .cloned()
            .collect();
        let replaced = match kept.as_slice() {
            [one] => one.clone(),
            _ => Value::Array(kept),
        };
        obj.insert("type".into(), replaced);
    }
    for key in ["anyOf", "oneOf"] {
        let Some(Value::Array(subs)) = obj.get(key) else {
            continue;
        };
        let kept: Vec<Value> = subs
            .iter()
            .filter(|s| s.get("type").and_then(Value::as_str) != Some("null"))
            .cloned()
            .collect();
        if kept.len() == subs.len() {
            continue;
        }
        obj.remove(key);
        match kept.as_slice() {
            [Value::Object(one)] => {
                for (k, v) in one {
                    obj.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            _ => {
                obj.insert(key.into(), Value::Array(kept));
            }
        }
    }
    if obj.get("default") == Some(&Value::Null) {
        obj.remove("default");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schemas_are_made_acceptable_to_every_sdk() {
        let mut s = json!({
            "type": "object",
            "properties": {
                "analysis": true,
                "steps": {"type": ["array", "null"], "items": {"$ref": "#/$defs/Step"}},
                "count": {"type": "integer", "format": "uint64", "minimum": 0},
                "when": {"type": "string", "format": "date-time"},
                "urgency": {"anyOf": [{"$ref": "#/$defs/Urgency"}, {"type": "null"}], "description": "d"}
            },
            "$defs": {"Step": {"type": "object", "properties": {"n": {"type": "integer", "format": "uint32"}}}}
        });
        conform(&mut s, Side::Input);
        assert_eq!(s["properties"]["analysis"], json!({}));
        assert_eq!(s["properties"]["steps"]["type"], "array");
        assert!(s["properties"]["count"].get("format").is_none());
        assert_eq!(s["properties"]["when"]["format"], "date-time");
        assert_eq!(
            s["properties"]["urgency"],
            json!({"$ref": "#/$defs/Urgency", "description": "d"})
        );
        assert!(
            s["$defs"]["Step"]["properties"]["n"]
                .get("format")
                .is_none()
        );
    }

    #[test]
    fn outputs_keep_their_nulls() {
        let mut s = json!({"type": "object", "properties": {"rows": {"type": ["integer", "null"], "format": "uint64"}}});
        conform(&mut s, Side::Output);
        assert_eq!(s["properties"]["rows"]["type"], json!(["integer", "null"]));
        assert!(s["properties"]["rows"].get("format").is_none());
    }
}
