//! Metadata values (`gguf_type` in gguf.h) and how they are read.

use std::fmt;

use crate::GgufError;
use crate::cursor::Cursor;

/// Arrays of arrays are legal in GGUF but no model uses more than one level; the cap
/// keeps a hostile file from recursing without bound.
pub const MAX_ARRAY_DEPTH: usize = 4;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Array),
}

/// A metadata array: GGUF arrays are homogeneous, so each variant holds one element type.
#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<Array>),
}

/// On-disk value type ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    fn from_u32(ty: u32) -> Option<Self> {
        use ValueType::*;
        Some(match ty {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The fewest bytes one value of this type occupies on disk (a string is at least its
    /// length field; an array at least its type and count).
    fn min_size(self) -> u64 {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | String => 8,
            Array => 4 + 8,
        }
    }

    pub(crate) fn read(c: &mut Cursor<'_>) -> Result<Self, GgufError> {
        let offset = c.pos();
        let ty = c.u32("value type")?;
        ValueType::from_u32(ty).ok_or(GgufError::UnknownValueType { ty, offset })
    }
}

fn read_bool(c: &mut Cursor<'_>) -> Result<bool, GgufError> {
    let offset = c.pos();
    match c.u8("bool")? {
        0 => Ok(false),
        1 => Ok(true),
        byte => Err(GgufError::InvalidBool { byte, offset }),
    }
}

/// Reads one value of type `ty`; `depth` counts enclosing arrays.
pub(crate) fn read_value(
    c: &mut Cursor<'_>,
    ty: ValueType,
    depth: usize,
) -> Result<Value, GgufError> {
    Ok(match ty {
        ValueType::U8 => Value::U8(c.u8("u8")?),
        ValueType::I8 => Value::I8(c.u8("i8")? as i8),
        ValueType::U16 => Value::U16(c.u16("u16")?),
        ValueType::I16 => Value::I16(c.u16("i16")? as i16),
        ValueType::U32 => Value::U32(c.u32("u32")?),
        ValueType::I32 => Value::I32(c.u32("i32")? as i32),
        ValueType::U64 => Value::U64(c.u64("u64")?),
        ValueType::I64 => Value::I64(c.u64("i64")? as i64),
        ValueType::F32 => Value::F32(f32::from_bits(c.u32("f32")?)),
        ValueType::F64 => Value::F64(f64::from_bits(c.u64("f64")?)),
        ValueType::Bool => Value::Bool(read_bool(c)?),
        ValueType::String => Value::String(c.string("string")?),
        ValueType::Array => Value::Array(read_array(c, depth + 1)?),
    })
}

/// Reads `n` elements with `f` after checking the file holds at least `n * min_size`
/// bytes, so the `Vec` is never larger than a constant times the file.
fn read_n<T>(
    c: &mut Cursor<'_>,
    n: u64,
    min_size: u64,
    mut f: impl FnMut(&mut Cursor<'_>) -> Result<T, GgufError>,
) -> Result<Vec<T>, GgufError> {
    c.require_n(n, min_size, "array elements")?;
    let mut v = Vec::with_capacity(n as usize);
    for _ in 0..n {
        v.push(f(c)?);
    }
    Ok(v)
}

/// Reads an array body (element type, count, elements); `depth` is this array's nesting
/// level, 1 for an array directly under a key.
pub(crate) fn read_array(c: &mut Cursor<'_>, depth: usize) -> Result<Array, GgufError> {
    if depth > MAX_ARRAY_DEPTH {
        return Err(GgufError::NestingTooDeep {
            max: MAX_ARRAY_DEPTH,
            offset: c.pos(),
        });
    }
    let ty = ValueType::read(c)?;
    let n = c.u64("array length")?;
    let m = ty.min_size();
    Ok(match ty {
        ValueType::U8 => Array::U8(read_n(c, n, m, |c| c.u8("u8"))?),
        ValueType::I8 => Array::I8(read_n(c, n, m, |c| Ok(c.u8("i8")? as i8))?),
        ValueType::U16 => Array::U16(read_n(c, n, m, |c| c.u16("u16"))?),
        ValueType::I16 => Array::I16(read_n(c, n, m, |c| Ok(c.u16("i16")? as i16))?),
        ValueType::U32 => Array::U32(read_n(c, n, m, |c| c.u32("u32"))?),
        ValueType::I32 => Array::I32(read_n(c, n, m, |c| Ok(c.u32("i32")? as i32))?),
        ValueType::U64 => Array::U64(read_n(c, n, m, |c| c.u64("u64"))?),
        ValueType::I64 => Array::I64(read_n(c, n, m, |c| Ok(c.u64("i64")? as i64))?),
        ValueType::F32 => Array::F32(read_n(c, n, m, |c| Ok(f32::from_bits(c.u32("f32")?)))?),
        ValueType::F64 => Array::F64(read_n(c, n, m, |c| Ok(f64::from_bits(c.u64("f64")?)))?),
        ValueType::Bool => Array::Bool(read_n(c, n, m, read_bool)?),
        ValueType::String => Array::String(read_n(c, n, m, |c| c.string("string"))?),
        ValueType::Array => Array::Array(read_n(c, n, m, |c| read_array(c, depth + 1))?),
    })
}

impl Value {
    /// The GGUF type name ("u32", "string", "array[string]", ...), for messages.
    pub fn type_name(&self) -> String {
        match self {
            Value::U8(_) => "u8".into(),
            Value::I8(_) => "i8".into(),
            Value::U16(_) => "u16".into(),
            Value::I16(_) => "i16".into(),
            Value::U32(_) => "u32".into(),
            Value::I32(_) => "i32".into(),
            Value::U64(_) => "u64".into(),
            Value::I64(_) => "i64".into(),
            Value::F32(_) => "f32".into(),
            Value::F64(_) => "f64".into(),
            Value::Bool(_) => "bool".into(),
            Value::String(_) => "string".into(),
            Value::Array(a) => format!("array[{}]", a.elem_type_name()),
        }
    }

    /// The value as an integer, if it is one of the integer types.
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return None,
        })
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

impl Array {
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::F64(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::String(v) => v.len(),
            Array::Array(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type name ("string", "i32", "array").
    pub fn elem_type_name(&self) -> &'static str {
        match self {
            Array::U8(_) => "u8",
            Array::I8(_) => "i8",
            Array::U16(_) => "u16",
            Array::I16(_) => "i16",
            Array::U32(_) => "u32",
            Array::I32(_) => "i32",
            Array::U64(_) => "u64",
            Array::I64(_) => "i64",
            Array::F32(_) => "f32",
            Array::F64(_) => "f64",
            Array::Bool(_) => "bool",
            Array::String(_) => "string",
            Array::Array(_) => "array",
        }
    }

    /// Element `i` as an integer, if the array holds integers.
    pub fn int_at(&self, i: usize) -> Option<i128> {
        Some(match self {
            Array::U8(v) => (*v.get(i)?).into(),
            Array::I8(v) => (*v.get(i)?).into(),
            Array::U16(v) => (*v.get(i)?).into(),
            Array::I16(v) => (*v.get(i)?).into(),
            Array::U32(v) => (*v.get(i)?).into(),
            Array::I32(v) => (*v.get(i)?).into(),
            Array::U64(v) => (*v.get(i)?).into(),
            Array::I64(v) => (*v.get(i)?).into(),
            _ => return None,
        })
    }
}

/// Strings longer than this are cut in `Display` so `inspect` stays readable.
const DISPLAY_STR_MAX: usize = 80;
/// Arrays up to this length are printed element by element.
const DISPLAY_ARRAY_MAX: usize = 8;

fn fmt_str(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    if s.len() <= DISPLAY_STR_MAX {
        return write!(f, "{:?}", s);
    }
    let mut cut = DISPLAY_STR_MAX;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    write!(f, "{:?}... ({} bytes)", &s[..cut], s.len())
}

fn fmt_list<T: fmt::Debug>(f: &mut fmt::Formatter<'_>, v: &[T], name: &str) -> fmt::Result {
    if v.len() > DISPLAY_ARRAY_MAX {
        return write!(f, "[{} {}]", v.len(), name);
    }
    f.write_str("[")?;
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{:?}", x)?;
    }
    f.write_str("]")
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::U8(v) => write!(f, "{v}"),
            Value::I8(v) => write!(f, "{v}"),
            Value::U16(v) => write!(f, "{v}"),
            Value::I16(v) => write!(f, "{v}"),
            Value::U32(v) => write!(f, "{v}"),
            Value::I32(v) => write!(f, "{v}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::F32(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::String(s) => fmt_str(f, s),
            Value::Array(a) => write!(f, "{a}"),
        }
    }
}

impl fmt::Display for Array {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Array::U8(v) => fmt_list(f, v, "u8"),
            Array::I8(v) => fmt_list(f, v, "i8"),
            Array::U16(v) => fmt_list(f, v, "u16"),
            Array::I16(v) => fmt_list(f, v, "i16"),
            Array::U32(v) => fmt_list(f, v, "u32"),
            Array::I32(v) => fmt_list(f, v, "i32"),
            Array::U64(v) => fmt_list(f, v, "u64"),
            Array::I64(v) => fmt_list(f, v, "i64"),
            Array::F32(v) => fmt_list(f, v, "f32"),
            Array::F64(v) => fmt_list(f, v, "f64"),
            Array::Bool(v) => fmt_list(f, v, "bools"),
            Array::String(v) if v.len() <= DISPLAY_ARRAY_MAX && v.iter().all(|s| s.len() <= 32) => {
                fmt_list(f, v, "strings")
            }
            Array::String(v) => write!(f, "[{} strings]", v.len()),
            Array::Array(v) => write!(f, "[{} arrays]", v.len()),
        }
    }
}
