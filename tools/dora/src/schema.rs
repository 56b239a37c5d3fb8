//! JSON Schema (draft 2020-12) validation through the `jsonschema` crate.
//!
//! This module holds no validation logic of its own: it compiles a schema once (checked
//! against the 2020-12 meta-schema, formats asserted, an unknown `format` refused) and turns
//! the crate's errors into [`Violation`]s that name the offending value by its JSON pointer
//! and say the problem in a short sentence that never echoes the value itself (a report
//! field can be kilobytes of text). A missing field is named by the pointer it should have,
//! an unexpected field by its own pointer.

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;
use std::sync::OnceLock;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    #[error("schema is invalid at {at}: {reason}")]
    Invalid { at: String, reason: String },
}

/// One way the instance breaks the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer of the offending value (`/` for the document itself); for a missing
    /// field, the pointer the field should have.
    pub path: String,
    /// The schema keyword that failed (`required`, `type`, `pattern`, ...).
    pub keyword: String,
    pub message: String,
}

/// A compiled schema.
#[derive(Debug)]
pub struct Schema {
    validator: Validator,
}

impl Schema {
    /// Compile `schema` (draft 2020-12; `$ref`s resolve inside the document only: the crate
    /// is built without file or network retrieval).
    pub fn compile(schema: &Value) -> Result<Schema, SchemaError> {
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .should_ignore_unknown_formats(false)
            .build(schema)
            .map_err(|e| SchemaError::Invalid {
                at: pointer(e.schema_path().as_str()),
                reason: e.to_string(),
            })?;
        Ok(Schema { validator })
    }

    /// Every violation of `instance`, in the validator's order (empty when valid).
    pub fn violations(&self, instance: &Value) -> Vec<Violation> {
        self.validator
            .iter_errors(instance)
            .flat_map(|e| violations_of(&e))
            .collect()
    }
}

/// A schema shipped with the crate (its JSON text), compiled on first use and kept.
pub struct Shipped {
    text: &'static str,
    compiled: OnceLock<Result<Schema, SchemaError>>,
}

impl Shipped {
    pub const fn new(text: &'static str) -> Shipped {
        Shipped {
            text,
            compiled: OnceLock::new(),
        }
    }

    /// The compiled schema (an error only if the shipped text is broken: a build defect
    /// reported as an error, not a panic).
    pub fn get(&self) -> Result<&Schema, SchemaError> {
        self.compiled
            .get_or_init(|| {
                let value: Value =
                    serde_json::from_str(self.text).map_err(|e| SchemaError::Invalid {
                        at: "/".into(),
                        reason: format!("not JSON: {e}"),
                    })?;
                Schema::compile(&value)
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Compile `schema` and validate `instance` against it (for one-off checks and tests; the
/// engine compiles its shipped schemas once).
pub fn validate(schema: &Value, instance: &Value) -> Result<Vec<Violation>, SchemaError> {
    Ok(Schema::compile(schema)?.violations(instance))
}

fn pointer(path: &str) -> String {
    if path.is_empty() {
        "/".into()
    } else {
        path.into()
    }
}

/// One crate error as violations: one per missing or unexpected field, else one.
fn violations_of(error: &ValidationError<'_>) -> Vec<Violation> {
    let at = error.instance_path();
    let keyword = error.kind().keyword().to_string();
    let one = |path: String, message: String| Violation {
        path: pointer(&path),
        keyword: keyword.clone(),
        message,
    };
    match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            vec![one(
                at.join(name).as_str().into(),
                "mandatory field is missing".into(),
            )]
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|name| {
                one(
                    at.join(name.as_str()).as_str().into(),
                    "field is not allowed here".into(),
                )
            })
            .collect(),
        kind => vec![one(at.as_str().into(), problem(kind, error))],
    }
}

/// The problem in words, without the offending value.
fn problem(kind: &ValidationErrorKind, error: &ValidationError<'_>) -> String {
    use ValidationErrorKind as K;
    match kind {
        K::Type { kind } => format!("must be of type {}", type_names(kind)),
        K::Enum { options } => format!("must be one of {}", enum_names(options)),
        K::Constant { expected_value } => format!("must be {expected_value}"),
        K::MinLength { limit } => format!("must have at least {limit} characters"),
        K::MaxLength { limit } => format!("must have at most {limit} characters"),
        K::Pattern { pattern } => format!("must match the pattern {pattern}"),
        K::Format { format } => match format.as_str() {
            "date-time" => "must be an RFC 3339 / ISO 8601 date-time".into(),
            "date" => "must be a date YYYY-MM-DD".into(),
            other => format!("must be in the {other} format"),
        },
        K::Minimum { limit } => format!("must be at least {limit}"),
        K::Maximum { limit } => format!("must be at most {limit}"),
        K::MinItems { limit } => format!("must have at least {limit} entries"),
        K::MaxItems { limit } => format!("must have at most {limit} entries"),
        K::UniqueItems => "must not repeat a value".into(),
        K::Contains => "no entry matches the required value".into(),
        K::FalseSchema => "no value is allowed here".into(),
        _ => error.masked().to_string(),
    }
}

fn type_names(kind: &jsonschema::error::TypeKind) -> String {
    match kind {
        jsonschema::error::TypeKind::Single(t) => t.to_string(),
        jsonschema::error::TypeKind::Multiple(set) => set
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

fn enum_names(options: &Value) -> String {
    match options {
        Value::Array(list) => list
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}
