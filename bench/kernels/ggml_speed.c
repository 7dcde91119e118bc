/*
 * ggml's side of the decode kernel benchmark: the speed of llama.cpp's x86 CPU kernels
 * (ggml-cpu) for each weight type, one token and four tokens, with the weights in cache and
 * streamed from memory, measured exactly as crates/kernels/examples/kernel_speed.rs measures
 * ours (same types, cols, rows, data, clock and repeats; see that file's doc comment).
 * bench/kernels/run.sh compiles this with ggml's own source files (quants, vec, repack,
 * llamafile sgemm) from the llama.cpp that bench/build_llamacpp.sh fetches, for each x86
 * level the CPU has, and runs it; nothing of ggml is committed.
 *
 *   ggml_speed [--cpu NAME] [--isa NAME] [--types q4_0,q4_K] [--repeats N]
 *              [--cache-kib N] [--stream-mib N]     > CSV on stdout, a table on stderr
 *
 * What is timed, per weight type (impl column of the CSV):
 *   ggml         1tok: type_traits_cpu[type].vec_dot(n, ..., nrc=1) over every row against
 *                one activation row quantized by the vec_dot_type's from_float, as ggml's
 *                mul_mat runs a decode step (x86 has no nrc=2 kernels).
 *                4tok: the same vec_dot called 4 times per row, in mul_mat's order (16-row
 *                blocks, for each token every row of the block): what ggml_compute_forward_
 *                mul_mat_one_chunk does for a type llamafile's sgemm does not take.
 *   ggml-sgemm   4tok: llamafile_sgemm (tinyBLAS) over the matrix with n = 4, which mul_mat
 *                tries first for 2+ tokens (on x86: F32, F16, BF16, Q4_0, Q5_0, Q8_0);
 *                ggml_barrier and the chunk counter are single-thread stand-ins here.
 *   ggml-repack  the types llama.cpp's CPU_REPACK buffer interleaves at load on this level
 *                (ggml_repack_get_optimal_repack_type: Q4_0 -> q4_0_8x8 and Q4_K -> q4_K_8x8
 *                with AVX2, also Q2_K -> q2_K_8x8 with AVX-512; IQ4_NL too, not one of ours):
 *                1tok: ggml_gemv_* over all rows in one call, activations from from_float;
 *                4tok: ggml_gemm_* with nr = 4, activations from ggml_quantize_mat_*_4x8.
 *                The interleaved layout is as many bytes as the plain one; it is filled
 *                with random bytes and finite scales directly (speed does not depend on the
 *                values), not produced by ggml's repack functions.
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <immintrin.h>

#include "ggml.h"
#include "ggml-cpu-impl.h"

#define VEC_DOT_ARGS                                                                              \
    int n, float *restrict s, size_t bs, const void *restrict vx, size_t bx,                      \
        const void *restrict vy, size_t by, int nrc
#define GEMX_ARGS                                                                                  \
    int n, float *restrict s, size_t bs, const void *restrict vx, const void *restrict vy, int nr, \
        int nc

/* ggml-cpu/quants.h, vec.h, repack.h, llamafile/sgemm.h (declared here: those headers are
   C++ or pull in more than this needs). */
void quantize_row_q8_0(const float *restrict x, void *restrict y, int64_t k);
void quantize_row_q8_1(const float *restrict x, void *restrict y, int64_t k);
void quantize_row_q8_K(const float *restrict x, void *restrict y, int64_t k);
void ggml_vec_dot_q4_0_q8_0(VEC_DOT_ARGS);
void ggml_vec_dot_q4_1_q8_1(VEC_DOT_ARGS);
void ggml_vec_dot_q5_0_q8_0(VEC_DOT_ARGS);
void ggml_vec_dot_q5_1_q8_1(VEC_DOT_ARGS);
void ggml_vec_dot_q8_0_q8_0(VEC_DOT_ARGS);
void ggml_vec_dot_q2_K_q8_K(VEC_DOT_ARGS);
void ggml_vec_dot_q3_K_q8_K(VEC_DOT_ARGS);
void ggml_vec_dot_q4_K_q8_K(VEC_DOT_ARGS);
void ggml_vec_dot_q5_K_q8_K(VEC_DOT_ARGS);
void ggml_vec_dot_q6_K_q8_K(VEC_DOT_ARGS);
void ggml_vec_dot_f32(VEC_DOT_ARGS);
void ggml_vec_dot_f16(VEC_DOT_ARGS);
void ggml_vec_dot_bf16(VEC_DOT_ARGS);
void ggml_gemv_q4_0_8x8_q8_0(GEMX_ARGS);
void ggml_gemm_q4_0_8x8_q8_0(GEMX_ARGS);
void ggml_gemv_q4_K_8x8_q8_K(GEMX_ARGS);
void ggml_gemm_q4_K_8x8_q8_K(GEMX_ARGS);
void ggml_gemv_q2_K_8x8_q8_K(GEMX_ARGS);
void ggml_gemm_q2_K_8x8_q8_K(GEMX_ARGS);
void ggml_quantize_mat_q8_0_4x8(const float *restrict x, void *restrict vy, int64_t k);
void ggml_quantize_mat_q8_K_4x8(const float *restrict x, void *restrict vy, int64_t k);
bool llamafile_sgemm(const struct ggml_compute_params *params, int64_t m, int64_t n, int64_t k,
                     const void *A, int64_t lda, const void *B, int64_t ldb, void *C, int64_t ldc,
                     int Atype, int Btype, int Ctype);

/* One thread: sgemm's barrier is a no-op and its chunk counter a plain int. */
static int chunk;
void ggml_barrier(struct ggml_threadpool *tp) { (void)tp; }
void ggml_threadpool_chunk_set(struct ggml_threadpool *tp, int value) { (void)tp; chunk = value; }
int ggml_threadpool_chunk_add(struct ggml_threadpool *tp, int value) {
    (void)tp;
    int old = chunk;
    chunk += value;
    return old;
}

typedef void (*vec_dot_fn)(VEC_DOT_ARGS);
typedef void (*gemx_fn)(GEMX_ARGS);
typedef void (*quant_fn)(const float *restrict x, void *restrict y, int64_t k);

struct wtype {
    const char *name; /* as ours prints it */
    int ggml;         /* GGML_TYPE_* */
    int block_bytes, block_values;
    int scales[2], nscales; /* byte offsets of the f16 scales in a block */
    int act;                /* vec_dot_type: GGML_TYPE_F32/F16/BF16/Q8_0/Q8_1/Q8_K */
    vec_dot_fn vec_dot;
    /* CPU_REPACK on this level, if any: NULL otherwise */
    gemx_fn gemv, gemm;
    quant_fn quantize_mat;
    int rp_block_bytes, rp_nscales; /* interleaved block of 8: its first rp_nscales halves are f16 scales */
};

static const struct wtype TYPES[] = {
    {"F32", GGML_TYPE_F32, 4, 1, {0}, 0, GGML_TYPE_F32, ggml_vec_dot_f32, 0},
    {"F16", GGML_TYPE_F16, 2, 1, {0}, 0, GGML_TYPE_F16, ggml_vec_dot_f16, 0},
    {"BF16", GGML_TYPE_BF16, 2, 1, {0}, 0, GGML_TYPE_BF16, ggml_vec_dot_bf16, 0},
    {"Q4_0", GGML_TYPE_Q4_0, 18, 32, {0}, 1, GGML_TYPE_Q8_0, ggml_vec_dot_q4_0_q8_0,
     ggml_gemv_q4_0_8x8_q8_0, ggml_gemm_q4_0_8x8_q8_0, ggml_quantize_mat_q8_0_4x8, 8 * 18, 8},
    {"Q4_1", GGML_TYPE_Q4_1, 20, 32, {0, 2}, 2, GGML_TYPE_Q8_1, ggml_vec_dot_q4_1_q8_1, 0},
    {"Q5_0", GGML_TYPE_Q5_0, 22, 32, {0}, 1, GGML_TYPE_Q8_0, ggml_vec_dot_q5_0_q8_0, 0},
    {"Q5_1", GGML_TYPE_Q5_1, 24, 32, {0, 2}, 2, GGML_TYPE_Q8_1, ggml_vec_dot_q5_1_q8_1, 0},
    {"Q8_0", GGML_TYPE_Q8_0, 34, 32, {0}, 1, GGML_TYPE_Q8_0, ggml_vec_dot_q8_0_q8_0, 0},
#if defined(__AVX512F__)
    {"Q2_K", GGML_TYPE_Q2_K, 84, 256, {80, 82}, 2, GGML_TYPE_Q8_K, ggml_vec_dot_q2_K_q8_K,
     ggml_gemv_q2_K_8x8_q8_K, ggml_gemm_q2_K_8x8_q8_K, ggml_quantize_mat_q8_K_4x8, 8 * 84, 16},
#else
    {"Q2_K", GGML_TYPE_Q2_K, 84, 256, {80, 82}, 2, GGML_TYPE_Q8_K, ggml_vec_dot_q2_K_q8_K, 0},
#endif
    {"Q3_K", GGML_TYPE_Q3_K, 110, 256, {108}, 1, GGML_TYPE_Q8_K, ggml_vec_dot_q3_K_q8_K, 0},
    {"Q4_K", GGML_TYPE_Q4_K, 144, 256, {0, 2}, 2, GGML_TYPE_Q8_K, ggml_vec_dot_q4_K_q8_K,
     ggml_gemv_q4_K_8x8_q8_K, ggml_gemm_q4_K_8x8_q8_K, ggml_quantize_mat_q8_K_4x8, 8 * 144, 16},
    {"Q5_K", GGML_TYPE_Q5_K, 176, 256, {0, 2}, 2, GGML_TYPE_Q8_K, ggml_vec_dot_q5_K_q8_K, 0},
    {"Q6_K", GGML_TYPE_Q6_K, 210, 256, {208}, 1, GGML_TYPE_Q8_K, ggml_vec_dot_q6_K_q8_K, 0},
};
#define NTYPES (sizeof TYPES / sizeof TYPES[0])

/* Activation types: bytes and values per block. */
static size_t act_row_bytes(int act, int cols) {
    switch (act) {
    case GGML_TYPE_F32: return (size_t)cols * 4;
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16: return (size_t)cols * 2;
    case GGML_TYPE_Q8_0: return (size_t)cols / 32 * 34;
    case GGML_TYPE_Q8_1: return (size_t)cols / 32 * 36;
    default: return (size_t)cols / 256 * 292; /* Q8_K */
    }
}

static int cols_for(const struct wtype *t) { return t->block_values == 256 ? 1024 : 896; }
static size_t row_bytes(const struct wtype *t, int cols) {
    return (size_t)cols / t->block_values * t->block_bytes;
}
static size_t rows_for(size_t bytes, size_t rb, bool round_up) {
    size_t rows = round_up ? ((bytes + rb - 1) / rb + 7) / 8 * 8
                           : (size_t)llround((double)bytes / (double)rb / 8.0) * 8;
    return rows < 8 ? 8 : rows;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* n dependent adds, one per cycle: their time is n core cycles (as kernel_speed.rs). */
__attribute__((noinline)) static uint64_t add_chain(uint64_t n) {
    uint64_t x = 0, i = n / 16;
    __asm__ volatile("1:\n\t"
                     "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                     "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                     "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                     "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                     "dec %1\n\tjnz 1b"
                     : "+r"(x), "+r"(i)
                     :
                     : "cc");
    return x + i;
}

/* Context switches of this thread so far: a timing during which this changes was shared
   with another process and is dropped (as kernel_speed.rs does). */
static long switches(void) {
    struct rusage u;
    getrusage(RUSAGE_THREAD, &u);
    return u.ru_nvcsw + u.ru_nivcsw;
}

/* Best of 200 chains of 2^20 adds that ran without a context switch. */
static double core_ghz(void) {
    uint64_t n = 1ull << 20;
    double best = 0;
    add_chain(n * 64);
    for (int r = 0; r < 200; r++) {
        long sw = switches();
        double t = now();
        volatile uint64_t sink = add_chain(n);
        (void)sink;
        double g = (double)n / (now() - t) / 1e9;
        if (switches() == sw && g > best) best = g;
    }
    return best;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_u64(void) {
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
}
static float next_f32(void) { return (float)(next_u64() >> 40) / (float)(1u << 24) * 2.0f - 1.0f; }

static void *region(size_t len) {
    size_t huge = 2u << 20;
    len = (len + huge - 1) / huge * huge;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    madvise(p, len, MADV_HUGEPAGE);
    return p;
}

/* ggml-cpu.c's f16 -> f32 table (ggml_cpu_init fills it; some of ggml's code reads it). */
float ggml_table_f32_f16[1 << 16];

static const uint8_t SCALE[2] = {0x1f, 0x21}; /* f16 0.01 */

/* Random weights of t in w (len bytes, whole blocks), as kernel_speed.rs fills ours. */
static void fill_weights(const struct wtype *t, uint8_t *w, size_t len, bool repacked) {
    for (size_t i = 0; i + 8 <= len; i += 8) {
        uint64_t v = next_u64();
        if (t->ggml == GGML_TYPE_F32) v = (v & 0x807fffff807fffffull) | 0x3f0000003f000000ull;
        if (t->ggml == GGML_TYPE_F16) v = (v & 0x83ff83ff83ff83ffull) | 0x3800380038003800ull;
        if (t->ggml == GGML_TYPE_BF16) v = (v & 0x807f807f807f807full) | 0x3f003f003f003f00ull;
        memcpy(w + i, &v, 8);
    }
    if (repacked) {
        for (size_t b = 0; b + t->rp_block_bytes <= len; b += t->rp_block_bytes)
            for (int j = 0; j < t->rp_nscales; j++) memcpy(w + b + 2 * j, SCALE, 2);
    } else {
        for (size_t b = 0; b + t->block_bytes <= len; b += t->block_bytes)
            for (int j = 0; j < t->nscales; j++) memcpy(w + b + t->scales[j], SCALE, 2);
    }
}

/* One activation row of act from f32, as ggml's from_float does. */
static void from_float(int act, const float *x, void *y, int cols) {
    switch (act) {
    case GGML_TYPE_F32: memcpy(y, x, (size_t)cols * 4); break;
    case GGML_TYPE_F16:
        for (int i = 0; i < cols; i++) ((uint16_t *)y)[i] = _cvtss_sh(x[i], 0);
        break;
    case GGML_TYPE_BF16:
        for (int i = 0; i < cols; i++) {
            uint32_t u;
            memcpy(&u, &x[i], 4);
            ((uint16_t *)y)[i] = (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
        }
        break;
    case GGML_TYPE_Q8_0: quantize_row_q8_0(x, y, cols); break;
    case GGML_TYPE_Q8_1: quantize_row_q8_1(x, y, cols); break;
    default: quantize_row_q8_K(x, y, cols); break;
    }
}

enum path { VEC_DOT_1, VEC_DOT_4, SGEMM_4, GEMV_1, GEMM_4 };

struct job {
    const struct wtype *t;
    enum path path;
    int cols;
    size_t rows, rb;
    const uint8_t *w;
    const void *x;  /* 4 activation rows back to back (or interleaved for GEMM_4) */
    size_t xb;      /* one activation row's bytes */
    float *out;     /* rows x 4 */
};

static struct ggml_compute_params PARAMS = {0, 1, 0, NULL, NULL, false};

static bool run_pass(const struct job *j) {
    const struct wtype *t = j->t;
    switch (j->path) {
    case VEC_DOT_1:
        for (size_t r = 0; r < j->rows; r++)
            t->vec_dot(j->cols, j->out + r, 0, j->w + r * j->rb, 0, j->x, 0, 1);
        return true;
    case VEC_DOT_4:
        /* ggml_compute_forward_mul_mat_one_chunk: blocks of 16 rows, each token over the block */
        for (size_t r0 = 0; r0 < j->rows; r0 += 16) {
            size_t r1 = r0 + 16 < j->rows ? r0 + 16 : j->rows;
            for (int k = 0; k < 4; k++)
                for (size_t r = r0; r < r1; r++)
                    t->vec_dot(j->cols, j->out + k * j->rows + r, 0, j->w + r * j->rb, 0,
                               (const uint8_t *)j->x + k * j->xb, 0, 1);
        }
        return true;
    case SGEMM_4: {
        size_t asz = t->block_bytes, bsz = act_row_bytes(t->act, t->block_values);
        return llamafile_sgemm(&PARAMS, (int64_t)j->rows, 4, j->cols / t->block_values, j->w,
                               (int64_t)(j->rb / asz), j->x, (int64_t)(j->xb / bsz), j->out,
                               (int64_t)j->rows, t->ggml, t->act, GGML_TYPE_F32);
    }
    case GEMV_1:
        t->gemv(j->cols, j->out, j->rows, j->w, j->x, 1, (int)j->rows);
        return true;
    case GEMM_4:
        t->gemm(j->cols, j->out, j->rows, j->w, j->x, 4, (int)j->rows);
        return true;
    }
    return false;
}

/* Seconds per pass over all of j's rows, best of `repeats`, each rated by its chunks that
   ran without a context switch (kernel_speed.rs's best_secs_per_byte): streamed, a chunk is
   4 MiB of rows (a multiple of 8) and a repeat one pass over the matrix; in cache, a chunk is
   enough passes over the matrix for about 1 ms, 16 chunks a repeat. Negative when the path
   does not take this type. */
static double best_per_pass(const struct job *j, bool stream, int repeats) {
    if (!run_pass(j)) return -1;
    size_t crow = j->rows, nchunks = 16, passes = 1;
    if (stream) {
        crow = ((4u << 20) / j->rb + 7) / 8 * 8;
        nchunks = j->rows / crow;
    } else {
        double t = now();
        run_pass(j);
        double once = now() - t;
        passes = once > 1e-3 ? 1 : (size_t)(1e-3 / once);
    }
    double chunk_bytes = (double)(crow * j->rb * passes), best = INFINITY;
    double start = now();
    for (int r = 0; r < repeats; r++) {
        if (r >= 2 && now() - start > 3.0) break; /* a slow kernel: two repeats once past 3 s */
        double clean_t = 0, clean_b = 0, all_t = 0, all_b = 0;
        for (size_t c = 0; c < nchunks; c++) {
            struct job part = *j;
            part.rows = crow;
            if (stream) part.w = j->w + c * crow * j->rb;
            long sw = switches();
            double t = now();
            for (size_t p = 0; p < passes; p++) run_pass(&part);
            double dt = now() - t;
            if (switches() == sw) clean_t += dt, clean_b += chunk_bytes;
            all_t += dt, all_b += chunk_bytes;
        }
        double spb = clean_b > 0 ? clean_t / clean_b : all_t / all_b;
        if (spb < best) best = spb;
    }
    return best * (double)(j->rows * j->rb);
}

static bool wanted(const char *list, const char *name) {
    if (!list) return true;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncasecmp(p, name, n) == 0) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

int main(int argc, char **argv) {
    const char *cpu = "unknown", *types = NULL;
#if defined(__AVX512F__)
    const char *isa = "avx512";
#else
    const char *isa = "avx2";
#endif
    int repeats = 5;
    size_t cache_kib = 192, stream_mib = 512;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--cpu")) cpu = argv[i + 1];
        else if (!strcmp(argv[i], "--isa")) isa = argv[i + 1];
        else if (!strcmp(argv[i], "--types")) types = argv[i + 1];
        else if (!strcmp(argv[i], "--repeats")) repeats = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--cache-kib")) cache_kib = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--stream-mib")) stream_mib = (size_t)atol(argv[i + 1]);
        else {
            fprintf(stderr, "unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    if (repeats < 1) repeats = 1;
    for (uint32_t i = 0; i < (1u << 16); i++) ggml_table_f32_f16[i] = _cvtsh_ss((unsigned short)i);
    double ghz0 = core_ghz();
    fprintf(stderr, "ggml %s: core clock %.3f GHz (dependent adds)\n", isa, ghz0);

    size_t stream_bytes = stream_mib << 20, cache_bytes = cache_kib << 10;
    size_t max_rb = 0;
    for (size_t i = 0; i < NTYPES; i++) {
        size_t rb = row_bytes(&TYPES[i], cols_for(&TYPES[i]));
        if (rb > max_rb) max_rb = rb;
    }
    uint8_t *all = region(rows_for(stream_bytes, max_rb, true) * max_rb + (8u << 20));

    struct result {
        const struct wtype *t;
        const char *impl, *kind, *res;
        int cols;
        size_t rows;
        double secs;
    } results[NTYPES * 10];
    size_t nres = 0;

    for (size_t ti = 0; ti < NTYPES; ti++) {
        const struct wtype *t = &TYPES[ti];
        if (!wanted(types, t->name)) continue;
        int cols = cols_for(t);
        size_t rb = row_bytes(t, cols);
        size_t srows = rows_for(stream_bytes, rb, true), crows = rows_for(cache_bytes, rb, false);
        size_t xb = act_row_bytes(t->act, cols);
        /* activations: 4 rows plain, and 4 rows interleaved for gemm */
        float *xf = malloc(sizeof(float) * 4 * (size_t)cols);
        for (size_t i = 0; i < 4 * (size_t)cols; i++) xf[i] = next_f32();
        uint8_t *x = aligned_alloc(64, (4 * xb + 63) / 64 * 64);
        for (int k = 0; k < 4; k++) from_float(t->act, xf + k * cols, x + k * xb, cols);
        uint8_t *x4 = aligned_alloc(64, (4 * xb + 63) / 64 * 64);
        if (t->quantize_mat) t->quantize_mat(xf, x4, cols);
        float *out = aligned_alloc(64, (4 * srows * sizeof(float) + 63) / 64 * 64);
        uint8_t *cached = aligned_alloc(64, (crows * rb + 63) / 64 * 64);

        for (int layout = 0; layout < (t->gemv ? 2 : 1); layout++) {
            bool rp = layout == 1;
            fill_weights(t, all, srows * rb, rp);
            memcpy(cached, all, crows * rb);
            enum path paths[3];
            int np = 0;
            if (rp) {
                paths[np++] = GEMV_1;
                paths[np++] = GEMM_4;
            } else {
                paths[np++] = VEC_DOT_1;
                paths[np++] = VEC_DOT_4;
                paths[np++] = SGEMM_4;
            }
            for (int pi = 0; pi < np; pi++) {
                for (int stream = 0; stream < 2; stream++) {
                    struct job j = {t, paths[pi], cols, stream ? srows : crows, rb,
                                    stream ? all : cached, paths[pi] == GEMM_4 ? (void *)x4 : x,
                                    xb, out};
                    double s = best_per_pass(&j, stream, repeats);
                    if (s < 0) break; /* sgemm does not take this type */
                    const char *impl = rp ? "ggml-repack"
                                          : paths[pi] == SGEMM_4 ? "ggml-sgemm" : "ggml";
                    bool four = paths[pi] == VEC_DOT_4 || paths[pi] == SGEMM_4 ||
                                paths[pi] == GEMM_4;
                    results[nres++] = (struct result){t, impl, four ? "4tok" : "1tok",
                                                      stream ? "stream" : "cache", cols, j.rows, s};
                }
            }
        }
        fprintf(stderr, "%s done\n", t->name);
        free(xf);
        free(x);
        free(x4);
        free(out);
        free(cached);
    }
    double ghz1 = core_ghz(), ghz = ghz0 > ghz1 ? ghz0 : ghz1;
    fprintf(stderr, "core clock at the end %.3f GHz; using %.3f\n", ghz1, ghz);
    printf("cpu,isa,impl,type,kind,residence,cols,rows,gbps,weights_per_cycle,ghz\n");
    fprintf(stderr, "%-12s %-6s %-5s %-7s %10s %10s\n", "impl", "type", "kind", "where", "GB/s",
            "w/cycle");
    for (size_t i = 0; i < nres; i++) {
        const struct result *r = &results[i];
        double bytes = (double)(r->rows * row_bytes(r->t, r->cols));
        double weights = (double)r->rows * r->cols * (r->kind[0] == '4' ? 4 : 1);
        double gbps = bytes / r->secs / 1e9, wpc = weights / (r->secs * ghz * 1e9);
        printf("\"%s\",%s,%s,%s,%s,%s,%d,%zu,%.3f,%.3f,%.3f\n", cpu, isa, r->impl, r->t->name,
               r->kind, r->res, r->cols, r->rows, gbps, wpc, ghz);
        fprintf(stderr, "%-12s %-6s %-5s %-7s %10.2f %10.2f\n", r->impl, r->t->name, r->kind,
                r->res, gbps, wpc);
    }
    return 0;
}
