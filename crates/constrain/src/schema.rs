//! The JSON-schema keywords we enforce, checked before llguidance compiles a schema.
//!
//! llguidance rejects the keywords of the JSON-schema drafts it does not implement
//! (`uniqueItems`, `contains`, `not`, `if`, ...), but a key it does not know as a keyword
//! at all (a typo such as `minLenght`, an OpenAPI `nullable`) is ignored, as the drafts
//! say. An ignored key is a constraint silently not enforced, so every key here must be
//! one llguidance enforces or a pure annotation.

use serde_json::Value;

use crate::ConstrainError;

/// Keywords llguidance compiles into the grammar (its `IMPLEMENTED` list).
const ENFORCED: &[&str] = &[
    "anyOf",
    "oneOf",
    "allOf",
    "$ref",
    "const",
    "enum",
    "type",
    "items",
    "additionalItems",
    "prefixItems",
    "minItems",
    "maxItems",
    "properties",
    "additionalProperties",
    "patternProperties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
];

/// Keys that do not constrain a value (metadata, annotations, definitions that are only
/// reached through `$ref`).
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "id",
    "$anchor",
    "$comment",
    "$defs",
    "definitions",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "contentMediaType",
    "contentEncoding",
];

/// Checks that every key of `schema` (and of its subschemas) is enforced or an
/// annotation, and, when `ref_prefix` is given, rewrites local `$ref`s (`#/...`) to point
/// below it (for a schema embedded in a larger one at that JSON pointer).
pub(crate) fn check(schema: &mut Value, ref_prefix: Option<&str>) -> Result<(), ConstrainError> {
    walk(schema, ref_prefix, "#")
}

fn unsupported(keyword: &str, at: &str) -> ConstrainError {
    ConstrainError::Unsupported(format!("JSON schema keyword `{keyword}` (at {at})"))
}

fn walk(schema: &mut Value, ref_prefix: Option<&str>, at: &str) -> Result<(), ConstrainError> {
    let obj = match schema {
        Value::Bool(_) => return Ok(()),
        Value::Object(obj) => obj,
        _ => {
            return Err(ConstrainError::Invalid(format!(
                "a JSON schema must be an object or a boolean (at {at})"
            )));
        }
    };
    for (key, value) in obj.iter_mut() {
        let here = format!("{at}/{key}");
        match key.as_str() {
            // maps of name -> subschema
            "properties" | "patternProperties" | "$defs" | "definitions" => {
                let Value::Object(map) = value else {
                    return Err(ConstrainError::Invalid(format!(
                        "`{key}` must be an object (at {here})"
                    )));
                };
                for (name, sub) in map.iter_mut() {
                    walk(sub, ref_prefix, &format!("{here}/{name}"))?;
                }
            }
            // lists of subschemas
            "anyOf" | "oneOf" | "allOf" | "prefixItems" => {
                let Value::Array(list) = value else {
                    return Err(ConstrainError::Invalid(format!(
                        "`{key}` must be an array (at {here})"
                    )));
                };
                for (i, sub) in list.iter_mut().enumerate() {
                    walk(sub, ref_prefix, &format!("{here}/{i}"))?;
                }
            }
            // one subschema (`items` may be a list in drafts before 2020-12)
            "items" | "additionalItems" | "additionalProperties" => match value {
                Value::Array(list) => {
                    for (i, sub) in list.iter_mut().enumerate() {
                        walk(sub, ref_prefix, &format!("{here}/{i}"))?;
                    }
                }
                sub => walk(sub, ref_prefix, &here)?,
            },
            "$ref" => {
                let Value::String(target) = value else {
                    return Err(ConstrainError::Invalid(format!(
                        "`$ref` must be a string (at {here})"
                    )));
                };
                if target != "#" && !target.starts_with("#/") {
                    return Err(ConstrainError::Unsupported(format!(
                        "JSON schema `$ref` to `{target}` (at {here}): only local references (#/...) are supported"
                    )));
                }
                if let Some(prefix) = ref_prefix {
                    *target = format!("{prefix}{}", &target[1..]);
                }
            }
            k if ENFORCED.contains(&k) || ANNOTATIONS.contains(&k) => {}
            k => return Err(unsupported(k, at)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rejects_unknown_and_unimplemented_keywords_anywhere() {
        for (schema, keyword) in [
            (json!({"type": "array", "uniqueItems": true}), "uniqueItems"),
            (
                json!({"type": "object", "properties": {"a": {"type": "string", "minLenght": 3}}}),
                "minLenght",
            ),
            (
                json!({"anyOf": [{"type": "string"}, {"not": {"const": 1}}]}),
                "not",
            ),
            (
                json!({"$defs": {"x": {"type": "integer", "nullable": true}}}),
                "nullable",
            ),
            (json!({"items": {"if": {}, "then": {}}}), "if"),
        ] {
            let mut s = schema.clone();
            match check(&mut s, None) {
                Err(ConstrainError::Unsupported(msg)) => {
                    assert!(msg.contains(keyword), "{schema}: {msg}")
                }
                other => panic!("{schema}: {other:?}"),
            }
        }
    }

    #[test]
    fn rewrites_local_refs_below_a_prefix() {
        let mut s = json!({
            "type": "object",
            "properties": {"p": {"$ref": "#/$defs/P"}, "$ref": {"type": "string"}},
            "$defs": {"P": {"items": {"$ref": "#"}}},
            "enum": [{"$ref": "#/data"}]
        });
        check(&mut s, Some("#/properties/arguments")).unwrap();
        assert_eq!(
            s["properties"]["p"]["$ref"],
            "#/properties/arguments/$defs/P"
        );
        assert_eq!(s["$defs"]["P"]["items"]["$ref"], "#/properties/arguments");
        // data is not rewritten
        assert_eq!(s["enum"][0]["$ref"], "#/data");
        assert!(matches!(
            check(&mut json!({"$ref": "https://example.com/s.json"}), None),
            Err(ConstrainError::Unsupported(_))
        ));
    }
}
