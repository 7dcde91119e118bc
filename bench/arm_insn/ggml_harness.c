/*
 * Calls one of ggml's aarch64 CPU kernels REPS times on fixed random data, for
 * bench/arm_insn/run.sh, which runs it under qemu-aarch64 with an instruction-counting plugin
 * at two values of REPS: the difference per call is the kernel's dynamic instruction count.
 *
 *   ggml_harness KERNEL REPS        (KERNEL as listed by `ggml_harness list`; run.sh
 *                                    pads REPS with zeros to a fixed width, so that the
 *                                    two runs' arguments, and so their stacks, line up)
 *   ggml_harness list               (the kernels this build has, with units per call)
 *
 * Kernels (n = 4096 values per row):
 *   vec_dot/TYPE     ggml_vec_dot_TYPE_q8_x(n, ..., nrc=1): one weight row x one token, as
 *                    ggml's mul_mat runs it for a single token (decode) without repacking
 *   vec_dot2/TYPE    the same with nrc=2 (only with __ARM_FEATURE_MATMUL_INT8, for the types
 *                    that have it): 2 weight rows x 2 tokens through SMMLA, what ggml's
 *                    mul_mat uses for prompts when the weights are not repacked
 *   gemv/TYPE_RxC    ggml_gemv_*: 8 repacked weight rows x 1 token (ggml's decode path for
 *                    the repacked types: Q4_0, Q4_K, Q5_K, Q6_K, Q8_0 when the CPU has dotprod)
 *   gemm/TYPE_RxC    ggml_gemm_*: 8 repacked weight rows x 4 tokens (prompts, repacked types)
 *   quant/q8_x       quantize_row_q8_0 / q8_1 / q8_K: one token's activations
 *   noop             an empty call through the same loop (the harness's own cost per call)
 *
 * Units per call = rows x tokens x n / 256, so insns / units is "instructions per 256
 * multiply-adds of one weight row with one token" (for quant/: per 256 values).
 *
 * The data is random bytes with every f16 scale set to a small finite value: these kernels
 * have no data-dependent branches, so the counts do not depend on the values.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 4096
#define QK_K 256
#define ROWS 8 /* weight rows for gemv/gemm */

typedef uint16_t ggml_fp16_t;

#define VEC_DOT_ARGS                                                                              \
    int n, float *restrict s, size_t bs, const void *restrict vx, size_t bx,                      \
        const void *restrict vy, size_t by, int nrc
#define GEMX_ARGS                                                                                  \
    int n, float *restrict s, size_t bs, const void *restrict vx, const void *restrict vy, int nr, \
        int nc

/* ggml-cpu/quants.h */
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
/* ggml-cpu/vec.h (C linkage there too) */
void ggml_vec_dot_f32(int n, float *restrict s, size_t bs, const float *restrict x, size_t bx,
                      const float *restrict y, size_t by, int nrc);
void ggml_vec_dot_f16(int n, float *restrict s, size_t bs, ggml_fp16_t *restrict x, size_t bx,
                      ggml_fp16_t *restrict y, size_t by, int nrc);
void ggml_vec_dot_bf16(int n, float *restrict s, size_t bs, uint16_t *restrict x, size_t bx,
                       uint16_t *restrict y, size_t by, int nrc);
/* ggml-cpu/repack.h */
void ggml_gemv_q4_0_4x4_q8_0(GEMX_ARGS);
void ggml_gemv_q4_0_4x8_q8_0(GEMX_ARGS);
void ggml_gemv_q4_K_8x4_q8_K(GEMX_ARGS);
void ggml_gemv_q4_K_8x8_q8_K(GEMX_ARGS);
void ggml_gemv_q5_K_8x4_q8_K(GEMX_ARGS);
void ggml_gemv_q5_K_8x8_q8_K(GEMX_ARGS);
void ggml_gemv_q6_K_8x4_q8_K(GEMX_ARGS);
void ggml_gemv_q6_K_8x8_q8_K(GEMX_ARGS);
void ggml_gemv_q8_0_4x4_q8_0(GEMX_ARGS);
void ggml_gemv_q8_0_4x8_q8_0(GEMX_ARGS);
void ggml_gemm_q4_0_4x4_q8_0(GEMX_ARGS);
void ggml_gemm_q4_0_4x8_q8_0(GEMX_ARGS);
void ggml_gemm_q4_K_8x4_q8_K(GEMX_ARGS);
void ggml_gemm_q4_K_8x8_q8_K(GEMX_ARGS);
void ggml_gemm_q5_K_8x4_q8_K(GEMX_ARGS);
void ggml_gemm_q5_K_8x8_q8_K(GEMX_ARGS);
void ggml_gemm_q6_K_8x4_q8_K(GEMX_ARGS);
void ggml_gemm_q6_K_8x8_q8_K(GEMX_ARGS);
void ggml_gemm_q8_0_4x4_q8_0(GEMX_ARGS);
void ggml_gemm_q8_0_4x8_q8_0(GEMX_ARGS);

typedef void (*vec_dot_fn)(VEC_DOT_ARGS);
typedef void (*gemx_fn)(GEMX_ARGS);
typedef void (*quant_fn)(const float *restrict x, void *restrict y, int64_t k);

enum wtype { F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K };

/* Bytes per block, values per block, and the offsets of the f16 scales in a block. */
static const struct {
    const char *name;
    int block_bytes, block_values;
    int scales[2], nscales;
} TYPES[] = {
    [F32] = {"f32", 4, 1, {0}, 0},        [F16] = {"f16", 2, 1, {0}, 0},
    [BF16] = {"bf16", 2, 1, {0}, 0},      [Q4_0] = {"q4_0", 18, 32, {0}, 1},
    [Q4_1] = {"q4_1", 20, 32, {0, 2}, 2}, [Q5_0] = {"q5_0", 22, 32, {0}, 1},
    [Q5_1] = {"q5_1", 24, 32, {0, 2}, 2}, [Q8_0] = {"q8_0", 34, 32, {0}, 1},
    [Q8_1] = {"q8_1", 36, 32, {0, 2}, 2}, [Q2_K] = {"q2_K", 84, 256, {80, 82}, 2},
    [Q3_K] = {"q3_K", 110, 256, {108}, 1}, [Q4_K] = {"q4_K", 144, 256, {0, 2}, 2},
    [Q5_K] = {"q5_K", 176, 256, {0, 2}, 2}, [Q6_K] = {"q6_K", 210, 256, {208}, 1},
    [Q8_K] = {"q8_K", 292, 256, {0}, 0},
};

static size_t row_bytes(enum wtype t) {
    return (size_t)N / TYPES[t].block_values * TYPES[t].block_bytes;
}

enum kind { VEC_DOT, VEC_DOT2, GEMV, GEMM, QUANT, NOOP };

struct kernel {
    const char *prefix, *shape; /* name: PREFIX/TYPE or PREFIX/TYPE_SHAPE, TYPE as ggml spells it */
    enum kind kind;
    enum wtype w, x; /* weight type, activation type */
    void *fn;
};

#define VD(t, xt, f) {"vec_dot", NULL, VEC_DOT, t, xt, (void *)f}
#define VD2(t, xt, f) {"vec_dot2", NULL, VEC_DOT2, t, xt, (void *)f}
#define GV(t, xt, shape, f) {"gemv", shape, GEMV, t, xt, (void *)f}
#define GM(t, xt, shape, f) {"gemm", shape, GEMM, t, xt, (void *)f}

static void noop_fn(void) { __asm__ volatile(""); }

static const struct kernel KERNELS[] = {
    {"noop", NULL, NOOP, F32, F32, (void *)noop_fn},
    VD(F32, F32, ggml_vec_dot_f32),
    VD(F16, F16, ggml_vec_dot_f16),
    VD(BF16, BF16, ggml_vec_dot_bf16),
    VD(Q4_0, Q8_0, ggml_vec_dot_q4_0_q8_0),
    VD(Q4_1, Q8_1, ggml_vec_dot_q4_1_q8_1),
    VD(Q5_0, Q8_0, ggml_vec_dot_q5_0_q8_0),
    VD(Q5_1, Q8_1, ggml_vec_dot_q5_1_q8_1),
    VD(Q8_0, Q8_0, ggml_vec_dot_q8_0_q8_0),
    VD(Q2_K, Q8_K, ggml_vec_dot_q2_K_q8_K),
    VD(Q3_K, Q8_K, ggml_vec_dot_q3_K_q8_K),
    VD(Q4_K, Q8_K, ggml_vec_dot_q4_K_q8_K),
    VD(Q5_K, Q8_K, ggml_vec_dot_q5_K_q8_K),
    VD(Q6_K, Q8_K, ggml_vec_dot_q6_K_q8_K),
#if defined(__ARM_FEATURE_MATMUL_INT8)
    VD2(Q4_0, Q8_0, ggml_vec_dot_q4_0_q8_0),
    VD2(Q4_1, Q8_1, ggml_vec_dot_q4_1_q8_1),
    VD2(Q8_0, Q8_0, ggml_vec_dot_q8_0_q8_0),
    VD2(Q4_K, Q8_K, ggml_vec_dot_q4_K_q8_K),
    VD2(Q6_K, Q8_K, ggml_vec_dot_q6_K_q8_K),
#endif
    /* The repacked kernels ggml's CPU backend picks (ggml_repack_get_optimal_repack_type:
       nothing without dotprod on Arm, the 4x4 / 8x4 layouts with dotprod, the 4x8 / 8x8 ones
       with i8mm, for Q4_0, Q4_K, Q5_K, Q6_K and Q8_0 weights of a row count divisible by
       4 or 8). */
#if defined(__ARM_FEATURE_MATMUL_INT8)
    GV(Q4_0, Q8_0, "4x8", ggml_gemv_q4_0_4x8_q8_0),
    GM(Q4_0, Q8_0, "4x8", ggml_gemm_q4_0_4x8_q8_0),
    GV(Q4_K, Q8_K, "8x8", ggml_gemv_q4_K_8x8_q8_K),
    GM(Q4_K, Q8_K, "8x8", ggml_gemm_q4_K_8x8_q8_K),
    GV(Q5_K, Q8_K, "8x8", ggml_gemv_q5_K_8x8_q8_K),
    GM(Q5_K, Q8_K, "8x8", ggml_gemm_q5_K_8x8_q8_K),
    GV(Q6_K, Q8_K, "8x8", ggml_gemv_q6_K_8x8_q8_K),
    GM(Q6_K, Q8_K, "8x8", ggml_gemm_q6_K_8x8_q8_K),
    GV(Q8_0, Q8_0, "4x8", ggml_gemv_q8_0_4x8_q8_0),
    GM(Q8_0, Q8_0, "4x8", ggml_gemm_q8_0_4x8_q8_0),
#elif defined(__ARM_FEATURE_DOTPROD)
    GV(Q4_0, Q8_0, "4x4", ggml_gemv_q4_0_4x4_q8_0),
    GM(Q4_0, Q8_0, "4x4", ggml_gemm_q4_0_4x4_q8_0),
    GV(Q4_K, Q8_K, "8x4", ggml_gemv_q4_K_8x4_q8_K),
    GM(Q4_K, Q8_K, "8x4", ggml_gemm_q4_K_8x4_q8_K),
    GV(Q5_K, Q8_K, "8x4", ggml_gemv_q5_K_8x4_q8_K),
    GM(Q5_K, Q8_K, "8x4", ggml_gemm_q5_K_8x4_q8_K),
    GV(Q6_K, Q8_K, "8x4", ggml_gemv_q6_K_8x4_q8_K),
    GM(Q6_K, Q8_K, "8x4", ggml_gemm_q6_K_8x4_q8_K),
    GV(Q8_0, Q8_0, "4x4", ggml_gemv_q8_0_4x4_q8_0),
    GM(Q8_0, Q8_0, "4x4", ggml_gemm_q8_0_4x4_q8_0),
#endif
    {"quant", NULL, QUANT, F32, Q8_0, (void *)quantize_row_q8_0},
    {"quant", NULL, QUANT, F32, Q8_1, (void *)quantize_row_q8_1},
    {"quant", NULL, QUANT, F32, Q8_K, (void *)quantize_row_q8_K},
};
#define NKERNELS (sizeof KERNELS / sizeof KERNELS[0])

static uint32_t rng = 12345;
static uint32_t next_u32(void) {
    rng = rng * 1664525u + 1013904223u;
    return rng;
}
static float next_f32(void) { return (float)(next_u32() >> 8) / (float)(1u << 24) * 2.0f - 1.0f; }

/* Random row(s) of type t: random bytes, f16 scales 0.01 (0x211f); floats in [-1, 1). */
static void *random_rows(enum wtype t, int rows) {
    size_t rb = row_bytes(t);
    uint8_t *p = aligned_alloc(64, rb * rows + 64);
    if (t == F32) {
        for (size_t i = 0; i < (size_t)N * rows; i++) ((float *)p)[i] = next_f32();
        return p;
    }
    if (t == F16 || t == BF16) {
        for (size_t i = 0; i < (size_t)N * rows; i++) {
            float v = next_f32();
            uint16_t h;
            if (t == F16) {
                __fp16 f = (__fp16)v;
                memcpy(&h, &f, 2);
            } else {
                uint32_t u;
                memcpy(&u, &v, 4);
                h = (uint16_t)(u >> 16);
            }
            ((uint16_t *)p)[i] = h;
        }
        return p;
    }
    for (size_t i = 0; i < rb * rows; i++) p[i] = (uint8_t)(next_u32() >> 24);
    for (size_t b = 0; b < rb * rows; b += TYPES[t].block_bytes) {
        for (int j = 0; j < TYPES[t].nscales; j++) {
            p[b + TYPES[t].scales[j]] = 0x1f;
            p[b + TYPES[t].scales[j] + 1] = 0x21;
        }
    }
    return p;
}

/* Activation rows: floats quantized by ggml's own quantizer (valid d, s and bsums). */
static void *act_rows(enum wtype t, int rows) {
    if (t == F32 || t == F16 || t == BF16) return random_rows(t, rows);
    size_t rb = row_bytes(t);
    uint8_t *p = aligned_alloc(64, rb * rows + 64);
    float *f = malloc(sizeof(float) * N);
    for (int r = 0; r < rows; r++) {
        for (int i = 0; i < N; i++) f[i] = next_f32();
        if (t == Q8_0) quantize_row_q8_0(f, p + r * rb, N);
        else if (t == Q8_1) quantize_row_q8_1(f, p + r * rb, N);
        else quantize_row_q8_K(f, p + r * rb, N);
    }
    free(f);
    return p;
}

static const char *kernel_name(const struct kernel *k) {
    static char buf[64];
    if (k->kind == NOOP) return "noop";
    enum wtype t = k->kind == QUANT ? k->x : k->w;
    snprintf(buf, sizeof buf, "%s/%s%s%s", k->prefix, TYPES[t].name, k->shape ? "_" : "",
             k->shape ? k->shape : "");
    return buf;
}

/* Rows x tokens x N / 256 for one call. */
static long units(const struct kernel *k) {
    switch (k->kind) {
    case VEC_DOT: return N / 256;
    case VEC_DOT2: return 4 * N / 256;
    case GEMV: return ROWS * N / 256;
    case GEMM: return ROWS * 4 * N / 256;
    case QUANT: return N / 256;
    case NOOP: return 1;
    }
    return 1;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "list") == 0) {
        for (size_t i = 0; i < NKERNELS; i++)
            printf("%s %ld\n", kernel_name(&KERNELS[i]), units(&KERNELS[i]));
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: %s KERNEL REPS | list\n", argv[0]);
        return 2;
    }
    const struct kernel *k = NULL;
    for (size_t i = 0; i < NKERNELS; i++)
        if (strcmp(kernel_name(&KERNELS[i]), argv[1]) == 0) k = &KERNELS[i];
    if (!k) {
        fprintf(stderr, "unknown kernel %s (see `list`)\n", argv[1]);
        return 2;
    }
    long reps = atol(argv[2]);

    /* Weights: 8 rows (gemv/gemm; the repacked layouts are as many bytes as the plain
       rows), activations: 4 rows (gemm takes 4 tokens interleaved, again as many bytes). */
    void *w = random_rows(k->w, ROWS);
    void *x = act_rows(k->x, 4);
    float *xf = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) xf[i] = next_f32();
    void *q = aligned_alloc(64, row_bytes(k->x) + 64);
    float out[ROWS * 4] = {0};
    volatile float sink = 0;
    size_t wb = row_bytes(k->w), xb = row_bytes(k->x);

    for (long r = 0; r < reps; r++) {
        switch (k->kind) {
        case VEC_DOT: ((vec_dot_fn)k->fn)(N, out, 0, w, wb, x, xb, 1); break;
        case VEC_DOT2: ((vec_dot_fn)k->fn)(N, out, 2, w, wb, x, xb, 2); break;
        case GEMV: ((gemx_fn)k->fn)(N, out, ROWS, w, x, 1, ROWS); break;
        case GEMM: ((gemx_fn)k->fn)(N, out, ROWS, w, x, 4, ROWS); break;
        case QUANT: ((quant_fn)k->fn)(xf, q, N); break;
        case NOOP: ((void (*)(void))k->fn)(); break;
        }
        sink += out[0];
    }
    /* Nothing here depends on REPS or on the results: the output costs the same in both runs. */
    puts(argv[1]);
    return 0;
}
