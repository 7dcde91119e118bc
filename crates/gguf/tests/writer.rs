//! The writer against gguf-py: testdata/gguf/small.gguf was written by gguf-py's GGUFWriter
//! (tools/reference/gen_gguf_fixture.py), so writing the same key/values and tensors in the
//! same order must give the same bytes. Plus the writer's own refusals.

mod common;

use lingqiao_gguf::{GgmlType, GgufFile, GgufWriteError, GgufWriter, Value};

#[test]
fn rewriting_a_gguf_py_file_gives_its_bytes() {
    let original = std::fs::read(common::testdata("small.gguf")).unwrap();
    let file = GgufFile::from_bytes(original.clone()).unwrap();
    let mut w = GgufWriter::with_metadata(file.metadata());
    for t in file.tensors() {
        w.add_tensor(t.name.clone(), t.ty, &t.dims).unwrap();
    }
    let planned = w.tensors();
    for (p, t) in planned.iter().zip(file.tensors()) {
        assert_eq!(p.offset + file.data_offset(), t.offset, "{}", t.name);
    }
    assert_eq!(w.file_size(), original.len() as u64);
    let mut data = w.start(Vec::new()).unwrap();
    for t in file.tensors() {
        assert_eq!(data.next_tensor().unwrap().name, t.name);
        data.write_tensor(file.tensor_data(t)).unwrap();
    }
    let written = data.finish().unwrap();
    assert_eq!(written.len(), original.len());
    let first_diff = written.iter().zip(&original).position(|(a, b)| a != b);
    assert_eq!(first_diff, None, "first differing byte");
}

#[test]
fn refuses_what_a_reader_would_reject() {
    let mut w = GgufWriter::new();
    assert!(matches!(
        w.set("general.alignment", Value::U32(12)),
        Err(GgufWriteError::BadAlignment { .. })
    ));
    assert!(matches!(
        w.set("", Value::U8(1)),
        Err(GgufWriteError::BadKey { .. })
    ));
    w.add_tensor("a", GgmlType::Q4_0, &[64, 2]).unwrap();
    assert!(matches!(
        w.add_tensor("a", GgmlType::F32, &[4]),
        Err(GgufWriteError::DuplicateTensor { .. })
    ));
    assert!(matches!(
        w.add_tensor("b", GgmlType::Q4_K, &[128, 2]),
        Err(GgufWriteError::PartialBlock { .. })
    ));
    assert!(matches!(
        w.add_tensor("c", GgmlType::F32, &[4, 0]),
        Err(GgufWriteError::ZeroDim { .. })
    ));
    assert!(matches!(
        w.add_tensor("d", GgmlType::F32, &[1, 1, 1, 1, 1]),
        Err(GgufWriteError::BadDims { .. })
    ));
    assert!(matches!(
        w.add_tensor("e", GgmlType::F32, &[u64::MAX / 2, 4]),
        Err(GgufWriteError::Overflow { .. })
    ));
    let mut data = w.clone().start(Vec::new()).unwrap();
    assert!(matches!(
        data.write_tensor(&[0; 10]),
        Err(GgufWriteError::DataSize { expected: 72, .. })
    ));
    let data = w.clone().start(Vec::new()).unwrap();
    assert!(matches!(
        data.finish(),
        Err(GgufWriteError::Incomplete {
            written: 0,
            total: 1
        })
    ));
    let mut data = w.start(Vec::new()).unwrap();
    data.write_tensor(&[0; 72]).unwrap();
    assert!(matches!(
        data.write_tensor(&[0; 72]),
        Err(GgufWriteError::TooMuchData { total: 1 })
    ));
    let bytes = data.finish().unwrap();
    let back = GgufFile::from_bytes(bytes).unwrap();
    assert_eq!(back.tensors()[0].dims, vec![64, 2]);
}

#[test]
fn every_value_type_reads_back() {
    use lingqiao_gguf::Array;
    let values = vec![
        ("u8", Value::U8(200)),
        ("i8", Value::I8(-3)),
        ("u16", Value::U16(60000)),
        ("i16", Value::I16(-30000)),
        ("u32", Value::U32(4_000_000_000)),
        ("i32", Value::I32(-2_000_000_000)),
        ("u64", Value::U64(u64::MAX)),
        ("i64", Value::I64(i64::MIN)),
        ("f32", Value::F32(-1.5)),
        ("f64", Value::F64(1e300)),
        ("bool", Value::Bool(true)),
        ("str", Value::String("灵巧 nimble".into())),
        (
            "arr",
            Value::Array(Array::String(vec!["a".into(), "".into()])),
        ),
        (
            "nested",
            Value::Array(Array::Array(vec![
                Array::I32(vec![1, -2]),
                Array::Bool(vec![]),
            ])),
        ),
    ];
    let mut w = GgufWriter::new();
    for (k, v) in &values {
        w.set(*k, v.clone()).unwrap();
    }
    w.set("u8", Value::U8(7)).unwrap(); // a key set twice keeps its place, takes the last value
    w.add_tensor("t", GgmlType::F32, &[3]).unwrap();
    let mut data = w.start(Vec::new()).unwrap();
    data.write_tensor(&[0u8; 12]).unwrap();
    let back = GgufFile::from_bytes(data.finish().unwrap()).unwrap();
    let got: Vec<_> = back
        .metadata()
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    assert_eq!(got.len(), values.len());
    assert_eq!(got[0], ("u8".to_string(), Value::U8(7)));
    for ((k, v), (gk, gv)) in values.iter().zip(&got).skip(1) {
        assert_eq!((k.to_string(), v), (gk.clone(), gv));
    }
}
