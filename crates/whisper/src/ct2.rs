//! The CTranslate2 `model.bin` reader.
//!
//! The layout (CTranslate2's `ModelSpec._serialize`, binary version 6): a u32 version, the
//! spec name, a u32 revision, a u32 variable count, then for each variable its name, a u8
//! rank, that many u32 dimensions, a u8 data type, a u32 byte count and the bytes; then a
//! u32 alias count and (alias, target) name pairs. Strings are a u16 length (counting a
//! trailing NUL) and the bytes. Everything is little-endian.
//!
//! Written by hand: no crate reads this format. Like the GGUF reader, every count, length
//! and shape is checked against the bytes that are actually there before anything is
//! allocated or sliced, so a truncated or hostile file gives an error, never a panic or a
//! huge allocation.

use half::{bf16, f16};
use std::collections::BTreeMap;
use std::path::Path;

/// Binary versions this reader understands (5 and 6 share the layout above).
const VERSIONS: std::ops::RangeInclusive<u32> = 5..=6;
const MAX_RANK: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum Ct2Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("model.bin: {0}")]
    Format(String),
    #[error("model.bin: no variable {0:?}")]
    Missing(String),
    #[error("model.bin: variable {name:?} is {what}")]
    Unexpected { name: String, what: String },
}

fn bad(msg: impl Into<String>) -> Ct2Error {
    Ct2Error::Format(msg.into())
}

/// CTranslate2's `DataType` codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl DType {
    fn from_code(c: u8) -> Option<DType> {
        Some(match c {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            _ => return None,
        })
    }
    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

/// One variable: where its bytes are in the file.
#[derive(Clone, Debug)]
pub struct Variable {
    pub shape: Vec<usize>,
    pub dtype: DType,
    offset: usize,
    len: usize,
}

/// An opened `model.bin`.
pub struct Ct2File {
    bytes: Bytes,
    pub version: u32,
    pub spec: String,
    pub revision: u32,
    vars: BTreeMap<String, Variable>,
    aliases: BTreeMap<String, String>,
}

impl std::fmt::Debug for Ct2File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ct2File")
            .field("version", &self.version)
            .field("spec", &self.spec)
            .field("revision", &self.revision)
            .field("variables", &self.vars.len())
            .field("aliases", &self.aliases.len())
            .finish()
    }
}

enum Bytes {
    Map(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Map(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Ct2Error> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let Some(end) = end else {
            return Err(bad(format!(
                "truncated: {what} needs {n} bytes at offset {}, the file has {}",
                self.at,
                self.b.len()
            )));
        };
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self, what: &str) -> Result<u8, Ct2Error> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, Ct2Error> {
        let s = self.take(2, what)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32, Ct2Error> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn string(&mut self, what: &str) -> Result<String, Ct2Error> {
        let n = self.u16(what)? as usize;
        let s = self.take(n, what)?;
        let s = s.strip_suffix(&[0]).unwrap_or(s);
        String::from_utf8(s.to_vec()).map_err(|_| bad(format!("{what} is not UTF-8")))
    }
}

impl Ct2File {
    /// Opens and checks a `model.bin` (memory-mapped).
    pub fn open(path: &Path) -> Result<Ct2File, Ct2Error> {
        let io = |source| Ct2Error::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and private to this reader; a file truncated under
        // us while mapped is the usual mmap caveat, shared with the GGUF reader.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::parse(Bytes::Map(map))
    }

    /// Parses a `model.bin` held in memory (tests, fuzzing).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Ct2File, Ct2Error> {
        Self::parse(Bytes::Owned(bytes))
    }

    fn parse(bytes: Bytes) -> Result<Ct2File, Ct2Error> {
        let mut c = Cursor { b: &bytes, at: 0 };
        let version = c.u32("the version")?;
        if !VERSIONS.contains(&version) {
            return Err(bad(format!(
                "binary version {version} is not supported (this reader knows {}..={})",
                VERSIONS.start(),
                VERSIONS.end()
            )));
        }
        let spec = c.string("the spec name")?;
        let revision = c.u32("the spec revision")?;
        let n = c.u32("the variable count")? as usize;
        // Each variable takes at least 2 + 1 + 1 + 4 bytes: a count beyond that is a lie.
        if n > bytes.len() / 8 {
            return Err(bad(format!(
                "{n} variables cannot fit in {} bytes",
                bytes.len()
            )));
        }
        let mut vars = BTreeMap::new();
        for _ in 0..n {
            let name = c.string("a variable name")?;
            let rank = c.u8("a rank")? as usize;
            if rank > MAX_RANK {
                return Err(bad(format!("{name:?} has rank {rank}")));
            }
            let mut shape = Vec::with_capacity(rank);
            for _ in 0..rank {
                shape.push(c.u32("a dimension")? as usize);
            }
            let code = c.u8("a data type")?;
            let dtype = DType::from_code(code)
                .ok_or_else(|| bad(format!("{name:?} has unknown data type {code}")))?;
            let len = c.u32("a byte count")? as usize;
            let elems = shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .and_then(|e| e.checked_mul(dtype.size()));
            if elems != Some(len) {
                return Err(bad(format!(
                    "{name:?}: shape {shape:?} of {dtype:?} does not make {len} bytes"
                )));
            }
            let offset = c.at;
            c.take(len, "variable data")?;
            if vars
                .insert(
                    name.clone(),
                    Variable {
                        shape,
                        dtype,
                        offset,
                        len,
                    },
                )
                .is_some()
            {
                return Err(bad(format!("variable {name:?} appears twice")));
            }
        }
        // The alias table ends every file of these versions (CTranslate2 writes it from
        // version 3 on, empty or not).
        let mut aliases = BTreeMap::new();
        let n = c.u32("the alias count")? as usize;
        if n > bytes.len() / 4 {
            return Err(bad(format!("{n} aliases cannot fit in the file")));
        }
        for _ in 0..n {
            let alias = c.string("an alias")?;
            let target = c.string("an alias target")?;
            if !vars.contains_key(&target) {
                return Err(bad(format!(
                    "alias {alias:?} names no variable ({target:?})"
                )));
            }
            aliases.insert(alias, target);
        }
        if c.at != bytes.len() {
            return Err(bad(format!(
                "{} unexplained bytes at the end",
                bytes.len() - c.at
            )));
        }
        Ok(Ct2File {
            bytes,
            version,
            spec,
            revision,
            vars,
            aliases,
        })
    }

    /// The variable called `name` (or the one an alias of that name points to).
    pub fn var(&self, name: &str) -> Result<&Variable, Ct2Error> {
        let name = self.aliases.get(name).map_or(name, String::as_str);
        self.vars
            .get(name)
            .ok_or_else(|| Ct2Error::Missing(name.to_string()))
    }

    pub fn has(&self, name: &str) -> bool {
        self.var(name).is_ok()
    }

    /// All variable names, sorted (aliases not included).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }

    /// A variable's raw bytes.
    pub fn bytes_of(&self, v: &Variable) -> &[u8] {
        &self.bytes[v.offset..v.offset + v.len]
    }

    /// A floating-point variable as f32 values, with its shape checked against `shape`.
    pub fn f32s(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, Ct2Error> {
        let v = self.var(name)?;
        if v.shape != shape {
            return Err(Ct2Error::Unexpected {
                name: name.into(),
                what: format!("of shape {:?}, expected {shape:?}", v.shape),
            });
        }
        let b = self.bytes_of(v);
        Ok(match v.dtype {
            DType::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => b
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            DType::BF16 => b
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(Ct2Error::Unexpected {
                    name: name.into(),
                    what: format!(
                        "{other:?}, not floating point (quantized CTranslate2 models are not read; quantize to GGUF instead)"
                    ),
                });
            }
        })
    }

    /// An integer scalar (rank 0) variable.
    pub fn int(&self, name: &str) -> Result<i64, Ct2Error> {
        let v = self.var(name)?;
        let b = self.bytes_of(v);
        if !v.shape.is_empty() {
            return Err(Ct2Error::Unexpected {
                name: name.into(),
                what: format!("of shape {:?}, not a scalar", v.shape),
            });
        }
        Ok(match v.dtype {
            DType::I8 => i64::from(b[0] as i8),
            DType::I16 => i64::from(i16::from_le_bytes([b[0], b[1]])),
            DType::I32 => i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            other => {
                return Err(Ct2Error::Unexpected {
                    name: name.into(),
                    what: format!("a {other:?} scalar, expected an integer"),
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u16 + 1).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    /// A small valid file: a 2x3 F16 matrix, an int16 scalar and one alias.
    fn valid() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&6u32.to_le_bytes());
        string(&mut b, "WhisperSpec");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        string(&mut b, "w");
        b.push(2);
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&3u32.to_le_bytes());
        b.push(4);
        b.extend_from_slice(&12u32.to_le_bytes());
        for v in [1.0f32, -2.0, 0.5, 3.0, 0.0, -0.25] {
            b.extend_from_slice(&f16::from_f32(v).to_le_bytes());
        }
        string(&mut b, "heads");
        b.push(0);
        b.push(2);
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&6i16.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        string(&mut b, "tied");
        string(&mut b, "w");
        b
    }

    #[test]
    fn reads_variables_scalars_and_aliases() {
        let f = Ct2File::from_bytes(valid()).unwrap();
        assert_eq!(
            (f.version, f.spec.as_str(), f.revision),
            (6, "WhisperSpec", 3)
        );
        assert_eq!(
            f.f32s("w", &[2, 3]).unwrap(),
            [1.0, -2.0, 0.5, 3.0, 0.0, -0.25]
        );
        assert_eq!(f.f32s("tied", &[2, 3]).unwrap()[3], 3.0);
        assert_eq!(f.int("heads").unwrap(), 6);
        assert!(matches!(
            f.f32s("w", &[3, 2]),
            Err(Ct2Error::Unexpected { .. })
        ));
        assert!(matches!(f.f32s("nope", &[1]), Err(Ct2Error::Missing(_))));
        assert!(matches!(f.int("w"), Err(Ct2Error::Unexpected { .. })));
    }

    /// Every truncation of a valid file is an error, never a panic.
    #[test]
    fn every_truncation_is_an_error() {
        let b = valid();
        for n in 0..b.len() {
            assert!(
                Ct2File::from_bytes(b[..n].to_vec()).is_err(),
                "truncated to {n} bytes"
            );
        }
    }

    #[test]
    fn hostile_fields_are_errors() {
        let b = valid();
        let expect_err = |mut v: Vec<u8>, at: usize, bytes: &[u8], what: &str| {
            v[at..at + bytes.len()].copy_from_slice(bytes);
            let e = Ct2File::from_bytes(v)
                .err()
                .unwrap_or_else(|| panic!("{what} accepted"));
            e.to_string()
        };
        assert!(expect_err(b.clone(), 0, &99u32.to_le_bytes(), "version").contains("version 99"));
        // The variable count (after version 4 + name 2+12 + revision 4).
        let count_at = 22;
        assert!(
            expect_err(b.clone(), count_at, &u32::MAX.to_le_bytes(), "count")
                .contains("cannot fit")
        );
        // w's rank, its dtype code and its byte count.
        let rank_at = count_at + 4 + 2 + 2;
        assert!(expect_err(b.clone(), rank_at, &[200], "rank").contains("rank 200"));
        let dtype_at = rank_at + 1 + 8;
        assert!(expect_err(b.clone(), dtype_at, &[9], "dtype").contains("unknown data type"));
        assert!(
            expect_err(b.clone(), dtype_at + 1, &u32::MAX.to_le_bytes(), "size")
                .contains("does not make")
        );
        // A dimension so large the element count overflows.
        assert!(
            expect_err(b.clone(), rank_at + 1, &u32::MAX.to_le_bytes(), "dims")
                .contains("does not make")
        );
        // Trailing garbage, and an alias to a missing variable.
        let mut v = b.clone();
        v.push(0);
        assert!(Ct2File::from_bytes(v).is_err());
        let mut v = b.clone();
        let n = v.len();
        v[n - 2] = b'x';
        assert!(
            Ct2File::from_bytes(v)
                .unwrap_err()
                .to_string()
                .contains("names no variable")
        );
    }
}
