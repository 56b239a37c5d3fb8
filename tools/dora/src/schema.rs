//! A small JSON Schema (draft 2020-12) checker for the schemas this crate ships.
//!
//! It implements exactly the keywords our schemas use and refuses any other keyword, so a
//! schema can never be silently half-checked: `type`, `enum`, `const`, `properties`,
//! `required`, `additionalProperties`, `items`, `minItems`, `maxItems`, `minLength`,
//! `maxLength`, `minimum`, `maximum`, `format` (`date-time`, `date`), `pattern`, `contains`,
//! `uniqueItems`, `allOf`, `if`/`then`/`else`, `$ref` to `#/$defs/...`, and the annotations `$schema`, `$id`, `$defs`, `title`,
//! `description`, `$comment`, `examples`. Any standard validator gives the same verdicts on
//! these schemas.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Deepest nesting followed (schemas and instances are ours and small).
pub const DEPTH_MAX: usize = 64;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    #[error("schema uses unsupported keyword `{keyword}` at {at}")]
    Unsupported { keyword: String, at: String },
    #[error("schema is malformed at {at}: {reason}")]
    Malformed { at: String, reason: String },
}

/// One way the instance breaks the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Path of the offending value; for a missing field, the path the field should have.
    pub path: String,
    /// The property name concerned (the last path segment), when there is one.
    pub field: Option<String>,
    pub keyword: String,
    pub message: String,
}

const ANNOTATIONS: [&str; 7] = [
    "$schema",
    "$id",
    "$defs",
    "title",
    "description",
    "$comment",
    "examples",
];
const KEYWORDS: [&str; 22] = [
    "pattern",
    "contains",
    "uniqueItems",
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "format",
    "allOf",
    "if",
    "then",
    "else",
    "$ref",
];

/// Validate `instance` against `schema` (whose `$defs` resolve `$ref`s). Returns every
/// violation found, in document order.
pub fn validate(schema: &Value, instance: &Value) -> Result<Vec<Violation>, SchemaError> {
    let mut out = Vec::new();
    check(schema, schema, instance, "", None, 0, &mut out)?;
    Ok(out)
}

fn child_path(path: &str, segment: &str) -> String {
    format!("{path}/{segment}")
}

fn check(
    root: &Value,
    schema: &Value,
    inst: &Value,
    path: &str,
    field: Option<&str>,
    depth: usize,
    out: &mut Vec<Violation>,
) -> Result<(), SchemaError> {
    if depth > DEPTH_MAX {
        return Err(SchemaError::Malformed {
            at: path.into(),
            reason: "nesting too deep".into(),
        });
    }
    if let Value::Bool(allowed) = schema {
        if !allowed {
            push(out, path, field, "false", "no value is allowed here");
        }
        return Ok(());
    }
    let obj = schema.as_object().ok_or_else(|| SchemaError::Malformed {
        at: path.into(),
        reason: "a schema must be an object or a boolean".into(),
    })?;
    for key in obj.keys() {
        if !KEYWORDS.contains(&key.as_str()) && !ANNOTATIONS.contains(&key.as_str()) {
            return Err(SchemaError::Unsupported {
                keyword: key.clone(),
                at: path.into(),
            });
        }
    }
    if let Some(reference) = obj.get("$ref") {
        let target = resolve(root, reference, path)?;
        check(root, target, inst, path, field, depth + 1, out)?;
    }
    if let Some(t) = obj.get("type") {
        check_type(t, inst, path, field, out)?;
    }
    if let Some(Value::Array(options)) = obj.get("enum") {
        if !options.contains(inst) {
            let names: Vec<String> = options.iter().map(|o| o.to_string()).collect();
            push(
                out,
                path,
                field,
                "enum",
                &format!("must be one of {}", names.join(", ")),
            );
        }
    }
    if let Some(c) = obj.get("const") {
        if c != inst {
            push(out, path, field, "const", &format!("must be {c}"));
        }
    }
    check_string(obj, inst, path, field, out);
    check_number(obj, inst, path, field, out);
    if let Value::Object(map) = inst {
        check_object(root, obj, map, path, depth, out)?;
    }
    if let Value::Array(items) = inst {
        check_array(root, obj, items, path, field, depth, out)?;
    }
    if let Some(Value::Array(all)) = obj.get("allOf") {
        for sub in all {
            check(root, sub, inst, path, field, depth + 1, out)?;
        }
    }
    if let Some(cond) = obj.get("if") {
        let mut scratch = Vec::new();
        check(root, cond, inst, path, field, depth + 1, &mut scratch)?;
        let branch = if scratch.is_empty() {
            obj.get("then")
        } else {
            obj.get("else")
        };
        if let Some(branch) = branch {
            check(root, branch, inst, path, field, depth + 1, out)?;
        }
    }
    Ok(())
}

fn resolve<'a>(root: &'a Value, reference: &Value, at: &str) -> Result<&'a Value, SchemaError> {
    let text = reference.as_str().unwrap_or("");
    let name = text
        .strip_prefix("#/$defs/")
        .ok_or_else(|| SchemaError::Malformed {
            at: at.into(),
            reason: format!("only #/$defs/... references are supported, not {text:?}"),
        })?;
    root.get("$defs")
        .and_then(|d| d.get(name))
        .ok_or_else(|| SchemaError::Malformed {
            at: at.into(),
            reason: format!("unresolved reference {text:?}"),
        })
}

fn push(out: &mut Vec<Violation>, path: &str, field: Option<&str>, keyword: &str, message: &str) {
    out.push(Violation {
        path: if path.is_empty() {
            "/".into()
        } else {
            path.into()
        },
        field: field.map(str::to_string),
        keyword: keyword.into(),
        message: message.into(),
    });
}

fn type_matches(name: &str, inst: &Value) -> bool {
    match name {
        "object" => inst.is_object(),
        "array" => inst.is_array(),
        "string" => inst.is_string(),
        "boolean" => inst.is_boolean(),
        "null" => inst.is_null(),
        "number" => inst.is_number(),
        "integer" => inst.is_i64() || inst.is_u64(),
        _ => false,
    }
}

fn check_type(
    t: &Value,
    inst: &Value,
    path: &str,
    field: Option<&str>,
    out: &mut Vec<Violation>,
) -> Result<(), SchemaError> {
    let names: Vec<&str> = match t {
        Value::String(s) => vec![s.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => {
            return Err(SchemaError::Malformed {
                at: path.into(),
                reason: "type must be a string or a list".into(),
            })
        }
    };
    if !names.iter().any(|n| type_matches(n, inst)) {
        push(
            out,
            path,
            field,
            "type",
            &format!("must be of type {}", names.join(" or ")),
        );
    }
    Ok(())
}

fn check_string(
    obj: &serde_json::Map<String, Value>,
    inst: &Value,
    path: &str,
    field: Option<&str>,
    out: &mut Vec<Violation>,
) {
    let Some(s) = inst.as_str() else { return };
    let len = s.chars().count() as u64;
    if let Some(min) = obj.get("minLength").and_then(Value::as_u64) {
        if len < min {
            push(
                out,
                path,
                field,
                "minLength",
                &format!("must have at least {min} characters"),
            );
        }
    }
    if let Some(max) = obj.get("maxLength").and_then(Value::as_u64) {
        if len > max {
            push(
                out,
                path,
                field,
                "maxLength",
                &format!("must have at most {max} characters"),
            );
        }
    }
    if let Some(pattern) = obj.get("pattern").and_then(Value::as_str) {
        match pattern_matches(pattern, s) {
            Some(true) => {}
            Some(false) => push(
                out,
                path,
                field,
                "pattern",
                &format!("must match the pattern {pattern}"),
            ),
            None => push(
                out,
                path,
                field,
                "pattern",
                &format!("schema pattern {pattern} does not compile"),
            ),
        }
    }
    match obj.get("format").and_then(Value::as_str) {
        Some("date-time") if chrono::DateTime::parse_from_rfc3339(s).is_err() => {
            push(
                out,
                path,
                field,
                "format",
                "must be an RFC 3339 / ISO 8601 date-time",
            );
        }
        Some("date") if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_err() => {
            push(out, path, field, "format", "must be a date YYYY-MM-DD");
        }
        _ => {}
    }
}

fn check_number(
    obj: &serde_json::Map<String, Value>,
    inst: &Value,
    path: &str,
    field: Option<&str>,
    out: &mut Vec<Violation>,
) {
    let Some(x) = inst.as_f64() else { return };
    if let Some(min) = obj.get("minimum").and_then(Value::as_f64) {
        if x < min {
            push(
                out,
                path,
                field,
                "minimum",
                &format!("must be at least {min}"),
            );
        }
    }
    if let Some(max) = obj.get("maximum").and_then(Value::as_f64) {
        if x > max {
            push(
                out,
                path,
                field,
                "maximum",
                &format!("must be at most {max}"),
            );
        }
    }
}

fn check_object(
    root: &Value,
    obj: &serde_json::Map<String, Value>,
    map: &serde_json::Map<String, Value>,
    path: &str,
    depth: usize,
    out: &mut Vec<Violation>,
) -> Result<(), SchemaError> {
    if let Some(Value::Array(required)) = obj.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                push(
                    out,
                    &child_path(path, name),
                    Some(name),
                    "required",
                    "mandatory field is missing",
                );
            }
        }
    }
    let props = obj.get("properties").and_then(Value::as_object);
    for (key, value) in map {
        let sub_path = child_path(path, key);
        match props.and_then(|p| p.get(key)) {
            Some(sub) => check(root, sub, value, &sub_path, Some(key), depth + 1, out)?,
            None => match obj.get("additionalProperties") {
                Some(Value::Bool(false)) => push(
                    out,
                    &sub_path,
                    Some(key),
                    "additionalProperties",
                    "field is not allowed here",
                ),
                Some(sub @ Value::Object(_)) => {
                    check(root, sub, value, &sub_path, Some(key), depth + 1, out)?
                }
                _ => {}
            },
        }
    }
    Ok(())
}

fn check_array(
    root: &Value,
    obj: &serde_json::Map<String, Value>,
    items: &[Value],
    path: &str,
    field: Option<&str>,
    depth: usize,
    out: &mut Vec<Violation>,
) -> Result<(), SchemaError> {
    let len = items.len() as u64;
    if let Some(min) = obj.get("minItems").and_then(Value::as_u64) {
        if len < min {
            push(
                out,
                path,
                field,
                "minItems",
                &format!("must have at least {min} entries"),
            );
        }
    }
    if let Some(max) = obj.get("maxItems").and_then(Value::as_u64) {
        if len > max {
            push(
                out,
                path,
                field,
                "maxItems",
                &format!("must have at most {max} entries"),
            );
        }
    }
    if obj.get("uniqueItems") == Some(&Value::Bool(true)) {
        let dup = items
            .iter()
            .enumerate()
            .any(|(i, a)| items[..i].contains(a));
        if dup {
            push(out, path, field, "uniqueItems", "must not repeat a value");
        }
    }
    if let Some(sub) = obj.get("contains") {
        let mut found = false;
        for item in items {
            let mut scratch = Vec::new();
            check(root, sub, item, path, field, depth + 1, &mut scratch)?;
            found |= scratch.is_empty();
        }
        if !found {
            push(
                out,
                path,
                field,
                "contains",
                "no entry matches the required value",
            );
        }
    }
    if let Some(item_schema) = obj.get("items") {
        for (i, item) in items.iter().enumerate() {
            check(
                root,
                item_schema,
                item,
                &child_path(path, &i.to_string()),
                field,
                depth + 1,
                out,
            )?;
        }
    }
    Ok(())
}

/// Compiled patterns, shared (schemas are ours and few, so the cache stays small).
fn pattern_matches(pattern: &str, text: &str) -> Option<bool> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let re = map
        .entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).ok());
    re.as_ref().map(|r| r.is_match(text))
}
