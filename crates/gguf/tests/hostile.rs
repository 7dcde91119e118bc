//! Hand-assembled GGUF byte buffers, one per class of malformed input: each must give the
//! specific `GgufError` variant at the right offset, never a panic or a huge allocation.

use lingqiao_gguf::{Array, GgmlType, GgufError, GgufFile, MAX_ARRAY_DEPTH, Value};

// Value type ids (gguf.h `enum gguf_type`).
const T_U8: u32 = 0;
const T_U32: u32 = 4;
const T_I32: u32 = 5;
const T_F32: u32 = 6;
const T_BOOL: u32 = 7;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;
const T_U64: u32 = 10;
const T_F64: u32 = 12;

/// Appends little-endian GGUF primitives.
#[derive(Default, Clone)]
struct B(Vec<u8>);

impl B {
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> B {
        let mut b = B::default();
        b.raw(b"GGUF").u32(version).u64(n_tensors).u64(n_kv);
        b
    }
    fn raw(&mut self, x: &[u8]) -> &mut Self {
        self.0.extend_from_slice(x);
        self
    }
    fn u8(&mut self, x: u8) -> &mut Self {
        self.raw(&[x])
    }
    fn u32(&mut self, x: u32) -> &mut Self {
        self.raw(&x.to_le_bytes())
    }
    fn u64(&mut self, x: u64) -> &mut Self {
        self.raw(&x.to_le_bytes())
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64).raw(s.as_bytes())
    }
    fn kv_u32(&mut self, k: &str, v: u32) -> &mut Self {
        self.str(k).u32(T_U32).u32(v)
    }
    /// Tensor info: name, dims, type id, offset relative to the data section.
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    fn pad_to(&mut self, align: usize) -> &mut Self {
        while !self.0.len().is_multiple_of(align) {
            self.0.push(0);
        }
        self
    }
    fn zeros(&mut self, n: usize) -> &mut Self {
        self.0.resize(self.0.len() + n, 0);
        self
    }
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn parse(&self) -> Result<GgufFile, GgufError> {
        GgufFile::from_bytes(self.0.clone())
    }
}

fn err(b: &B) -> GgufError {
    match b.parse() {
        Ok(_) => panic!("expected an error"),
        Err(e) => {
            // Every message must render (and name an offset where the variant has one).
            assert!(!e.to_string().is_empty());
            e
        }
    }
}

const F32: u32 = GgmlType::F32 as u32;
const Q4_0: u32 = GgmlType::Q4_0 as u32;

#[test]
fn minimal_file_is_valid() {
    let f = B::header(3, 0, 0).parse().unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.data_offset(), 32); // header of 24 bytes, padded to 32
    assert!(f.metadata().is_empty());
    assert!(f.tensors().is_empty());
    // Version 2 has the same layout.
    assert_eq!(B::header(2, 0, 0).parse().unwrap().version(), 2);
}

#[test]
fn one_tensor_round_trip() {
    let mut b = B::header(3, 1, 1);
    b.kv_u32("general.alignment", 16)
        .tensor("w", &[4, 2], F32, 0)
        .pad_to(16);
    let data_offset = b.len();
    for i in 0..8u32 {
        b.raw(&(i as f32).to_le_bytes());
    }
    let f = b.parse().unwrap();
    assert_eq!(f.alignment(), 16);
    assert_eq!(f.data_offset(), data_offset);
    let t = f.tensor("w").unwrap();
    assert_eq!((t.ne(0), t.ne(1), t.ne(2), t.ne(3)), (4, 2, 1, 1));
    assert_eq!((t.n_elements(), t.n_rows(), t.n_bytes), (8, 2, 32));
    assert_eq!(t.offset, data_offset);
    let d = f.tensor_data(t);
    assert_eq!(d.len(), 32);
    assert_eq!(&d[4..8], &1f32.to_le_bytes());
    assert!(f.tensor("x").is_none());
}

#[test]
fn empty_and_short_files_are_truncated() {
    assert!(matches!(
        err(&B::default()),
        GgufError::Truncated { offset: 0, .. }
    ));
    assert!(matches!(
        err(&B(b"GGUF\x03\x00".to_vec())),
        GgufError::Truncated { offset: 4, .. }
    ));
}

#[test]
fn bad_magic() {
    let mut b = B::header(3, 0, 0);
    b.0[0] = b'X';
    assert!(matches!(err(&b), GgufError::BadMagic { .. }));
}

#[test]
fn unsupported_versions() {
    assert!(matches!(
        err(&B::header(0x0300_0000, 0, 0)),
        GgufError::BigEndian {
            version: 3,
            offset: 4
        }
    ));
    for v in [0, 1, 4, u32::MAX] {
        assert!(matches!(
            err(&B::header(v, 0, 0)),
            GgufError::UnsupportedVersion { version, offset: 4 } if version == v
        ));
    }
}

#[test]
fn huge_counts_fail_before_allocating() {
    for (n_tensors, n_kv) in [(u64::MAX, 0), (0, u64::MAX), (1 << 40, 0), (0, 1 << 40)] {
        let e = err(&B::header(3, n_tensors, n_kv));
        assert!(matches!(e, GgufError::Truncated { offset: 24, .. }), "{e}");
    }
}

#[test]
fn string_length_past_end() {
    let mut b = B::header(3, 0, 1);
    b.u64(1000).raw(b"abcdefghij");
    assert!(matches!(
        err(&b),
        GgufError::Truncated {
            offset: 32,
            needed: 1000,
            remaining: 10,
            ..
        }
    ));
    let mut b = B::header(3, 0, 1);
    b.u64(u64::MAX).zeros(16);
    assert!(matches!(err(&b), GgufError::Truncated { offset: 32, .. }));
    // A string value, not a key.
    let mut b = B::header(3, 0, 1);
    b.str("k").u32(T_STRING).u64(u64::MAX - 3);
    assert!(matches!(err(&b), GgufError::Truncated { offset: 45, .. }));
}

#[test]
fn array_counts_bounded_by_remaining_bytes() {
    // 1000 strings need at least 8000 bytes; only 100 follow.
    let mut b = B::header(3, 0, 1);
    b.str("k").u32(T_ARRAY).u32(T_STRING).u64(1000).zeros(100);
    let e = err(&b);
    assert!(
        matches!(
            e,
            GgufError::Truncated {
                offset: 49,
                needed: 8000,
                remaining: 100,
                ..
            }
        ),
        "{e}"
    );
    // Counts whose byte size overflows u64.
    for ty in [T_U8, T_U64, T_STRING, T_ARRAY] {
        let mut b = B::header(3, 0, 1);
        b.str("k").u32(T_ARRAY).u32(ty).u64(u64::MAX);
        assert!(matches!(err(&b), GgufError::Truncated { offset: 49, .. }));
    }
}

#[test]
fn unknown_value_types() {
    let mut b = B::header(3, 0, 1);
    b.str("k").u32(13).u32(0);
    assert!(matches!(
        err(&b),
        GgufError::UnknownValueType { ty: 13, offset: 33 }
    ));
    let mut b = B::header(3, 0, 1);
    b.str("k").u32(T_ARRAY).u32(0xdead_beef).u64(1).u32(0);
    assert!(matches!(
        err(&b),
        GgufError::UnknownValueType {
            ty: 0xdead_beef,
            offset: 37
        }
    ));
}

#[test]
fn invalid_bool() {
    let mut b = B::header(3, 0, 1);
    b.str("k").u32(T_BOOL).u8(2);
    assert!(matches!(
        err(&b),
        GgufError::InvalidBool {
            byte: 2,
            offset: 37
        }
    ));
}

#[test]
fn invalid_utf8() {
    // In a key: the bad byte is the third of the key, at 24 + 8 + 2.
    let mut b = B::header(3, 0, 1);
    b.u64(4).raw(b"ab\xffc").u32(T_U8).u8(0);
    assert!(matches!(err(&b), GgufError::InvalidUtf8 { offset: 34 }));
    // In a string value.
    let mut b = B::header(3, 0, 1);
    b.str("k").u32(T_STRING).u64(2).raw(b"\xc3(");
    assert!(matches!(err(&b), GgufError::InvalidUtf8 { offset: 45 }));
    // In a tensor name.
    let mut b = B::header(3, 1, 0);
    b.u64(1).raw(b"\x80").u32(1).u64(32).u32(F32).u64(0);
    assert!(matches!(err(&b), GgufError::InvalidUtf8 { offset: 32 }));
}

#[test]
fn duplicate_key() {
    let mut b = B::header(3, 0, 2);
    b.kv_u32("a.b", 1);
    let second = b.len();
    b.kv_u32("a.b", 2);
    assert!(
        matches!(err(&b), GgufError::DuplicateKey { ref key, offset } if key == "a.b" && offset == second)
    );
}

fn nested(depth: usize) -> B {
    let mut b = B::header(3, 0, 1);
    b.str("k").u32(T_ARRAY);
    for _ in 1..depth {
        b.u32(T_ARRAY).u64(1);
    }
    b.u32(T_U32).u64(1).u32(7);
    b
}

#[test]
fn nesting_depth_is_capped() {
    let f = nested(MAX_ARRAY_DEPTH).parse().unwrap();
    let mut v = f.metadata().get("k").unwrap().as_array().unwrap();
    for _ in 1..MAX_ARRAY_DEPTH {
        let Array::Array(inner) = v else {
            panic!("{v:?}")
        };
        v = &inner[0];
    }
    assert_eq!(v, &Array::U32(vec![7]));
    let e = err(&nested(MAX_ARRAY_DEPTH + 1));
    assert!(matches!(e, GgufError::NestingTooDeep { .. }), "{e}");
    // A deep claim with nothing behind it still fails cleanly.
    let mut b = B::header(3, 0, 1);
    b.str("k").u32(T_ARRAY);
    for _ in 0..10_000 {
        b.u32(T_ARRAY).u64(1);
    }
    assert!(matches!(err(&b), GgufError::NestingTooDeep { .. }));
}

fn with_alignment(value_type: u32, value: u64) -> B {
    let mut b = B::header(3, 0, 1);
    b.str("general.alignment").u32(value_type);
    if value_type == T_U64 {
        b.u64(value);
    } else {
        b.u32(value as u32);
    }
    b
}

#[test]
fn bad_alignment() {
    for a in [0, 3, 48, 0x8000_0001] {
        let e = err(&with_alignment(T_U32, a));
        assert!(
            matches!(e, GgufError::BadAlignment { alignment, offset: 24 } if alignment == a),
            "{e}"
        );
    }
    // llama.cpp and gguf-py require a u32.
    let e = err(&with_alignment(T_U64, 32));
    assert!(matches!(e, GgufError::WrongType { offset: 24, .. }), "{e}");
    // The largest power of two is legal when there are no tensors.
    let f = with_alignment(T_U32, 1 << 31).parse().unwrap();
    assert_eq!(f.data_offset(), 1 << 31);
}

fn one_tensor(dims: &[u64], ty: u32, offset: u64, data: usize) -> B {
    let mut b = B::header(3, 1, 0);
    b.tensor("t", dims, ty, offset).pad_to(32).zeros(data);
    b
}

#[test]
fn unknown_tensor_type() {
    let e = err(&one_tensor(&[32], 4, 0, 64)); // 4 = removed Q4_2
    assert!(
        matches!(
            e,
            GgufError::UnknownTensorType {
                ty: 4,
                offset: 45,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn too_many_dims() {
    let e = err(&one_tensor(&[1, 1, 1, 1, 1], F32, 0, 4));
    assert!(
        matches!(
            e,
            GgufError::TooManyDims {
                n_dims: 5,
                offset: 33,
                ..
            }
        ),
        "{e}"
    );
    let mut b = B::header(3, 1, 0);
    b.str("t").u32(u32::MAX).zeros(32);
    assert!(matches!(err(&b), GgufError::TooManyDims { .. }));
    // Four is fine; so is zero (a scalar).
    assert!(one_tensor(&[1, 1, 1, 2], F32, 0, 8).parse().is_ok());
    let f = one_tensor(&[], F32, 0, 4).parse().unwrap();
    assert_eq!(
        (f.tensors()[0].n_elements(), f.tensors()[0].n_bytes),
        (1, 4)
    );
}

#[test]
fn zero_dim() {
    let e = err(&one_tensor(&[4, 0], F32, 0, 16));
    assert!(
        matches!(
            e,
            GgufError::ZeroDim {
                axis: 1,
                offset: 45,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn shape_overflow() {
    // Element count overflows.
    let e = err(&one_tensor(&[1 << 32, 1 << 32, 2], F32, 0, 0));
    assert!(
        matches!(e, GgufError::ShapeOverflow { offset: 33, .. }),
        "{e}"
    );
    // Element count fits, byte size does not.
    let e = err(&one_tensor(&[1 << 62, 4], F32, 0, 0));
    assert!(matches!(e, GgufError::ShapeOverflow { .. }), "{e}");
    let e = err(&one_tensor(&[u64::MAX], F32, 0, 0));
    assert!(matches!(e, GgufError::ShapeOverflow { .. }), "{e}");
}

#[test]
fn row_must_be_whole_blocks() {
    let e = err(&one_tensor(&[33, 2], Q4_0, 0, 64));
    assert!(
        matches!(
            e,
            GgufError::PartialBlock {
                ne0: 33,
                block_size: 32,
                ty: GgmlType::Q4_0,
                offset: 33,
                ..
            }
        ),
        "{e}"
    );
    // 32 elements of Q4_0 is one 18-byte block.
    let f = one_tensor(&[32, 2], Q4_0, 0, 36).parse().unwrap();
    assert_eq!(f.tensors()[0].n_bytes, 36);
}

#[test]
fn misaligned_tensor() {
    let e = err(&one_tensor(&[4], F32, 4, 64));
    assert!(
        matches!(
            e,
            GgufError::MisalignedTensor {
                data_offset: 4,
                alignment: 32,
                offset: 24,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn tensor_past_end() {
    // 16 bytes of data, 17 floats claimed.
    let e = err(&one_tensor(&[17], F32, 0, 64));
    assert!(
        matches!(
            e,
            GgufError::TensorOutOfBounds {
                start: 64,
                end: 132,
                file_len: 128,
                offset: 24,
                ..
            }
        ),
        "{e}"
    );
    // Offset so large that start + size overflows.
    let e = err(&one_tensor(&[4], F32, u64::MAX - 31, 64));
    assert!(matches!(e, GgufError::TensorOutOfBounds { .. }), "{e}");
    // Exactly filling the file is fine.
    assert!(one_tensor(&[16], F32, 0, 64).parse().is_ok());
}

#[test]
fn overlapping_tensors() {
    let mut b = B::header(3, 2, 0);
    b.tensor("a", &[16], F32, 0)
        .tensor("b", &[8], F32, 32)
        .pad_to(32)
        .zeros(128);
    let e = err(&b);
    assert!(
        matches!(e, GgufError::TensorOverlap { ref name, ref other, .. } if name == "b" && other == "a"),
        "{e}"
    );
    // Listed out of order but disjoint is fine.
    let mut b = B::header(3, 2, 0);
    b.tensor("a", &[8], F32, 32)
        .tensor("b", &[8], F32, 0)
        .pad_to(32)
        .zeros(64);
    let f = b.parse().unwrap();
    assert_eq!(f.tensors()[0].name, "a"); // file order kept
}

#[test]
fn duplicate_tensor_name() {
    let mut b = B::header(3, 2, 0);
    b.tensor("a", &[8], F32, 0);
    let second = b.len();
    b.tensor("a", &[8], F32, 32).pad_to(32).zeros(64);
    assert!(
        matches!(err(&b), GgufError::DuplicateTensor { ref name, offset } if name == "a" && offset == second)
    );
}

fn metadata_file() -> GgufFile {
    let mut b = B::header(3, 0, 9);
    b.kv_u32("u32", 7)
        .str("neg")
        .u32(T_I32)
        .u32((-3i32) as u32)
        .str("big")
        .u32(T_U64)
        .u64(1 << 40)
        .str("f64")
        .u32(T_F64)
        .u64(0.25f64.to_bits())
        .str("f32")
        .u32(T_F32)
        .u32(1.5f32.to_bits())
        .str("flag")
        .u32(T_BOOL)
        .u8(1)
        .str("name")
        .u32(T_STRING)
        .str("qwen2")
        .str("heads")
        .u32(T_ARRAY)
        .u32(T_I32)
        .u64(3)
        .u32(14)
        .u32(14)
        .u32(2)
        .str("bad_heads")
        .u32(T_ARRAY)
        .u32(T_I32)
        .u64(2)
        .u32(1)
        .u32(u32::MAX);
    b.parse().unwrap()
}

#[test]
fn typed_getters() {
    let f = metadata_file();
    let md = f.metadata();
    assert_eq!(md.len(), 9);
    assert_eq!(md.iter().next().unwrap().0, "u32");
    assert_eq!(md.get_u32("u32").unwrap(), 7);
    assert_eq!(md.get_u64("u32").unwrap(), 7);
    assert_eq!(md.get_i64("neg").unwrap(), -3);
    assert_eq!(md.get_u64("big").unwrap(), 1 << 40);
    assert_eq!(md.get_f32("f32").unwrap(), 1.5);
    assert_eq!(md.get_f32("f64").unwrap(), 0.25);
    assert!(md.get_bool("flag").unwrap());
    assert_eq!(md.get_str("name").unwrap(), "qwen2");
    assert_eq!(md.get_i32_array("heads").unwrap(), &[14, 14, 2]);
    assert_eq!(md.get_u32_or_i32_array("heads").unwrap(), vec![14, 14, 2]);
    assert_eq!(md.get_per_layer_u32("heads", 3).unwrap(), vec![14, 14, 2]);
    assert_eq!(md.get_per_layer_u32("u32", 2).unwrap(), vec![7, 7]);

    assert!(matches!(md.get_u32("nope"), Err(GgufError::MissingKey { ref key }) if key == "nope"));
    // Out of range for the requested type: an error, not a wrap.
    assert!(matches!(
        md.get_u32("neg"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(matches!(
        md.get_u32("big"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(matches!(
        md.get_u32_or_i32_array("bad_heads"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(matches!(
        md.get_per_layer_u32("heads", 4),
        Err(GgufError::WrongType { .. })
    ));
    let e = md.get_str("u32").unwrap_err();
    assert!(
        matches!(e, GgufError::WrongType { ref key, expected: "string", ref found, offset: 24 }
        if key == "u32" && found == "u32"),
        "{e}"
    );
    assert!(e.to_string().contains("\"u32\""));
    assert!(matches!(
        md.get_f32("u32"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(matches!(
        md.get_bool("u32"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(matches!(
        md.get_str_array("heads"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(matches!(
        md.get_f32_array("heads"),
        Err(GgufError::WrongType { .. })
    ));

    assert_eq!(md.opt_u32("nope").unwrap(), None);
    assert_eq!(md.opt_u32("u32").unwrap(), Some(7));
    assert_eq!(md.opt_f32("f32").unwrap(), Some(1.5));
    assert_eq!(md.opt_bool("flag").unwrap(), Some(true));
    assert_eq!(md.opt_str("name").unwrap(), Some("qwen2"));
    assert_eq!(md.opt_str("missing").unwrap(), None);
    assert!(md.opt_str("u32").is_err());
    assert!(md.opt_bool("name").is_err());
}

#[test]
fn display_is_short() {
    let tokens = Value::Array(Array::String(vec!["a".into(); 49152]));
    assert_eq!(tokens.to_string(), "[49152 strings]");
    assert_eq!(Value::Array(Array::I32(vec![1, 2])).to_string(), "[1, 2]");
    assert_eq!(
        Value::Array(Array::F32(vec![0.0; 9])).to_string(),
        "[9 f32]"
    );
    assert_eq!(Value::String("hi\n".into()).to_string(), "\"hi\\n\"");
    let long = Value::String("é".repeat(100));
    let s = long.to_string();
    assert!(s.ends_with("(200 bytes)") && s.len() < 120, "{s}");
    assert_eq!(Value::U32(9).to_string(), "9");
    assert_eq!(tokens.type_name(), "array[string]");
    let f = metadata_file();
    let dbg = format!("{:?}", f.metadata());
    assert!(dbg.contains("\"heads\": [14, 14, 2]"), "{dbg}");
}
