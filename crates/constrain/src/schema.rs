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
    let ours = match obj.get("format").and_then(Value::as_str) {
        Some("email") => Some(EMAIL.to_string()),
        Some("hostname") => Some(HOSTNAME.to_string()),
        Some("date") => Some(format!("^{DATE}$")),
        Some("time") => Some(format!("^{TIME}$")),
        Some("date-time") => Some(format!("^{DATE}[Tt]{TIME}$")),
        _ => None,
    };
    if let Some(pattern) = ours {
        obj.remove("format");
        let pattern = Value::String(pattern);
        if obj.contains_key("pattern") {
            let all_of = obj
                .entry("allOf")
                .or_insert_with(|| Value::Array(Vec::new()));
            let Value::Array(list) = all_of else {
                return Err(ConstrainError::Invalid(format!(
                    "`allOf` must be an array (at {at}/allOf)"
                )));
            };
            list.push(serde_json::json!({ "pattern": pattern }));
        } else {
            obj.insert("pattern".into(), pattern);
        }
    }
    Ok(())
}

/// Some formats as patterns of our own, where llguidance's regexes accept strings that
/// validators reject.
///
/// Dates and times: llguidance allows February 29 in every year and a leap second at any
/// time of day; a date here has February 29 in leap years only, and seconds stop at 59.
///
/// Email addresses and host names: llguidance's regexes leave out the length limits of RFC 5321 and RFC 1034 that validators apply
/// (a local part of at most 64 bytes, an address of at most 254, a host name of at most
/// 253, labels of at most 63), and intersecting them with length patterns is more than
/// llguidance's emptiness check can decide. These generate a subset of the valid
/// addresses and names (dot-atoms of at most three 20-character parts, at most three
/// labels) that is within every limit.
const EMAIL: &str = concat!(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,20}(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,20}){0,2}",
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?){0,2}$"
);
/// YYYY-MM-DD, with February 29 in leap years only (divisible by 4 but not by 100, or by
/// 400).
const DATE: &str = concat!(
    r"(?:[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))",
    r"|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)"
);
/// hh:mm:ss with optional fraction and a required offset (RFC 3339 full-time).
const TIME: &str = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])";
const HOSTNAME: &str = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?){0,2}$";

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
