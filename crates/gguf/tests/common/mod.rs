//! Helpers shared by the tests that compare against gguf-py's JSON (testdata/gguf).

#![allow(dead_code)]

use std::path::PathBuf;

use lingqiao_gguf::{Array, GgufFile, Value};
use serde_json::{Value as Json, json};

pub fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/gguf")
        .join(name)
}

pub fn load_json(name: &str) -> Json {
    let path = testdata(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run tools/reference/gen_gguf_fixture.py)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// Scalars in the JSON encoding the generator uses: floats as IEEE bit patterns.
fn scalar(v: &Value) -> Json {
    match v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        Value::F32(x) => json!({ "bits": x.to_bits() }),
        Value::F64(x) => json!({ "bits": x.to_bits() }),
        Value::Bool(x) => json!(x),
        Value::String(x) => json!(x),
        Value::Array(_) => unreachable!("arrays are flattened"),
    }
}

/// An array's leaves in order, flattened the way gguf-py flattens nested arrays, and the
/// chain of element type names below it.
pub fn flatten(a: &Array, out: &mut Vec<Json>, types: &mut Vec<String>) {
    fn push<T: Clone>(out: &mut Vec<Json>, v: &[T], f: fn(T) -> Value) {
        out.extend(v.iter().cloned().map(|x| scalar(&f(x))));
    }
    if types.last().map(String::as_str) == Some("array") {
        types.push(a.elem_type_name().to_string());
    }
    match a {
        Array::U8(v) => push(out, v, Value::U8),
        Array::I8(v) => push(out, v, Value::I8),
        Array::U16(v) => push(out, v, Value::U16),
        Array::I16(v) => push(out, v, Value::I16),
        Array::U32(v) => push(out, v, Value::U32),
        Array::I32(v) => push(out, v, Value::I32),
        Array::U64(v) => push(out, v, Value::U64),
        Array::I64(v) => push(out, v, Value::I64),
        Array::F32(v) => push(out, v, Value::F32),
        Array::F64(v) => push(out, v, Value::F64),
        Array::Bool(v) => push(out, v, Value::Bool),
        Array::String(v) => push(out, v, Value::String),
        Array::Array(v) => {
            for (i, inner) in v.iter().enumerate() {
                // gguf-py records the type chain of the first element only.
                let mut t = if i == 0 {
                    std::mem::take(types)
                } else {
                    Vec::new()
                };
                flatten(inner, out, &mut t);
                if i == 0 {
                    *types = t;
                }
            }
        }
    }
}

/// One key as the generator describes it. `full` records whole arrays, otherwise the
/// length and the first and last leaf.
pub fn describe_key(f: &GgufFile, key: &str, full: bool) -> Json {
    let v = f.metadata().get(key).unwrap();
    let mut d = json!({
        "key": key,
        "type": v.type_name(),
        "offset": f.metadata().offset_of(key).unwrap(),
    });
    match v {
        Value::Array(a) => {
            let mut flat = Vec::new();
            let mut types = vec!["array".to_string()];
            flatten(a, &mut flat, &mut types);
            d["len"] = json!(a.len());
            d["types"] = json!(types);
            if full {
                d["flat"] = Json::Array(flat);
            } else if !flat.is_empty() {
                d["first"] = flat[0].clone();
                d["last"] = flat[flat.len() - 1].clone();
            }
        }
        _ => d["value"] = scalar(v),
    }
    d
}

/// Compares our reading of `f` with the generator's description `want`, field by field,
/// so a failure names what differs.
pub fn assert_matches_reference(f: &GgufFile, want: &Json, full: bool) {
    let file = want["file"].as_str().unwrap();
    assert_eq!(json!(f.version()), want["version"], "{file}: version");
    assert_eq!(
        json!(f.tensors().len()),
        want["tensor_count"],
        "{file}: tensor_count"
    );
    assert_eq!(
        json!(f.metadata().len()),
        want["kv_count"],
        "{file}: kv_count"
    );
    assert_eq!(json!(f.alignment()), want["alignment"], "{file}: alignment");
    assert_eq!(
        json!(f.data_offset()),
        want["data_offset"],
        "{file}: data_offset"
    );
    assert_eq!(json!(f.bytes().len()), want["file_len"], "{file}: file_len");

    let keys = want["metadata"].as_array().unwrap();
    let ours: Vec<&str> = f.metadata().iter().map(|(k, _)| k).collect();
    let theirs: Vec<&str> = keys.iter().map(|k| k["key"].as_str().unwrap()).collect();
    assert_eq!(ours, theirs, "{file}: keys in file order");
    for k in keys {
        let key = k["key"].as_str().unwrap();
        assert_eq!(&describe_key(f, key, full), k, "{file}: key {key}");
    }

    let tensors = want["tensors"].as_array().unwrap();
    for (t, w) in f.tensors().iter().zip(tensors) {
        let name = &t.name;
        assert_eq!(json!(name), w["name"], "{file}: tensor order");
        assert_eq!(json!(t.ty.name()), w["type"], "{file}: {name} type");
        assert_eq!(json!(t.dims), w["dims"], "{file}: {name} dims");
        assert_eq!(json!(t.offset), w["offset"], "{file}: {name} offset");
        assert_eq!(json!(t.n_bytes), w["n_bytes"], "{file}: {name} n_bytes");
        assert_eq!(f.tensor(name), Some(t), "{file}: lookup {name}");
    }
}
