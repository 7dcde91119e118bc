//! `GgufFile`: header parsing, layout validation, and access to the mapped bytes.

use std::collections::HashMap;
use std::path::Path;

use crate::cursor::Cursor;
use crate::metadata::Metadata;
use crate::tensor::{RawTensor, TensorInfo, read_tensor_infos};
use crate::{GgufError, keys};

/// "GGUF" as the first four bytes.
const MAGIC: &[u8; 4] = b"GGUF";
/// Alignment of the data section and of every tensor when general.alignment is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Alignment of an owned buffer's start. A map starts on a page, so a tensor at a file
/// offset that is a multiple of the file's alignment is equally aligned in memory; an owned
/// buffer starting on 64 bytes gives the same guarantee up to 64, so kernels can cast
/// tensor bytes to `&[f32]` (or load SIMD vectors) whichever way the file was opened.
const OWNED_ALIGN: usize = 64;

#[derive(Clone, Copy, bytemuck::Zeroable, bytemuck::Pod)]
#[repr(C, align(64))]
struct Chunk([u8; OWNED_ALIGN]);

enum Bytes {
    Mmap(memmap2::Mmap),
    Resident(memmap2::MmapMut, Residency),
    Owned { chunks: Vec<Chunk>, len: usize },
}

/// Where a file's bytes live and how they got there, for reporting: on a phone or a board
/// the fast path (transparent huge pages, direct I/O) may be missing or refused, and loading
/// falls back quietly, so the user is told which path it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Residency {
    /// A read-only map of the file (page-cache pages).
    Mapped,
    /// Read into anonymous memory ([`GgufFile::open_resident`]).
    Resident {
        /// The kernel accepted the advice to back the memory with transparent huge pages
        /// (`madvise(MADV_HUGEPAGE)`). Refused (no THP in the kernel, as on many Android
        /// kernels) means 4 KiB pages; accepted still depends on THP's `enabled` setting.
        huge_page_advice: bool,
        /// The read bypassed the page cache (`O_DIRECT`); otherwise an ordinary read.
        direct_io: bool,
    },
    /// Bytes handed over in memory ([`GgufFile::from_bytes`]).
    Owned,
}

impl std::fmt::Display for Residency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Residency::Mapped => write!(f, "mapped from the file"),
            Residency::Resident {
                huge_page_advice,
                direct_io,
            } => write!(
                f,
                "read into memory ({}, {})",
                if *huge_page_advice {
                    "huge pages advised"
                } else {
                    "huge pages refused: 4 KiB pages"
                },
                if *direct_io {
                    "direct read"
                } else {
                    "buffered read"
                }
            ),
            Residency::Owned => write!(f, "in memory"),
        }
    }
}

impl Bytes {
    fn owned(v: &[u8]) -> Bytes {
        let mut chunks = vec![Chunk([0; OWNED_ALIGN]); v.len().div_ceil(OWNED_ALIGN)];
        bytemuck::cast_slice_mut::<Chunk, u8>(&mut chunks)[..v.len()].copy_from_slice(v);
        Bytes::Owned {
            chunks,
            len: v.len(),
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mmap(m) => m,
            Bytes::Resident(m, _) => m,
            Bytes::Owned { chunks, len } => &bytemuck::cast_slice(chunks)[..*len],
        }
    }
}

/// A parsed GGUF file. Tensor data stays in the mapped (or owned) buffer; nothing is copied.
pub struct GgufFile {
    bytes: Bytes,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
}

/// Fills `buf` from the start of `file` with positioned reads split over a few threads: the
/// copy out of the page cache is bound by per-page costs, not by one stream's bandwidth.
fn read_exact_parallel(file: &std::fs::File, buf: &mut [u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    const PIECE: usize = 8 << 20;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    let per = buf.len().div_ceil(threads).div_ceil(PIECE) * PIECE;
    std::thread::scope(|s| {
        let jobs: Vec<_> = buf
            .chunks_mut(per.max(1))
            .enumerate()
            .map(|(i, part)| {
                s.spawn(move || -> std::io::Result<()> {
                    let base = (i * per) as u64;
                    let mut done = 0;
                    for piece in part.chunks_mut(PIECE) {
                        file.read_exact_at(piece, base + done)?;
                        done += piece.len() as u64;
                    }
                    Ok(())
                })
            })
            .collect();
        jobs.into_iter()
            .try_for_each(|j| j.join().expect("reader thread panicked"))
    })
}

/// [`read_exact_parallel`] through `O_DIRECT` for the block-aligned part of the file, then
/// an ordinary read of the tail through `file` (already open). `buf` starts on a page
/// boundary (it is a fresh mapping).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn read_direct(path: &Path, file: &std::fs::File, buf: &mut [u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    const BLOCK: usize = 4096;
    let direct = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    let aligned = buf.len() / BLOCK * BLOCK;
    let (head, tail) = buf.split_at_mut(aligned);
    read_exact_parallel(&direct, head)?;
    file.read_exact_at(tail, aligned as u64)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn read_direct(_: &Path, _: &std::fs::File, _: &mut [u8]) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Asks for transparent huge pages (`madvise(MADV_HUGEPAGE)`); false when the kernel refuses
/// (built without THP, as many Android kernels are). Called through `libc` rather than
/// memmap2's `Advice::HugePage`, which memmap2 offers on Linux only: Android's bionic has the
/// same call.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn advise_huge_pages(buf: &mut memmap2::MmapMut) -> bool {
    // SAFETY: the range is exactly the live anonymous mapping `buf` owns; the advice changes
    // no contents.
    unsafe { libc::madvise(buf.as_mut_ptr().cast(), buf.len(), libc::MADV_HUGEPAGE) == 0 }
}

/// Wraps an I/O error with the path it happened on.
fn io_error(path: &Path) -> impl Fn(std::io::Error) -> GgufError + '_ {
    move |source| GgufError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The open file and its length, or `None` if it is empty.
fn open_nonempty(path: &Path) -> Result<Option<(std::fs::File, u64)>, GgufError> {
    let io = io_error(path);
    let file = std::fs::File::open(path).map_err(&io)?;
    let len = file.metadata().map_err(&io)?.len();
    Ok((len > 0).then_some((file, len)))
}

impl GgufFile {
    /// Memory-maps `path` and parses its header.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let io = io_error(path);
        let Some((file, _)) = open_nonempty(path)? else {
            // mmap of an empty file fails on some platforms; let the parser report it.
            return Self::from_bytes(Vec::new());
        };
        // SAFETY: the map is read-only and private to this process. If another process
        // truncates or rewrites the file while it is mapped, reads may fault or see changed
        // bytes; like llama.cpp we accept that model files are not modified while in use.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(&io)?;
        Self::parse(Bytes::Mmap(map))
    }

    /// Reads `path` whole into anonymous memory backed by transparent huge pages where the
    /// kernel allows, and parses its header.
    ///
    /// Why not the map: a page-cache map is built of 4 KiB pages, and on virtualised hosts
    /// (this project's CI among them) streaming through 4 KiB pages runs at a fraction of the
    /// memory bandwidth because every page costs a nested TLB walk. Measured on a 2-core VM:
    /// 0.4-1.5 GB/s through the map against 8-12 GB/s through 2 MiB pages, for the same bytes.
    /// A decoder reads every weight once per token, so this is its speed limit.
    pub fn open_resident(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let io = io_error(path);
        let Some((file, len)) = open_nonempty(path)? else {
            return Self::from_bytes(Vec::new());
        };
        let len = usize::try_from(len).map_err(|_| {
            io(std::io::Error::new(
                std::io::ErrorKind::OutOfMemory,
                "file larger than the address space",
            ))
        })?;
        let mut buf = memmap2::MmapOptions::new()
            .len(len)
            .map_anon()
            .map_err(&io)?;
        // Advice only: without THP (refused on kernels built without it) the read still
        // works, at 4 KiB-page speed.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let huge_page_advice = advise_huge_pages(&mut buf);
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let huge_page_advice = false;
        // Direct I/O first: the bytes go from the device into our pages without a second
        // copy in the page cache (on the measured VM: the same wall time as a cached read and
        // a third of its system time). Any refusal (a filesystem without O_DIRECT, a device
        // with larger blocks) falls back to an ordinary read of the whole file.
        let direct_io = read_direct(path, &file, &mut buf).is_ok();
        if !direct_io {
            read_exact_parallel(&file, &mut buf).map_err(&io)?;
        }
        let how = Residency::Resident {
            huge_page_advice,
            direct_io,
        };
        Self::parse(Bytes::Resident(buf, how))
    }

    /// Parses a file held in memory (tests, fuzzing). The bytes are copied once into a
    /// 64-byte-aligned buffer, so tensor data is as aligned as with `open`.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        Self::parse(Bytes::owned(&bytes))
    }

    fn parse(bytes: Bytes) -> Result<GgufFile, GgufError> {
        let buf = bytes.as_slice();
        let mut c = Cursor::new(buf);
        let magic = c.take(4, "magic")?;
        if magic != MAGIC {
            return Err(GgufError::BadMagic {
                found: magic.to_vec(),
            });
        }
        let version = c.u32("version")?;
        // v1 used 32-bit counts and lengths; no current model ships in it.
        if matches!(version.swap_bytes(), 2 | 3) {
            return Err(GgufError::BigEndian {
                version: version.swap_bytes(),
                offset: 4,
            });
        }
        if version != 2 && version != 3 {
            return Err(GgufError::UnsupportedVersion { version, offset: 4 });
        }
        let n_tensors = c.u64("tensor count")?;
        let n_kv = c.u64("metadata count")?;
        let metadata = Metadata::read(&mut c, n_kv)?;
        let alignment = read_alignment(&metadata)?;
        let raw = read_tensor_infos(&mut c, n_tensors)?;

        let header_end = c.pos();
        let data_offset =
            header_end
                .checked_next_multiple_of(alignment)
                .ok_or(GgufError::BadAlignment {
                    alignment,
                    offset: metadata.offset_of(keys::GENERAL_ALIGNMENT).unwrap_or(0),
                })?;
        let tensors = place_tensors(raw, data_offset, alignment, buf.len() as u64)?;
        let by_name = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(GgufFile {
            bytes,
            version,
            alignment,
            data_offset,
            metadata,
            tensors,
            by_name,
        })
    }

    /// Format version (2 or 3).
    /// Where the bytes live and how they were read (see [`Residency`]).
    pub fn residency(&self) -> Residency {
        match &self.bytes {
            Bytes::Mmap(_) => Residency::Mapped,
            Bytes::Resident(_, how) => *how,
            Bytes::Owned { .. } => Residency::Owned,
        }
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// Data alignment: general.alignment, or 32.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Tensors in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The bytes of tensor `t`, aligned in memory to min(alignment, 64) bytes at least.
    /// Extents were checked at open; a `TensorInfo` from another
    /// file that does not fit this one gives an empty slice rather than a panic.
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        let buf = self.bytes();
        let start = usize::try_from(t.offset).unwrap_or(usize::MAX);
        let end = t
            .offset
            .checked_add(t.n_bytes)
            .and_then(|e| usize::try_from(e).ok())
            .unwrap_or(usize::MAX);
        buf.get(start..end).unwrap_or(&[])
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// Absolute offset of the tensor data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.version)
            .field("alignment", &self.alignment)
            .field("data_offset", &self.data_offset)
            .field("n_kv", &self.metadata.len())
            .field("n_tensors", &self.tensors.len())
            .finish()
    }
}

fn read_alignment(md: &Metadata) -> Result<u64, GgufError> {
    let Some(offset) = md.offset_of(keys::GENERAL_ALIGNMENT) else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    // llama.cpp and gguf-py both insist on u32 here; a file they reject we reject too.
    let alignment = match md.get(keys::GENERAL_ALIGNMENT) {
        Some(crate::Value::U32(a)) => u64::from(*a),
        Some(v) => {
            return Err(GgufError::WrongType {
                key: keys::GENERAL_ALIGNMENT.into(),
                expected: "u32",
                found: v.type_name(),
                offset,
            });
        }
        None => DEFAULT_ALIGNMENT,
    };
    if !alignment.is_power_of_two() {
        return Err(GgufError::BadAlignment { alignment, offset });
    }
    Ok(alignment)
}

/// Makes offsets absolute and checks that every tensor is aligned, inside the file, and
/// disjoint from the others, so `tensor_data` can slice without checks.
fn place_tensors(
    raw: Vec<RawTensor>,
    data_offset: u64,
    alignment: u64,
    file_len: u64,
) -> Result<Vec<TensorInfo>, GgufError> {
    let mut tensors = Vec::with_capacity(raw.len());
    for RawTensor {
        mut info,
        header_offset,
    } in raw
    {
        let rel = info.offset;
        if !rel.is_multiple_of(alignment) {
            return Err(GgufError::MisalignedTensor {
                name: info.name,
                data_offset: rel,
                alignment,
                offset: header_offset,
            });
        }
        let start = data_offset.checked_add(rel);
        let end = start.and_then(|s| s.checked_add(info.n_bytes));
        match (start, end) {
            (Some(start), Some(end)) if end <= file_len => info.offset = start,
            _ => {
                return Err(GgufError::TensorOutOfBounds {
                    name: info.name,
                    start: start.unwrap_or(u64::MAX),
                    end: end.unwrap_or(u64::MAX),
                    file_len,
                    offset: header_offset,
                });
            }
        }
        tensors.push(info);
    }
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| tensors[i].offset);
    for w in order.windows(2) {
        let (a, b) = (&tensors[w[0]], &tensors[w[1]]);
        let a_end = a.offset + a.n_bytes;
        if b.offset < a_end {
            return Err(GgufError::TensorOverlap {
                name: b.name.clone(),
                start: b.offset,
                other: a.name.clone(),
                other_end: a_end,
            });
        }
    }
    Ok(tensors)
}
