/* S1's int8 weight-only Linear for decode steps: p = round_bf16((x @ Q^T) * s), then its bias (and ReLU).
 *
 * x (M, K) rounded to bf16, Q (N, K) int8 with one fp32 scale per output channel s (N,); the products are
 * accumulated in fp32 (the values of torch's _weight_int8pack_mm, summed in another order). The bias and
 * ReLU follow with torch's roundings (see Epilogue), so one call does what four torch operators did.
 *
 * Why not torch's kernel: at one to a few rows a decode step only streams the weights, and torch's
 * _weight_int8pack_mm reads them at about 10 GB/s on the 2-core AVX-512 machine where this loop reads
 * 40-50 GB/s (bench/README.md, issue 18, "Seventh pass").
 *
 * Layout (packed once by gpt_sovits/models/cpu_kernels.py): the first N64 = N - N % 64 output channels as
 * (N64 / 64, K, 64), so that each k of a group of 64 channels is one cache line; the remaining R = N % 64
 * channels (a multiple of 16) as (K, R) after them. A broadcast of x[m, k] then multiplies 64 channels' weights
 * with four FMAs and no horizontal sums.
 *
 * Threads: an OpenMP loop over groups of 64 channels. Loaded after torch, this library binds to torch's own
 * libgomp (same soname), so it shares torch's thread pool; the caller passes torch's thread count.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define ROWS 4          /* rows of x per pass over a group's weights: 16 accumulators */
#define PREFETCH 2048   /* bytes ahead in a group's weights: hides the latency of the next lines */

static inline float bf16_to_f32(uint16_t v) {
    uint32_t u = (uint32_t)v << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even, as torch's fp32 -> bf16 conversion (NaN kept a quiet NaN). */
static inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline __m512 load16(const int8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)p)));
}

/* What follows the product p = bf16(acc * s) (torch's semantics, so that fused and unfused agree bit for bit):
 * PRODUCT: p in bf16; PLUS_BIAS: bias + p in fp32; PLUS_BIAS_ROUNDED: bf16(bias + p), then max(., 0) if relu. */
enum { PRODUCT = 0, PLUS_BIAS = 1, PLUS_BIAS_ROUNDED = 2 };

typedef struct {
    const float* scale;  /* (N,) */
    const float* bias;   /* (N,) or NULL */
    void* y;             /* (M, N): bf16 (uint16_t) or fp32 */
    int mode, relu, N;
} Epilogue;

static void store16(const __m512 acc, const Epilogue* e, int row, int col) {
    float out[16];
    _mm512_storeu_ps(out, _mm512_mul_ps(acc, _mm512_loadu_ps(e->scale + col)));
    const size_t at = (size_t)row * e->N + col;
    for (int j = 0; j < 16; j++) {
        const uint16_t p = f32_to_bf16(out[j]);
        const float b = e->bias ? e->bias[col + j] : 0.0f;
        if (e->mode == PLUS_BIAS) {
            ((float*)e->y)[at + j] = b + bf16_to_f32(p);
        } else if (e->mode == PLUS_BIAS_ROUNDED) {
            uint16_t r = f32_to_bf16(b + bf16_to_f32(p));
            if (e->relu && (r & 0x8000u)) r = 0;  /* a negative bf16 (or -0) becomes +0, as relu_ gives */
            ((uint16_t*)e->y)[at + j] = r;
        } else {
            ((uint16_t*)e->y)[at + j] = p;
        }
    }
}

/* One group of 64 channels for rows [m0, m0 + mm): w points at the group's (K, 64) weights. */
static void group64(const float* xf, const int8_t* w, const Epilogue* e, int m0, int col, int mm, int K) {
    __m512 acc[ROWS][4];
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++) {
        const int8_t* wk = w + (size_t)k * 64;
        _mm_prefetch((const char*)(wk + PREFETCH), _MM_HINT_T0);
        const __m512 w0 = load16(wk), w1 = load16(wk + 16), w2 = load16(wk + 32), w3 = load16(wk + 48);
        for (int i = 0; i < mm; i++) {
            const __m512 xv = _mm512_set1_ps(xf[(size_t)i * K + k]);
            acc[i][0] = _mm512_fmadd_ps(xv, w0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(xv, w1, acc[i][1]);
            acc[i][2] = _mm512_fmadd_ps(xv, w2, acc[i][2]);
            acc[i][3] = _mm512_fmadd_ps(xv, w3, acc[i][3]);
        }
    }
    for (int i = 0; i < mm; i++)
        for (int j = 0; j < 4; j++) store16(acc[i][j], e, m0 + i, col + 16 * j);
}

/* The R = N % 64 last channels, stored (K, R), in blocks of 16. */
static void tail(const float* xf, const int8_t* w, const Epilogue* e, int m0, int col, int mm, int K, int R) {
    for (int b = 0; b < R; b += 16) {
        __m512 acc[ROWS];
        for (int i = 0; i < ROWS; i++) acc[i] = _mm512_setzero_ps();
        for (int k = 0; k < K; k++) {
            const __m512 wv = load16(w + (size_t)k * R + b);
            for (int i = 0; i < mm; i++) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(xf[(size_t)i * K + k]), wv, acc[i]);
        }
        for (int i = 0; i < mm; i++) store16(acc[i], e, m0 + i, col + b);
    }
}

/* x (M, K): fp32 (rounded to bf16 here, as torch's .to(bfloat16)) when x_f32, else bf16. Returns 0, or -1
 * when N is not a multiple of 16 or the mode is unknown. */
int int8_linear(const void* x, int x_f32, const int8_t* q, const float* scale, const float* bias, void* y,
                int mode, int relu, int M, int K, int N, int threads) {
    if (N % 16 != 0 || mode < PRODUCT || mode > PLUS_BIAS_ROUNDED) return -1;
    const Epilogue e = {scale, bias, y, mode, relu, N};
    const int groups = N / 64, rem = N % 64;
    const int tasks = groups + (rem ? 1 : 0);
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (int t = 0; t < tasks; t++) {
        float xf[ROWS * K];  /* the rows of x, bf16 values in fp32, ROWS at a time (K of a few thousand) */
        for (int m0 = 0; m0 < M; m0 += ROWS) {
            const int mm = M - m0 < ROWS ? M - m0 : ROWS;
            for (int i = 0; i < mm; i++)
                for (int k = 0; k < K; k++) {
                    const size_t at = (size_t)(m0 + i) * K + k;
                    const uint16_t v = x_f32 ? f32_to_bf16(((const float*)x)[at]) : ((const uint16_t*)x)[at];
                    xf[i * K + k] = bf16_to_f32(v);
                }
            if (t < groups)
                group64(xf, q + (size_t)t * K * 64, &e, m0, 64 * t, mm, K);
            else
                tail(xf, q + (size_t)groups * K * 64, &e, m0, 64 * groups, mm, K, rem);
        }
    }
    return 0;
}

/* The thread count this library's OpenMP runtime would use: tells whether it shares torch's. */
int kernels_max_threads(void) {
#ifdef _OPENMP
    extern int omp_get_max_threads(void);
    return omp_get_max_threads();
#else
    return 1;
#endif
}
