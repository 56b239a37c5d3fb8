//! The JSON Schema layer over the `jsonschema` crate: violations name the field by its JSON
//! pointer and say the problem without echoing the value; the shipped schemas use only
//! draft 2020-12 keywords (a misspelt keyword would be ignored by any validator, silently
//! dropping a check).

use ccbft_dora::health::HEALTH_EVENT_SCHEMA;
use ccbft_dora::report::REPORT_SCHEMA;
use ccbft_dora::schema::{validate, Schema};
use serde_json::{json, Value};

/// Keywords of the draft 2020-12 vocabularies (core, applicator, unevaluated, validation,
/// format-annotation, content, meta-data).
const KEYWORDS_2020_12: [&str; 54] = [
    "$schema",
    "$id",
    "$ref",
    "$anchor",
    "$dynamicRef",
    "$dynamicAnchor",
    "$vocabulary",
    "$comment",
    "$defs",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "dependentSchemas",
    "prefixItems",
    "items",
    "contains",
    "properties",
    "patternProperties",
    "additionalProperties",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "type",
    "const",
    "enum",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxContains",
    "minContains",
    "maxProperties",
    "minProperties",
    "required",
    "dependentRequired",
    "format",
    "contentEncoding",
    "contentMediaType",
    "contentSchema",
    "title",
    "description",
    "default",
    "examples",
];

/// Keywords whose value is a map of names to subschemas, or a list of subschemas.
const SCHEMA_MAPS: [&str; 4] = [
    "properties",
    "patternProperties",
    "$defs",
    "dependentSchemas",
];
const SCHEMA_LISTS: [&str; 4] = ["allOf", "anyOf", "oneOf", "prefixItems"];

/// Every keyword used at a schema position of `schema`, with its path.
fn keywords(schema: &Value, at: &str, out: &mut Vec<String>) {
    let Value::Object(map) = schema else { return };
    for (key, value) in map {
        let here = format!("{at}/{key}");
        if !KEYWORDS_2020_12.contains(&key.as_str()) {
            out.push(here.clone());
        }
        if SCHEMA_MAPS.contains(&key.as_str()) {
            for (name, sub) in value.as_object().into_iter().flatten() {
                keywords(sub, &format!("{here}/{name}"), out);
            }
        } else if SCHEMA_LISTS.contains(&key.as_str()) {
            for (i, sub) in value.as_array().into_iter().flatten().enumerate() {
                keywords(sub, &format!("{here}/{i}"), out);
            }
        } else if !matches!(
            key.as_str(),
            "const" | "enum" | "default" | "examples" | "required"
        ) {
            keywords(value, &here, out);
        }
    }
}

#[test]
fn shipped_schemas_compile_and_use_only_standard_keywords() {
    for text in [HEALTH_EVENT_SCHEMA, REPORT_SCHEMA] {
        let schema: Value = serde_json::from_str(text).unwrap();
        Schema::compile(&schema).unwrap();
        let mut unknown = Vec::new();
        keywords(&schema, "", &mut unknown);
        assert!(unknown.is_empty(), "not 2020-12 keywords: {unknown:?}");
    }
    // The walk itself finds a misspelt keyword, nested.
    let mut found = Vec::new();
    keywords(
        &json!({"properties": {"a": {"items": {"maxLenght": 3}}}}),
        "",
        &mut found,
    );
    assert_eq!(found, ["/properties/a/items/maxLenght"]);
}

fn health_schema() -> Value {
    serde_json::from_str(HEALTH_EVENT_SCHEMA).unwrap()
}

fn event() -> Value {
    json!({"schema": "ccbft.health-event/v1", "event_id": "r3:1", "at": "2026-03-03T08:00:00Z",
           "kind": "replica_down", "severity": "critical"})
}

/// (what, change to a valid event, pointer named, keyword, words of the message)
type Case = (
    &'static str,
    fn(&mut Value),
    &'static str,
    &'static str,
    &'static str,
);

#[test]
fn violations_name_the_field_by_pointer_and_the_problem() {
    let cases: Vec<Case> = vec![
        (
            "missing field",
            |e| {
                e.as_object_mut().unwrap().remove("at");
            },
            "/at",
            "required",
            "mandatory field is missing",
        ),
        (
            "unknown field",
            |e| e["colour"] = json!("red"),
            "/colour",
            "additionalProperties",
            "not allowed",
        ),
        (
            "wrong type",
            |e| e["replica"] = json!("three"),
            "/replica",
            "type",
            "must be of type integer",
        ),
        (
            "not in the list",
            |e| e["kind"] = json!("meteor"),
            "/kind",
            "enum",
            "must be one of \"view_change_storm\"",
        ),
        (
            "wrong constant",
            |e| e["schema"] = json!("v2"),
            "/schema",
            "const",
            "must be \"ccbft.health-event/v1\"",
        ),
        (
            "too short",
            |e| e["event_id"] = json!(""),
            "/event_id",
            "minLength",
            "at least 1 characters",
        ),
        (
            "too long",
            |e| e["detail"] = json!("x".repeat(5000)),
            "/detail",
            "maxLength",
            "at most 4096 characters",
        ),
        (
            "not a date-time",
            |e| e["at"] = json!("yesterday"),
            "/at",
            "format",
            "RFC 3339",
        ),
        (
            "below the minimum",
            |e| e["replica"] = json!(-1),
            "/replica",
            "minimum",
            "at least 0",
        ),
        (
            "nested missing field",
            |e| e["evidence"] = json!({"offender": 1, "message_a": "aa"}),
            "/evidence/message_b",
            "required",
            "missing",
        ),
        (
            "nested wrong type",
            |e| e["metrics"] = json!({"p99_ms": "slow"}),
            "/metrics/p99_ms",
            "type",
            "number",
        ),
    ];
    let schema = Schema::compile(&health_schema()).unwrap();
    for (what, change, pointer, keyword, words) in cases {
        let mut e = event();
        change(&mut e);
        let found = schema.violations(&e);
        let v = found
            .iter()
            .find(|v| v.path == pointer)
            .unwrap_or_else(|| panic!("{what}: no violation at {pointer}: {found:?}"));
        assert_eq!(v.keyword, keyword, "{what}");
        assert!(v.message.contains(words), "{what}: {:?}", v.message);
        assert!(v.message.len() < 300, "{what}: the value is not echoed");
    }
    assert!(schema.violations(&event()).is_empty());
}

#[test]
fn array_items_are_named_by_index_and_pointers_are_escaped() {
    let schema = json!({
        "type": "object",
        "properties": {
            "list": {"type": "array", "items": {"type": "string", "pattern": "^[A-Z]{2}$"},
                     "uniqueItems": true, "maxItems": 3},
            "a/b": {"type": "integer"}
        }
    });
    let found = validate(&schema, &json!({"list": ["DE", "de", "DE"], "a/b": 1.5})).unwrap();
    let at = |p: &str| found.iter().find(|v| v.path == p).cloned();
    assert!(at("/list/1").is_some_and(|v| v.message.contains("pattern ^[A-Z]{2}$")));
    assert!(at("/list").is_some_and(|v| v.message == "must not repeat a value"));
    assert!(
        at("/a~1b").is_some_and(|v| v.keyword == "type"),
        "{found:?}"
    );
    let too_many = validate(&schema, &json!({"list": ["AA", "BB", "CC", "DD"]})).unwrap();
    assert_eq!(too_many[0].message, "must have at most 3 entries");
}
