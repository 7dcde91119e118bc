//! Running a kernel table once before trusting it.
//!
//! CPUID and the OS's XSAVE state (on Arm, the kernel's HWCAPs) can claim an instruction set
//! that still faults: virtual machines pass through flags whose state they do not manage
//! (this machine lists AMX, and AMX instructions fault), and an emulator or a vendor kernel
//! can report an extension it does not run. So before a SIMD table is used, a forked child
//! runs every kernel of it (the float32 product's micro-kernel included) on a small fixed
//! input and compares the results with the scalar kernels; a fault (the child dies of
//! SIGILL) or a wrong result keeps the table out.
//!
//! Everything the child touches is allocated before `fork`; the child only computes and
//! leaves with `_exit`, so it takes no lock another thread of the parent might have held.

use crate::dispatch::Kernels;
use crate::gemm::PanelLine;
use crate::tile::{ActTile, Format, TILE_ROWS, WeightTile};
use crate::{GgmlType, dequantize_row, quantize_row_with, vec_dot_type};

/// Activation rows per case: enough for the four-token kernels.
const ROWS: usize = 4;

/// One weight row against [`ROWS`] activation rows, with the scalar results.
struct Case {
    ty: GgmlType,
    n: usize,
    w: Vec<u8>,
    /// ROWS rows of `vec_dot_type(ty)`, back to back.
    x: Vec<u8>,
    x_row: usize,
    want: [f32; ROWS],
    /// Allowed |got - want|: 0 for Q2_K/Q3_K (bit-identical by design), the bound of summing
    /// the same exact block sums in another order for Q4_K/Q5_K/Q6_K (bit-identical on AVX2,
    /// accumulated in lanes on AVX-512: `kquant_reorder_bound`), else a small multiple of f32
    /// rounding at the scale of sum |w_i x_i|.
    tol: [f32; ROWS],
    /// For types with a tile format: 16 rows (the case's row repeated with its blocks
    /// rotated) against the ROWS activation rows, with the reference's results.
    tile: Option<TileCase>,
}

struct TileCase {
    f: Format,
    w: WeightTile,
    x: ActTile,
    /// `run_ref` over tokens 0..ROWS and then 1..ROWS (a pass of four, then single tails).
    want: Vec<f32>,
    /// Where the kernel writes: allocated here, as the child must not allocate.
    got: Vec<f32>,
}

impl TileCase {
    fn new(ty: GgmlType, n: usize, w: &[u8], x: &[u8], x_row: usize) -> Option<TileCase> {
        let f = Format::of(ty)?;
        // Rotating the row by one block per tile row gives 16 different rows.
        let bs = ty.type_size();
        let rows: Vec<u8> = (0..TILE_ROWS)
            .flat_map(|r| {
                let k = (r * bs) % w.len();
                w[k..].iter().chain(&w[..k]).copied().collect::<Vec<u8>>()
            })
            .collect();
        let mut wt = WeightTile::default();
        wt.pack(&f, n, &rows, w.len());
        let mut xt = ActTile::default();
        xt.fill(&f, n, ROWS, x.get(..ROWS * x_row)?, x_row);
        let mut want = vec![0f32; (2 * ROWS - 1) * TILE_ROWS];
        let (a, b) = want.split_at_mut(ROWS * TILE_ROWS);
        crate::tile::run_ref(&f, &wt, &xt, 0..ROWS, a);
        crate::tile::run_ref(&f, &wt, &xt, 1..ROWS, b);
        let got = vec![0f32; want.len()];
        Some(TileCase {
            f,
            w: wt,
            x: xt,
            want,
            got,
        })
    }

    /// `tk.run` gives the reference's bits on the reference's packing. (The table's packing
    /// is not run here: it allocates; the tests check it.) Allocates nothing.
    fn check(&mut self, tk: crate::tile::TileKernels) -> bool {
        let (a, b) = self.got.split_at_mut(ROWS * TILE_ROWS);
        (tk.run)(&self.f, &self.w, &self.x, 0..ROWS, a);
        (tk.run)(&self.f, &self.w, &self.x, 1..ROWS, b);
        self.got
            .iter()
            .zip(&self.want)
            .all(|(g, w)| g.to_bits() == w.to_bits())
    }
}

/// A float32 product tile (see [`crate::gemm`]): the table's `mr` tokens and then one token
/// by one panel over a ragged run of k, started and then continued, against the scalar
/// micro-kernel's bits.
struct GemmCase {
    x: Vec<f32>,
    w: Vec<PanelLine>,
    /// The scalar results for `m = mr` (lines 0..mr) and then `m = 1` (line mr).
    want: Vec<PanelLine>,
    /// Where the kernel writes: allocated here, as the child must not allocate.
    got: Vec<PanelLine>,
}

/// Elements per token of [`GemmCase`], and where its run of k is cut in two.
const GEMM_K: usize = 37;
const GEMM_SPLIT: usize = 20;

impl GemmCase {
    fn new(bits: &mut Bits, mr: usize) -> Option<GemmCase> {
        if !(1..=crate::gemm::MR_MAX).contains(&mr) {
            return None;
        }
        let x: Vec<f32> = (0..mr * GEMM_K).map(|_| bits.unit()).collect();
        let w: Vec<PanelLine> = (0..GEMM_K)
            .map(|_| PanelLine(core::array::from_fn(|_| bits.unit())))
            .collect();
        let mut want = vec![PanelLine::default(); mr + 1];
        Self::run(crate::gemm::tile_scalar, &x, &w, mr, &mut want);
        let got = want.clone();
        Some(GemmCase { x, w, want, got })
    }

    fn run(
        tile: crate::gemm::GemmTileFn,
        x: &[f32],
        w: &[PanelLine],
        mr: usize,
        c: &mut [PanelLine],
    ) {
        let (full, one) = c.split_at_mut(mr);
        tile(x, GEMM_K, mr, &w[..GEMM_SPLIT], full, 1, false);
        tile(
            &x[GEMM_SPLIT..],
            GEMM_K,
            mr,
            &w[GEMM_SPLIT..],
            full,
            1,
            true,
        );
        tile(x, GEMM_K, 1, w, one, 1, false);
    }

    /// The table's tile gives the scalar bits. Allocates nothing.
    fn check(&mut self, table: &Kernels) -> bool {
        let g = table.gemm_f32;
        Self::run(g.tile, &self.x, &self.w, g.mr, &mut self.got);
        self.got
            .iter()
            .zip(&self.want)
            .all(|(g, w)| g.0.map(f32::to_bits) == w.0.map(f32::to_bits))
    }
}

/// A small deterministic generator (xorshift64*): the probe must not depend on a seed file
/// or an RNG crate.
struct Bits(u64);

impl Bits {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

fn exact(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q2_K | GgmlType::Q3_K)
}

fn reordered(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K)
}

impl Case {
    /// `None` only if a shape is inconsistent, which would be a bug here; the probe then
    /// fails closed.
    fn new(ty: GgmlType, bits: &mut Bits) -> Option<Case> {
        // Two K-quant blocks; the float rows get a length with a ragged SIMD tail.
        let n = if ty.block_size() == 1 { 517 } else { 512 };
        let w_bytes = usize::try_from(ty.row_bytes(n as u64)?).ok()?;
        let w = if ty.block_size() == 1 {
            let f: Vec<f32> = (0..n).map(|_| bits.unit()).collect();
            let mut w = vec![0u8; w_bytes];
            quantize_row_with(Kernels::scalar(), ty, &f, &mut w).ok()?;
            w
        } else {
            let mut w: Vec<u8> = (0..w_bytes).map(|_| bits.next() as u8).collect();
            for block in w.chunks_exact_mut(ty.type_size()) {
                for &off in crate::f16_scale_offsets(ty) {
                    let v = half::f16::from_f32(0.05 * bits.unit());
                    block[off..off + 2].copy_from_slice(&v.to_le_bytes());
                }
            }
            w
        };
        let mut wd = vec![0f32; n];
        dequantize_row(ty, &w, &mut wd).ok()?;
        let vdt = vec_dot_type(ty);
        let x_row = usize::try_from(vdt.row_bytes(n as u64)?).ok()?;
        let mut x = vec![0u8; ROWS * x_row];
        let mut want = [0f32; ROWS];
        let mut tol = [0f32; ROWS];
        let scalar = Kernels::scalar();
        for r in 0..ROWS {
            let f: Vec<f32> = (0..n).map(|_| 3.0 * bits.unit()).collect();
            let xr = &mut x[r * x_row..(r + 1) * x_row];
            quantize_row_with(Kernels::scalar(), vdt, &f, xr).ok()?;
            want[r] = scalar.vec_dot(ty, n, &w, xr);
            if reordered(ty) {
                tol[r] = crate::kquant_reorder_bound(ty, n, &w, xr).ok()? as f32;
            } else if !exact(ty) {
                let mut xd = vec![0f32; n];
                dequantize_row(vdt, xr, &mut xd).ok()?;
                let scale: f32 = wd.iter().zip(&xd).map(|(a, b)| (a * b).abs()).sum();
                tol[r] = 1e-4 * scale + 1e-30;
            }
        }
        let tile = match Format::of(ty) {
            Some(_) => Some(TileCase::new(ty, n, &w, &x, x_row)?),
            None => None,
        };
        Some(Case {
            ty,
            n,
            w,
            x,
            x_row,
            want,
            tol,
            tile,
        })
    }

    /// Runs `table` on the case: every row through `vec_dot` within the tolerance of scalar,
    /// the four-token kernel (if any) bit-identical to `vec_dot`, and the tile kernel (if
    /// any) bit-identical to the tile reference. Never panics or allocates (it runs in the
    /// forked child).
    fn check(&mut self, table: &Kernels) -> bool {
        if let (Some(run), Some(tile)) = (table.tile, self.tile.as_mut())
            && !tile.check(run)
        {
            return false;
        }
        let dot = table.vec_dot_fn(self.ty);
        let mut got = [0f32; ROWS];
        for (r, g) in got.iter_mut().enumerate() {
            let Some(xr) = self.x.get(r * self.x_row..(r + 1) * self.x_row) else {
                return false;
            };
            *g = dot(self.n, &self.w, xr);
            let (want, tol) = (self.want[r], self.tol[r]);
            let ok = if tol == 0.0 {
                g.to_bits() == want.to_bits()
            } else {
                (*g - want).abs() <= tol
            };
            if !ok {
                return false;
            }
        }
        if let Some(x4) = table.vec_dot_x4_fn(self.ty) {
            let mut four = [0f32; ROWS];
            x4(self.n, &self.w, &self.x, &mut four);
            if four
                .iter()
                .zip(&got)
                .any(|(a, b)| a.to_bits() != b.to_bits())
            {
                return false;
            }
        }
        if let Some(pf) = table.vec_dot_pf_fn(self.ty) {
            // Prefetching the row itself: any region must leave the result as it is.
            for (r, g) in got.iter().enumerate() {
                let xr = &self.x[r * self.x_row..(r + 1) * self.x_row];
                if pf(self.n, &self.w, xr, &self.w).to_bits() != g.to_bits() {
                    return false;
                }
            }
        }
        true
    }
}

/// Whether every kernel of `table` runs and agrees with scalar, tried in a child process.
#[cfg(unix)]
pub(crate) fn passes(table: &Kernels) -> bool {
    let mut bits = Bits(0x9E37_79B9_7F4A_7C15);
    let Some(mut cases) = crate::WEIGHT_TYPES
        .iter()
        .map(|&ty| Case::new(ty, &mut bits))
        .collect::<Option<Vec<Case>>>()
    else {
        return false;
    };
    let Some(mut gemm) = GemmCase::new(&mut bits, table.gemm_f32.mr) else {
        return false;
    };
    // The child reports on a pipe rather than by exit status: that works even where the
    // process ignores SIGCHLD (children are then reaped at once and waitpid cannot see them).
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return false;
    }
    let (read_end, write_end) = (fds[0], fds[1]);
    // SAFETY: fork has no memory-safety preconditions; the child below only calls
    // async-signal-safe functions besides the kernels, which are plain computation on
    // memory allocated before the fork.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        child(table, &mut cases, &mut gemm, write_end);
    }
    // SAFETY: our own descriptor; the child has its copy.
    unsafe { libc::close(write_end) };
    let ok = pid > 0 && read_verdict(read_end);
    // SAFETY: plain syscalls on our own child and descriptor. The child has exited or been
    // killed by now; waitpid reaps it (and fails harmlessly if it was reaped already).
    unsafe {
        if pid > 0 {
            libc::kill(pid, libc::SIGKILL);
            let mut status = 0;
            while libc::waitpid(pid, &mut status, 0) < 0
                && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {
            }
        }
        libc::close(read_end);
    }
    ok
}

/// On other systems there is no cheap way to survive a fault: trust the CPU's report.
#[cfg(not(unix))]
pub(crate) fn passes(_table: &Kernels) -> bool {
    true
}

/// What the child wrote on the pipe: a verdict byte, or nothing if it died first.
const PASSED: u8 = b'1';

#[cfg(unix)]
fn child(table: &Kernels, cases: &mut [Case], gemm: &mut GemmCase, report: libc::c_int) -> ! {
    // SAFETY: setrlimit, signal, write and _exit are async-signal-safe. No core file for an
    // expected SIGILL, and default actions for the faults in case the parent handles them.
    unsafe {
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &none);
        for sig in [libc::SIGILL, libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE] {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    let verdict = if cases.iter_mut().all(|c| c.check(table)) && gemm.check(table) {
        PASSED
    } else {
        b'0'
    };
    // SAFETY: one byte from a local; _exit ends the child without running the parent's
    // atexit handlers or flushing its copied stdio buffers.
    unsafe {
        libc::write(report, (&verdict as *const u8).cast(), 1);
        libc::_exit(0)
    }
}

/// Reads the child's verdict from `fd`, waiting at most a few seconds (the probe takes well
/// under a millisecond). End of file (the child died) or a timeout count as failure.
#[cfg(unix)]
fn read_verdict(fd: libc::c_int) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().max(1) as libc::c_int) };
        if r < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        if r == 0 {
            return false;
        }
        let mut byte = 0u8;
        // SAFETY: one writable byte.
        let n = unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return n == 1 && byte == PASSED;
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::dispatch::{VecDotPfFn, VecDotX4Fn};
    use crate::scalar;

    /// A kernel whose instruction does not exist, like AMX on this machine.
    fn faulting(_: usize, _: &[u8], _: &[u8]) -> f32 {
        // SAFETY: an undefined instruction raises SIGILL; only ever run in the probe's child.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            core::arch::asm!("ud2", options(nomem, nostack))
        };
        #[cfg(target_arch = "aarch64")]
        unsafe {
            core::arch::asm!("udf #0", options(nomem, nostack))
        };
        0.0
    }

    fn off_by_one(n: usize, w: &[u8], x: &[u8]) -> f32 {
        scalar::vec_dot_q4_0_q8_0(n, w, x) + 1.0
    }

    /// A four-token kernel that is close to the single one but not bit-identical.
    fn sloppy_x4(ty: GgmlType) -> Option<VecDotX4Fn> {
        (ty == GgmlType::Q8_0).then_some(|n, w, x, out: &mut [f32; 4]| {
            let row = x.len() / 4;
            for (j, o) in out.iter_mut().enumerate() {
                *o = scalar::vec_dot_q8_0_q8_0(n, w, &x[j * row..(j + 1) * row]) * (1.0 + 1e-7);
            }
        })
    }

    fn sloppy_pf(ty: GgmlType) -> Option<VecDotPfFn> {
        (ty == GgmlType::Q4_K)
            .then_some(|n, w, x, _pf: &[u8]| scalar::vec_dot_q4_k_q8_k(n, w, x) * (1.0 + 1e-7))
    }

    #[test]
    fn a_prefetching_kernel_that_is_not_bit_identical_fails() {
        let table = Kernels {
            pf: sloppy_pf,
            ..*Kernels::scalar()
        };
        assert!(!passes(&table));
    }

    /// A tile kernel one ulp off the reference in one output.
    fn sloppy_tile(
        f: &Format,
        w: &WeightTile,
        x: &ActTile,
        tokens: std::ops::Range<usize>,
        out: &mut [f32],
    ) {
        crate::tile::run_ref(f, w, x, tokens, out);
        out[5] = f32::from_bits(out[5].to_bits() + 1);
    }

    #[test]
    fn a_tile_kernel_that_is_not_bit_identical_fails() {
        let table = Kernels {
            tile: Some(crate::tile::TileKernels {
                pack: crate::tile::WeightTile::pack,
                run: sloppy_tile,
            }),
            ..*Kernels::scalar()
        };
        assert!(!passes(&table));
        let table = Kernels {
            tile: Some(crate::tile::TileKernels {
                pack: crate::tile::WeightTile::pack,
                run: crate::tile::run_ref,
            }),
            ..*Kernels::scalar()
        };
        assert!(passes(&table));
    }

    /// A float32 product tile one ulp off the scalar bits in one output.
    fn sloppy_gemm_tile(
        x: &[f32],
        ldx: usize,
        m: usize,
        w: &[PanelLine],
        c: &mut [PanelLine],
        ldc: usize,
        accumulate: bool,
    ) {
        crate::gemm::tile_scalar(x, ldx, m, w, c, ldc, accumulate);
        c[0].0[3] = f32::from_bits(c[0].0[3].to_bits() + 1);
    }

    #[test]
    fn a_gemm_tile_that_is_not_bit_identical_fails() {
        let table = Kernels {
            gemm_f32: crate::gemm::GemmKernels {
                mr: 4,
                tile: sloppy_gemm_tile,
            },
            ..*Kernels::scalar()
        };
        assert!(!passes(&table));
    }

    #[test]
    fn the_scalar_table_passes() {
        assert!(passes(Kernels::scalar()));
    }

    #[test]
    fn a_faulting_kernel_fails_and_the_parent_survives() {
        let table = Kernels {
            q4_k: faulting,
            ..*Kernels::scalar()
        };
        assert!(!passes(&table));
    }

    #[test]
    fn the_verdict_arrives_when_sigchld_is_ignored() {
        // With SIGCHLD ignored, children are reaped at once and waitpid cannot report how
        // they ended; the verdict comes on the pipe instead.
        let faulty = Kernels {
            q4_k: faulting,
            ..*Kernels::scalar()
        };
        // SAFETY: changes this test process's SIGCHLD disposition, restored below; the
        // other tests of this binary do not depend on it.
        let old = unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
        let (good, bad) = (passes(Kernels::scalar()), passes(&faulty));
        // SAFETY: as above.
        unsafe { libc::signal(libc::SIGCHLD, old) };
        assert!(good);
        assert!(!bad);
    }

    #[test]
    fn a_wrong_result_fails() {
        let table = Kernels {
            q4_0: off_by_one,
            ..*Kernels::scalar()
        };
        assert!(!passes(&table));
    }

    #[test]
    fn a_four_token_kernel_that_is_not_bit_identical_fails() {
        let table = Kernels {
            x4: sloppy_x4,
            ..*Kernels::scalar()
        };
        assert!(!passes(&table));
    }
}
