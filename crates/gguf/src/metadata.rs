//! The key/value section: file order kept for `inspect`, hash lookup for loaders, and
//! typed getters whose errors name the key.

use std::collections::HashMap;

use crate::GgufError;
use crate::cursor::Cursor;
use crate::value::{Array, Value, ValueType, read_value};

struct Entry {
    key: String,
    value: Value,
    /// File offset where the key/value pair starts (its key length), for error messages.
    offset: u64,
}

/// The file's metadata, in file order, with O(1) lookup by key.
#[derive(Default)]
pub struct Metadata {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
}

/// Smallest possible key/value pair on disk: key length, value type, one-byte value.
const MIN_KV_SIZE: u64 = 8 + 4 + 1;

impl Metadata {
    pub(crate) fn read(c: &mut Cursor<'_>, n_kv: u64) -> Result<Metadata, GgufError> {
        c.require_n(n_kv, MIN_KV_SIZE, "metadata key/value pairs")?;
        let mut md = Metadata {
            entries: Vec::with_capacity(n_kv as usize),
            index: HashMap::with_capacity(n_kv as usize),
        };
        for _ in 0..n_kv {
            let offset = c.pos();
            let key = c.string("metadata key")?;
            let ty = ValueType::read(c)?;
            let value = read_value(c, ty, 0)?;
            if md.index.contains_key(&key) {
                return Err(GgufError::DuplicateKey { key, offset });
            }
            md.index.insert(key.clone(), md.entries.len());
            md.entries.push(Entry { key, value, offset });
        }
        Ok(md)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index.get(key).map(|&i| &self.entries[i].value)
    }

    /// File offset where the key/value pair for `key` starts.
    pub fn offset_of(&self, key: &str) -> Option<u64> {
        self.index.get(key).map(|&i| self.entries[i].offset)
    }

    /// Key/value pairs in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|e| (e.key.as_str(), &e.value))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    fn entry(&self, key: &str) -> Result<&Entry, GgufError> {
        match self.index.get(key) {
            Some(&i) => Ok(&self.entries[i]),
            None => Err(GgufError::MissingKey { key: key.into() }),
        }
    }

    fn wrong(e: &Entry, expected: &'static str) -> GgufError {
        GgufError::WrongType {
            key: e.key.clone(),
            expected,
            found: e.value.type_name(),
            offset: e.offset,
        }
    }

    /// Any integer value converted to `T`, or WrongType if it is not an integer or does not
    /// fit (a negative head count must not silently wrap).
    fn get_int<T: TryFrom<i128>>(&self, key: &str, expected: &'static str) -> Result<T, GgufError> {
        let e = self.entry(key)?;
        let Some(v) = e.value.as_i128() else {
            return Err(Self::wrong(e, expected));
        };
        T::try_from(v).map_err(|_| GgufError::WrongType {
            key: e.key.clone(),
            expected,
            found: format!("{} {} (out of range)", e.value.type_name(), v),
            offset: e.offset,
        })
    }

    pub fn get_u32(&self, key: &str) -> Result<u32, GgufError> {
        self.get_int(key, "u32")
    }

    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.get_int(key, "u64")
    }

    pub fn get_i64(&self, key: &str) -> Result<i64, GgufError> {
        self.get_int(key, "i64")
    }

    /// An F32 value, or an F64 narrowed to f32.
    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        let e = self.entry(key)?;
        match e.value {
            Value::F32(v) => Ok(v),
            Value::F64(v) => Ok(v as f32),
            _ => Err(Self::wrong(e, "f32")),
        }
    }

    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        let e = self.entry(key)?;
        match e.value {
            Value::Bool(v) => Ok(v),
            _ => Err(Self::wrong(e, "bool")),
        }
    }

    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        let e = self.entry(key)?;
        e.value.as_str().ok_or_else(|| Self::wrong(e, "string"))
    }

    pub fn get_array(&self, key: &str) -> Result<&Array, GgufError> {
        let e = self.entry(key)?;
        e.value.as_array().ok_or_else(|| Self::wrong(e, "array"))
    }

    pub fn get_str_array(&self, key: &str) -> Result<&[String], GgufError> {
        let e = self.entry(key)?;
        match &e.value {
            Value::Array(Array::String(v)) => Ok(v),
            _ => Err(Self::wrong(e, "array[string]")),
        }
    }

    pub fn get_f32_array(&self, key: &str) -> Result<&[f32], GgufError> {
        let e = self.entry(key)?;
        match &e.value {
            Value::Array(Array::F32(v)) => Ok(v),
            _ => Err(Self::wrong(e, "array[f32]")),
        }
    }

    pub fn get_i32_array(&self, key: &str) -> Result<&[i32], GgufError> {
        let e = self.entry(key)?;
        match &e.value {
            Value::Array(Array::I32(v)) => Ok(v),
            _ => Err(Self::wrong(e, "array[i32]")),
        }
    }

    /// An array of any integer type whose elements all fit in u32 (converters write
    /// per-layer counts as i32 or u32 depending on version).
    pub fn get_u32_or_i32_array(&self, key: &str) -> Result<Vec<u32>, GgufError> {
        let e = self.entry(key)?;
        let expected = "array of u32 or i32";
        let Value::Array(a) = &e.value else {
            return Err(Self::wrong(e, expected));
        };
        let mut out = Vec::with_capacity(a.len());
        for i in 0..a.len() {
            let v = a.int_at(i).ok_or_else(|| Self::wrong(e, expected))?;
            let v = u32::try_from(v).map_err(|_| GgufError::WrongType {
                key: e.key.clone(),
                expected,
                found: format!("{} with element {i} = {v}", e.value.type_name()),
                offset: e.offset,
            })?;
            out.push(v);
        }
        Ok(out)
    }

    /// A per-layer count stored either as one integer (same for every layer) or as an
    /// array of `n_layer` integers, as llama.cpp accepts for e.g. `attention.head_count`.
    pub fn get_per_layer_u32(&self, key: &str, n_layer: usize) -> Result<Vec<u32>, GgufError> {
        let e = self.entry(key)?;
        if let Value::Array(a) = &e.value {
            if a.len() != n_layer {
                return Err(GgufError::WrongType {
                    key: e.key.clone(),
                    expected: "one value per layer",
                    found: format!(
                        "{} of length {} for {n_layer} layers",
                        e.value.type_name(),
                        a.len()
                    ),
                    offset: e.offset,
                });
            }
            return self.get_u32_or_i32_array(key);
        }
        Ok(vec![self.get_u32(key)?; n_layer])
    }

    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>, GgufError> {
        self.opt(key, Self::get_u32)
    }

    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, GgufError> {
        self.opt(key, Self::get_u64)
    }

    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>, GgufError> {
        self.opt(key, Self::get_f32)
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        self.opt(key, Self::get_bool)
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        self.opt(key, Self::get_str)
    }

    fn opt<'a, T>(
        &'a self,
        key: &str,
        get: impl FnOnce(&'a Self, &str) -> Result<T, GgufError>,
    ) -> Result<Option<T>, GgufError> {
        if self.contains_key(key) {
            get(self, key).map(Some)
        } else {
            Ok(None)
        }
    }
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Display, not Debug, for values: a vocab would print a quarter-million strings.
        struct Shown<'a>(&'a Value);
        impl std::fmt::Debug for Shown<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (k, Shown(v))))
            .finish()
    }
}
