/* S1's attention for decode steps: one new query per row over that row's bf16 key/value cache.
 *
 * out[b, h] = softmax(q[b, h] . K[b, h]^T / sqrt(D)) V[b, h], every cached key valid (no mask), scores,
 * softmax and the weighted sum in fp32, out fp32. torch's CPU flash kernel takes 55-70 us per layer here
 * for 16 heads over 210 cold positions, mostly its set-up and the cache's latency; this loop prefetches
 * the next positions and takes 35-45 us (bench/README.md, issue 18, "Seventh pass").
 *
 * q: row b, head h at q + b * q_row + h * D; K and V: position t of row b, head h at
 * base + b * kv_row + h * kv_head + t * D (the KVCache's (B, H, capacity, D) views); out (B, H, D).
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#define MAX_D 256        /* head widths up to 256, multiples of 16 */
#define MAX_LEN 65536    /* scores live on the thread's stack */
#define AHEAD 16         /* positions prefetched ahead */

static inline __m512 load_bf16(const uint16_t* p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
}

/* Returns 0, or -1 for a head width or length it does not take (the caller keeps torch's kernel). */
int attend_one(const uint16_t* q, long q_row, const uint16_t* k, const uint16_t* v, long kv_row, long kv_head,
               int B, int H, int L, int D, float* out, int threads) {
    if (D % 16 != 0 || D > MAX_D || L < 1 || L > MAX_LEN) return -1;
    const int chunks = D / 16;
    const float scale = 1.0f / sqrtf((float)D);
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (int task = 0; task < B * H; task++) {
        const int b = task / H, h = task % H;
        const uint16_t* qh = q + b * q_row + (long)h * D;
        const uint16_t* kh = k + b * kv_row + h * kv_head;
        const uint16_t* vh = v + b * kv_row + h * kv_head;
        __m512 qv[MAX_D / 16], acc[MAX_D / 16];
        for (int c = 0; c < chunks; c++) {
            qv[c] = load_bf16(qh + 16 * c);
            acc[c] = _mm512_setzero_ps();
        }
        float s[L];
        float top = -INFINITY;
        for (int t = 0; t < L; t++) {
            _mm_prefetch((const char*)(kh + (long)(t + AHEAD) * D), _MM_HINT_T0);
            __m512 dot = _mm512_mul_ps(qv[0], load_bf16(kh + (long)t * D));
            for (int c = 1; c < chunks; c++) dot = _mm512_fmadd_ps(qv[c], load_bf16(kh + (long)t * D + 16 * c), dot);
            s[t] = _mm512_reduce_add_ps(dot) * scale;
            top = s[t] > top ? s[t] : top;
        }
        float total = 0.0f;
        for (int t = 0; t < L; t++) {
            _mm_prefetch((const char*)(vh + (long)(t + AHEAD) * D), _MM_HINT_T0);
            const float p = expf(s[t] - top);
            total += p;
            const __m512 pv = _mm512_set1_ps(p);
            for (int c = 0; c < chunks; c++) acc[c] = _mm512_fmadd_ps(pv, load_bf16(vh + (long)t * D + 16 * c), acc[c]);
        }
        const __m512 inv = _mm512_set1_ps(1.0f / total);
        float* o = out + ((long)b * H + h) * D;
        for (int c = 0; c < chunks; c++) _mm512_storeu_ps(o + 16 * c, _mm512_mul_ps(acc[c], inv));
    }
    return 0;
}
