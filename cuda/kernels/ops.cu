// Kernels of the CUDA execution path (package cuda). Each kernel mirrors the
// reference semantics its defKernel entry gives in its op family's file of
// package cuda (conv.go, batchnorm.go, ...), which mirror the CPU ops of
// graph/ops.
//
// Parameter convention (checked by cuda/catalog_test.go against the Go
// catalog): all int parameters first, in the order of the kernel's argument
// struct's params, then all float parameters, then the buffers. Reductions accumulate in double, as the CPU kernels do, and are
// deterministic (fixed block size, fixed tree order, no atomics).
//
// Compiled to PTX for sm_90 by `go generate ./cuda/kernels` (nvcc 11.8, see
// gen.go); the PTX is committed and embedded by the cuda-tagged executor.

#define BLOCK 256

extern "C" {

// ---- generic ----------------------------------------------------------------

__global__ void fill(int n, float v, float* y) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) y[i] = v;
}

// copy2d: rows x cols block from src (row stride ss, offset so) to dst (ds, do).
__global__ void copy2d(int rows, int cols, int ss, int so, int ds, int dof, const float* src, float* dst) {
    long total = (long)rows * cols;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        long r = i / cols, c = i % cols;
        dst[dof + r * ds + c] = src[so + r * ss + c];
    }
}

__global__ void relu_fwd(int n, const float* x, float* y) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float v = x[i];
        y[i] = v > 0.f ? v : 0.f;
    }
}

__global__ void prelu_fwd(int n, int c, int inner, const float* x, const float* alpha, float* y) {
    long total = (long)n * c * inner;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        float v = x[i];
        y[i] = v > 0.f ? v : alpha[(i / inner) % c] * v;
    }
}

__global__ void prelu_dx(int n, int c, int inner, const float* x, const float* alpha, const float* dy, float* dx) {
    long total = (long)n * c * inner;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x)
        dx[i] = x[i] > 0.f ? dy[i] : alpha[(i / inner) % c] * dy[i];
}

// y[(n,c,:)] += b[c]
__global__ void bias_nchw(int n, int c, int inner, const float* b, float* y) {
    long total = (long)n * c * inner;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x)
        y[i] += b[(i / inner) % c];
}

// y[r, j] += b[j]
__global__ void bias_rows(int rows, int cols, const float* b, float* y) {
    long total = (long)rows * cols;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x)
        y[i] += b[i % cols];
}

// out[j] = sum over r of x[r, j], one thread per column, rows in order.
__global__ void sum_rows(int rows, int cols, const float* x, float* out) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= cols) return;
    float s = 0.f;
    for (int r = 0; r < rows; r++) s += x[(long)r * cols + j];
    out[j] = s;
}

// ---- block reductions (one block per channel) -------------------------------

__device__ double block_sum(double v, double* sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = BLOCK / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

// out[c] = sum of x over (n, :) of channel c
__global__ void channel_sum(int n, int c, int inner, const float* x, float* out) {
    __shared__ double sh[BLOCK];
    int ch = blockIdx.x;
    double s = 0;
    long m = (long)n * inner;
    for (long i = threadIdx.x; i < m; i += BLOCK) {
        long b = i / inner, k = i % inner;
        s += x[(b * c + ch) * inner + k];
    }
    s = block_sum(s, sh);
    if (threadIdx.x == 0) out[ch] = (float)s;
}

__global__ void prelu_dalpha(int n, int c, int inner, const float* x, const float* dy, float* da) {
    __shared__ double sh[BLOCK];
    int ch = blockIdx.x;
    double s = 0;
    long m = (long)n * inner;
    for (long i = threadIdx.x; i < m; i += BLOCK) {
        long b = i / inner, k = i % inner;
        long o = (b * c + ch) * inner + k;
        float v = x[o];
        if (v <= 0.f) s += (double)(v * dy[o]);
    }
    s = block_sum(s, sh);
    if (threadIdx.x == 0) da[ch] = (float)s;
}

// ---- convolution helpers (GEMMs are cuBLAS) ---------------------------------
// col of image b: (C*KH*KW) x (OH*OW), images colStride apart; x images xStride apart.

}  // extern "C"

// ---- bf16 mixed precision (cuda/bf16.go) ------------------------------------
// bf16 values are stored as unsigned short bits; rounding is to nearest,
// ties to even, by integer operations on the float's bits (no bf16
// intrinsics, which need sm_80: these compile for compute_70), exactly as
// cuda.RoundBF16 rounds.

__device__ __forceinline__ unsigned short bf16_round(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u); // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

// store writes v as a float, or rounded to bf16.
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(unsigned short* p, float v) { *p = bf16_round(v); }

// ldx is element i of x as a float: fp32 x, or bf16 bits (exact).
__device__ __forceinline__ float ldx(const float* x, long i) { return x[i]; }
__device__ __forceinline__ float ldx(const unsigned short* x, long i) { return __uint_as_float((unsigned int)x[i] << 16); }

// One thread per (image, channel, output pixel) writes that pixel's kh*kw
// column entries: one index decomposition per kh*kw stores, and stores of
// neighbouring threads are neighbours (q is fastest). T: float columns, or
// bf16 ones (the GEMM operand of a bf16 step); X: float images, or bf16
// ones (a bf16 step's stored block outputs).
template <typename X, typename T>
__device__ void im2col_cols(int nimg, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw, int oh, int ow,
                            const X* x, T* col) {
    int p = oh * ow;
    long total = (long)nimg * c * p;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        int q = (int)(i % p);
        long bc = i / p; // b*c + ch
        int ox = q % ow, oy = q / ow;
        int iy0 = oy * sh - ph, ix0 = ox * sw - pw;
        const X* xp = x + bc * h * w;
        T* cp = col + bc * kh * kw * (long)p + q;
        for (int ky = 0; ky < kh; ky++) {
            int iy = iy0 + ky;
            bool rowIn = iy >= 0 && iy < h;
            for (int kx = 0; kx < kw; kx++) {
                int ix = ix0 + kx;
                store(cp, (rowIn && ix >= 0 && ix < w) ? ldx(xp, iy * w + ix) : 0.f);
                cp += p;
            }
        }
    }
}

extern "C" {

__global__ void im2col(int nimg, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw, int oh, int ow,
                       const float* x, float* col) {
    im2col_cols(nimg, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, x, col);
}

__global__ void im2col_bf16(int nimg, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw, int oh, int ow,
                            const float* x, unsigned short* col) {
    im2col_cols(nimg, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, x, col);
}

__global__ void to_bf16(int n, const float* x, unsigned short* y) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) y[i] = bf16_round(x[i]);
}

// x[b, ch, iy, ix] = sum of the column entries that read it (gather, no atomics).
__global__ void col2im(int nimg, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw, int oh, int ow,
                       const float* col, float* x) {
    int p = oh * ow, hw = h * w;
    long total = (long)nimg * c * hw;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        int r = (int)(i % hw);
        long bc = i / hw;
        int ix = r % w, iy = r / w;
        const float* cp = col + bc * kh * kw * (long)p;
        float s = 0.f;
        for (int ky = 0; ky < kh; ky++) {
            int ty = iy + ph - ky;
            if (ty < 0 || ty % sh) continue;
            int oy = ty / sh;
            if (oy >= oh) continue;
            for (int kx = 0; kx < kw; kx++) {
                int tx = ix + pw - kx;
                if (tx < 0 || tx % sw) continue;
                int ox = tx / sw;
                if (ox >= ow) continue;
                s += cp[(long)(ky * kw + kx) * p + oy * ow + ox];
            }
        }
        x[i] = s;
    }
}

// ---- shortcut, pooling --------------------------------------------------------

// y (N,outC,HO,WO) = x[:, :, ::s, ::s] with lo zero channels before.
__global__ void zeropad_bwd(int n, int c, int outc, int lo, int h, int w, int ho, int wo, int s, const float* dy, float* dx) {
    long total = (long)n * c * h * w;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        int ix = i % w, iy = (i / w) % h;
        long ch = (i / ((long)w * h)) % c, b = i / ((long)w * h * c);
        float v = 0.f;
        if (iy % s == 0 && ix % s == 0) v = dy[((b * outc + ch + lo) * ho + iy / s) * (long)wo + ix / s];
        dx[i] = v;
    }
}

// one thread per plane, the CPU's summation order
__global__ void gap_bwd(int planes, int inner, const float* dy, float* dx) {
    long total = (long)planes * inner;
    float inv = 1.f / (float)inner;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x)
        dx[i] = dy[i / inner] * inv;
}

__device__ void pool_window(int oy, int ox, int h, int w, int k, int s, int pad, int* h0, int* h1, int* w0, int* w1) {
    int a = oy * s - pad, b = ox * s - pad;
    *h1 = min(a + k, h); *w1 = min(b + k, w);
    *h0 = max(a, 0); *w0 = max(b, 0);
}

__global__ void maxpool_fwd(int planes, int h, int w, int oh, int ow, int k, int s, int pad, const float* x, float* y) {
    long total = (long)planes * oh * ow;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        int ox = i % ow, oy = (i / ow) % oh; long pl = i / ((long)ow * oh);
        int h0, h1, w0, w1;
        pool_window(oy, ox, h, w, k, s, pad, &h0, &h1, &w0, &w1);
        const float* xp = x + pl * h * w;
        float m = -INFINITY;
        for (int a = h0; a < h1; a++) for (int b = w0; b < w1; b++) m = fmaxf(m, xp[a * w + b]);
        y[i] = m;
    }
}

// one thread per plane: windows in order, first maximum wins (as the CPU)
__global__ void maxpool_bwd(int planes, int h, int w, int oh, int ow, int k, int s, int pad, const float* x, const float* dy, float* dx) {
    int pl = blockIdx.x * blockDim.x + threadIdx.x;
    if (pl >= planes) return;
    const float* xp = x + (long)pl * h * w;
    const float* dyp = dy + (long)pl * oh * ow;
    float* dxp = dx + (long)pl * h * w;
    for (int i = 0; i < h * w; i++) dxp[i] = 0.f;
    for (int oy = 0; oy < oh; oy++) for (int ox = 0; ox < ow; ox++) {
        int h0, h1, w0, w1;
        pool_window(oy, ox, h, w, k, s, pad, &h0, &h1, &w0, &w1);
        float m = -INFINITY; int at = h0 * w + w0;
        for (int a = h0; a < h1; a++) for (int b = w0; b < w1; b++) if (xp[a * w + b] > m) { m = xp[a * w + b]; at = a * w + b; }
        dxp[at] += dyp[oy * ow + ox];
    }
}

__global__ void avgpool_fwd(int planes, int h, int w, int oh, int ow, int k, int s, int pad, const float* x, float* y) {
    long total = (long)planes * oh * ow;
    float inv = 1.f / (float)(k * k);
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        int ox = i % ow, oy = (i / ow) % oh; long pl = i / ((long)ow * oh);
        int h0, h1, w0, w1;
        pool_window(oy, ox, h, w, k, s, pad, &h0, &h1, &w0, &w1);
        const float* xp = x + pl * h * w;
        float acc = 0.f;
        for (int a = h0; a < h1; a++) for (int b = w0; b < w1; b++) acc += xp[a * w + b];
        y[i] = acc * inv;
    }
}

__global__ void avgpool_bwd(int planes, int h, int w, int oh, int ow, int k, int s, int pad, const float* dy, float* dx) {
    int pl = blockIdx.x * blockDim.x + threadIdx.x;
    if (pl >= planes) return;
    float inv = 1.f / (float)(k * k);
    const float* dyp = dy + (long)pl * oh * ow;
    float* dxp = dx + (long)pl * h * w;
    for (int i = 0; i < h * w; i++) dxp[i] = 0.f;
    for (int oy = 0; oy < oh; oy++) for (int ox = 0; ox < ow; ox++) {
        int h0, h1, w0, w1;
        pool_window(oy, ox, h, w, k, s, pad, &h0, &h1, &w0, &w1);
        float v = dyp[oy * ow + ox] * inv;
        for (int a = h0; a < h1; a++) for (int b = w0; b < w1; b++) dxp[a * w + b] += v;
    }
}

// ---- softmax cross-entropy ------------------------------------------------------

// one thread per row: softmax p, row loss, rank of the label (-1 label: ignored)
__global__ void ce_fwd(int n, int k, const float* z, const int* labels, float* p, float* rowloss, float* rank) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= n) return;
    const float* zr = z + (long)r * k;
    float* pr = p + (long)r * k;
    int l = labels[r];
    if (l < 0 || l >= k) {
        rowloss[r] = 0.f;
        rank[r] = 1e9f;
        for (int j = 0; j < k; j++) pr[j] = 0.f;
        return;
    }
    float m = zr[0];
    for (int j = 1; j < k; j++) m = fmaxf(m, zr[j]);
    float zl = zr[l];
    double mf = (double)m, s = 0;
    int rk = 0;
    for (int j = 0; j < k; j++) {
        double e = exp((double)zr[j] - mf);
        pr[j] = (float)e;
        s += e;
        if (zr[j] > zl || (zr[j] == zl && j < l)) rk++;
    }
    double inv = 1 / s;
    for (int j = 0; j < k; j++) pr[j] = (float)((double)pr[j] * inv);
    rowloss[r] = (float)(mf + log(s) - (double)zl);
    rank[r] = (float)rk;
}

// one thread: metrics = (mean loss, count, top1, top5); loss = mean loss.
// Row losses are kept in float (the CPU keeps float64: differences ~1e-7).
__global__ void ce_reduce(int n, const int* labels, const float* rowloss, const float* rank, float* metrics, float* loss) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double s = 0;
    int valid = 0, top1 = 0, top5 = 0;
    for (int r = 0; r < n; r++) {
        if (labels[r] < 0) continue;
        valid++;
        s += (double)rowloss[r];
        if (rank[r] < 1.f) top1++;
        if (rank[r] < 5.f) top5++;
    }
    float mean = valid > 0 ? (float)(s / valid) : 0.f;
    metrics[0] = mean; metrics[1] = (float)valid; metrics[2] = (float)top1; metrics[3] = (float)top5;
    loss[0] = mean;
}

// dz = (p - onehot) * dl/count
__global__ void ce_bwd(int n, int k, const float* p, const int* labels, const float* dl, const float* metrics, float* dz) {
    long total = (long)n * k;
    float cnt = metrics[1];
    float scale = cnt > 0.f ? (float)((double)dl[0] / (double)cnt) : 0.f;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        int r = i / k, j = i % k;
        int l = labels[r];
        if (l < 0) { dz[i] = 0.f; continue; }
        float v = p[i] * scale;
        if (j == l) v -= scale;
        dz[i] = v;
    }
}

// ---- optimizer ---------------------------------------------------------------------
// PyTorch SGD over n elements of contiguous parameters, gradients and velocities:
// g' = g + wd*w (decay != 0); v = first ? g' : mom*v + keep*g'; d = nesterov ? g' + mom*v : v;
// w -= lr*d; with mom == 0 simply d = g'. hyper = (lr, first). Explicit _rn
// operations: no fused multiply-add, the rounding of train.SGD. The gradient
// is not zeroed (the next backward overwrites it).
__global__ void sgd(int n, int nesterov, int decay, float mom, float keep, float wd,
                    float* w, const float* g, float* v, const float* hyper) {
    float lr = hyper[0];
    int first = hyper[1] != 0.f;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float gi = g[i];
        if (decay) gi = __fadd_rn(gi, __fmul_rn(wd, w[i]));
        float d = gi;
        if (mom != 0.f) {
            float vi = first ? gi : __fadd_rn(__fmul_rn(mom, v[i]), __fmul_rn(keep, gi));
            v[i] = vi;
            d = nesterov ? __fadd_rn(gi, __fmul_rn(mom, vi)) : vi;
        }
        w[i] = __fadd_rn(w[i], __fmul_rn(-lr, d));
    }
}

}  // extern "C"

// ---- random ops: dropout, stochastic depth (cuda/random.go) -------------------
// The CPU ops' counter-based generator, bit for bit: draw number `step` of an
// op seeded with `seed` (seed_lo/seed_hi: its two 32-bit words) has the base
// counter splitmix(splitmix(seed) ^ splitmix(step + 0x632be59bd9b4e019)).
// ctr holds every random op's step (uint64, advanced by rng_advance at the
// end of the backward pass), so a replayed CUDA graph draws the next masks.

extern "C" {

__device__ unsigned long long rng_splitmix(unsigned long long z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

__device__ unsigned long long rng_base(int seed_lo, int seed_hi, const unsigned long long* ctr, int slot) {
    unsigned long long seed = ((unsigned long long)(unsigned)seed_hi << 32) | (unsigned)seed_lo;
    return rng_splitmix(rng_splitmix(seed) ^ rng_splitmix(ctr[slot] + 0x632be59bd9b4e019ULL));
}

// one thread per counter: the next draw
__global__ void rng_advance(int n, unsigned long long* ctr) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) ctr[i] += 1;
}

// Inverted dropout, forward (x, y) and backward (dy, dx) alike: element i is
// kept iff the (i%2)-th 32-bit half of splitmix(base + (i/2)*golden) >= thr,
// and then scaled by scale = 1/(1-p). One thread per pair of elements.
__global__ void dropout_apply(int n, int seed_lo, int seed_hi, int slot, int thr, float scale,
                              const float* x, const unsigned long long* ctr, float* y) {
    unsigned long long base = rng_base(seed_lo, seed_hi, ctr, slot);
    unsigned t = (unsigned)thr;
    long pairs = ((long)n + 1) / 2;
    for (long j = blockIdx.x * (long)blockDim.x + threadIdx.x; j < pairs; j += (long)gridDim.x * blockDim.x) {
        unsigned long long h = rng_splitmix(base + (unsigned long long)j * 0x9e3779b97f4a7c15ULL);
        long i = 2 * j;
        y[i] = (unsigned)h >= t ? x[i] * scale : 0.f;
        if (i + 1 < n) y[i + 1] = (unsigned)(h >> 32) >= t ? x[i + 1] * scale : 0.f;
    }
}

// Stochastic depth, forward (branch, y) and backward (dy, dx) alike: the
// whole tensor is kept iff (base >> 11) < thr, thr = ceil(survival*2^53)
// (thr_lo/thr_hi), which is the CPU's test (base>>11) / 2^53 < survival.
__global__ void stochdepth_apply(int n, int seed_lo, int seed_hi, int slot, int thr_lo, int thr_hi,
                                 const float* x, const unsigned long long* ctr, float* y) {
    unsigned long long thr = ((unsigned long long)(unsigned)thr_hi << 32) | (unsigned)thr_lo;
    int keep = (rng_base(seed_lo, seed_hi, ctr, slot) >> 11) < thr;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        y[i] = keep ? x[i] : 0.f;
}

// ---- layer norm (cuda/layernorm.go) --------------------------------------------
// x (N, D), one block per row for the statistics and the input gradient.
// saved: 2N doubles, each row's mean then each row's invstd (the CPU op keeps
// them in float64 too). eps: the two words of a double.

// tree_sum2: thread t sums terms t, t+BLOCK, ... (the caller's loop), then the
// partials are added pairwise (t, t+s), s = BLOCK/2 .. 1. cuda/ref.go's
// treeSum2 mirrors this order.
__device__ void tree_sum2(double* a, double* b, double* sh, double* sh2) {
    sh[threadIdx.x] = *a;
    sh2[threadIdx.x] = *b;
    __syncthreads();
    for (int s = BLOCK / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            sh[threadIdx.x] += sh[threadIdx.x + s];
            sh2[threadIdx.x] += sh2[threadIdx.x + s];
        }
        __syncthreads();
    }
    *a = sh[0];
    *b = sh2[0];
}

// y = (x - mean) * invstd * gamma + beta in double, the variance biased and
// computed shifted by the row's first element.
__global__ void ln_fwd(int n, int d, int eps_lo, int eps_hi, const float* x, const float* gamma, const float* beta,
                       double* saved, float* y) {
    __shared__ double sh[BLOCK], sh2[BLOCK];
    long row = blockIdx.x;
    const float* xr = x + row * d;
    float* yr = y + row * d;
    float k = xr[0];
    double s1 = 0, s2 = 0;
    for (int i = threadIdx.x; i < d; i += BLOCK) {
        double e = (double)(xr[i] - k);
        s1 += e;
        s2 += e * e;
    }
    tree_sum2(&s1, &s2, sh, sh2);
    double dm = s1 / d;
    double v = s2 / d - dm * dm;
    if (v < 0) v = 0;
    double mean = (double)k + dm;
    double is = 1.0 / sqrt(v + __hiloint2double(eps_hi, eps_lo));
    if (threadIdx.x == 0) {
        saved[row] = mean;
        saved[n + row] = is;
    }
    for (int i = threadIdx.x; i < d; i += BLOCK)
        yr[i] = (float)(((double)xr[i] - mean) * is * (double)gamma[i] + (double)beta[i]);
}

// dx = invstd*dy*gamma + b*(x-mean) + c0 with g = dy*gamma,
// c0 = -invstd*sum(g)/D, b = -invstd^3*sum(g*(x-mean))/D, in double.
__global__ void ln_input_grad(int n, int d, const float* x, const float* gamma, const float* dy, const double* saved,
                              float* dx) {
    __shared__ double sh[BLOCK], sh2[BLOCK];
    long row = blockIdx.x;
    const float* xr = x + row * d;
    const float* dyr = dy + row * d;
    float* dxr = dx + row * d;
    double mean = saved[row], is = saved[n + row];
    double s1 = 0, s2 = 0;
    for (int i = threadIdx.x; i < d; i += BLOCK) {
        double g = (double)dyr[i] * (double)gamma[i];
        s1 += g;
        s2 += g * ((double)xr[i] - mean);
    }
    tree_sum2(&s1, &s2, sh, sh2);
    double c0 = -is * s1 / d;
    double b = -is * is * is * s2 / d;
    for (int i = threadIdx.x; i < d; i += BLOCK)
        dxr[i] = (float)(is * (double)dyr[i] * (double)gamma[i] + b * ((double)xr[i] - mean) + c0);
}

// red (2, D): column sums of dy*(x-mean)*invstd and of dy; one thread per
// column, rows in order (the CPU's order).
__global__ void ln_param_grad(int n, int d, const float* x, const float* dy, const double* saved, float* red) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d) return;
    double sg = 0, sb = 0;
    for (int r = 0; r < n; r++) {
        double g = (double)dy[(long)r * d + j];
        sg += g * ((double)x[(long)r * d + j] - saved[r]) * saved[n + r];
        sb += g;
    }
    red[j] = (float)sg;
    red[d + j] = (float)sb;
}

}  // extern "C"

// ---- direct 3x3 convolution (conv_direct; cuda/convdirect.go) ---------------
//
// A stride-1, ungrouped 3x3 convolution without a column buffer: one block
// computes an output tile of tr rows x ow columns of one image for ft
// output channels. Each thread owns 4 output channels x 4 neighbouring
// pixels of a row (16 accumulators); the block walks the input channels
// DC at a time, staging their (tr+2) x (ow+2) input patch and the tile's
// weights in shared memory. Weights sit as [channel][tap][f] so that one
// 16-byte load gives a thread its 4 channels' weight for a tap (the same
// address across the warp: a broadcast). flip = 1 computes the data
// gradient of a stride-1 convolution: x is dy, y is dx, and weight
// (f, c, ky, kx) is read from w[c][f][2-ky][2-kx] of the forward
// convolution's (c, f, 3, 3) filter. Each output is the fmaf chain over
// (input channel, ky, kx) in that order; no atomics, deterministic.
// The lowering (directConvTile) guarantees ow % 4 == 0, tr * ow / 4 a
// power of two from 16 to 64, (tr + 2) * (ow + 2) <= DPATCH, ft <= DFT.

#define DC 4
#define DPATCH 400
#define DFT 64

extern "C" {

__global__ void conv_direct(int nimg, int c, int h, int w, int f, int ph, int pw, int oh, int ow, int tr, int flip,
                            const float* x, const float* wt, float* y) {
    __shared__ __align__(16) float patch[DC * DPATCH];
    __shared__ __align__(16) float ws[DC * 9 * DFT];
    int pg = tr * ow / 4;  // pixel groups of the tile
    int ft = (BLOCK / pg) * 4;
    int tiles = (oh + tr - 1) / tr, fblocks = (f + ft - 1) / ft;
    int b = blockIdx.x;
    int fb = b % fblocks;
    int tile = (b / fblocks) % tiles;
    int img = b / (fblocks * tiles);
    int f0 = fb * ft, oy0 = tile * tr;
    int t = threadIdx.x;
    int cg = t / pg, p0 = (t % pg) * 4;
    int r = p0 / ow, x0 = p0 % ow;
    int pw2 = ow + 2, psize = (tr + 2) * pw2;
    float acc[4][4];
    for (int j = 0; j < 4; j++)
        for (int p = 0; p < 4; p++) acc[j][p] = 0.f;
    const float* xi = x + (long)img * c * h * w;
    for (int c0 = 0; c0 < c; c0 += DC) {
        for (int i = t; i < DC * psize; i += BLOCK) {
            int cc = i / psize, rem = i % psize;
            int iy = oy0 - ph + rem / pw2, ix = rem % pw2 - pw;
            int ch = c0 + cc;
            patch[cc * DPATCH + rem] = (ch < c && iy >= 0 && iy < h && ix >= 0 && ix < w) ? xi[((long)ch * h + iy) * w + ix] : 0.f;
        }
        for (int i = t; i < DC * 9 * ft; i += BLOCK) {
            int fl = i % ft, k = (i / ft) % 9, cc = i / (9 * ft);
            int fo = f0 + fl, ch = c0 + cc;
            float v = 0.f;
            if (fo < f && ch < c) v = flip ? wt[((long)ch * f + fo) * 9 + 8 - k] : wt[((long)fo * c + ch) * 9 + k];
            ws[(cc * 9 + k) * DFT + fl] = v;
        }
        __syncthreads();
        for (int cc = 0; cc < DC; cc++) {
            const float* pr = patch + cc * DPATCH + r * pw2 + x0;
            const float* wr = ws + cc * 9 * DFT + cg * 4;
            for (int ky = 0; ky < 3; ky++) {
                float v[6];
                for (int q = 0; q < 6; q++) v[q] = pr[ky * pw2 + q];
                for (int kx = 0; kx < 3; kx++) {
                    float4 wv = *(const float4*)(wr + (ky * 3 + kx) * DFT);
                    float wj[4] = {wv.x, wv.y, wv.z, wv.w};
                    for (int j = 0; j < 4; j++)
                        for (int p = 0; p < 4; p++) acc[j][p] = fmaf(wj[j], v[p + kx], acc[j][p]);
                }
            }
        }
        __syncthreads();
    }
    int oy = oy0 + r;
    if (oy >= oh) return;
    for (int j = 0; j < 4; j++) {
        int fo = f0 + cg * 4 + j;
        if (fo >= f) continue;
        float* yp = y + (((long)img * f + fo) * oh + oy) * ow + x0;
        for (int p = 0; p < 4; p++) yp[p] = acc[j][p];
    }
}

}  // extern "C"

// ---- batch norm, its input x fp32 or bf16 (cuda/batchnorm.go) ----------------
// saved: (2, C) = mean, invstd of the statistics the forward used.
// A bf16 step stores the convolution outputs a batch norm reads as bf16
// (bf16 activation storage, issue 13): the *_bf16 kernels read x as bf16
// bits and widen each element exactly to float, then compute as the fp32
// kernels do; statistics, gamma/beta, running statistics, y and every
// gradient stay fp32 (reductions in double). One template body each, so
// the fp32 kernels and their bf16 twins cannot drift apart.


// Channel reductions over (N, inner) run in two launches so that every
// multiprocessor works (one block per channel left 116 of 132 idle on a
// 16-channel layer): *_part sums `chunk` images of one channel per block,
// block (ch, p) = blockIdx.x = ch*parts + p, into part (doubles, (C, parts, 2));
// *_final adds a channel's partials in order (deterministic) and finishes.
// parts = ceil(n / chunk).

// Training: batch statistics (shifted by the channel's first value), running
// statistics updated with the unbiased variance.
template <typename X>
__device__ void bn_stats_part_t(int n, int c, int inner, int chunk, const X* x, double* part) {
    __shared__ double sh[BLOCK];
    int parts = (n + chunk - 1) / chunk;
    int ch = blockIdx.x / parts, p = blockIdx.x % parts;
    int b0 = p * chunk, m = (min(n, b0 + chunk) - b0) * inner;
    float k = ldx(x, (long)ch * inner);
    const X* xc = x + ((long)b0 * c + ch) * inner;
    double s1 = 0, s2 = 0;
    for (int i = threadIdx.x; i < m; i += BLOCK) {
        double d = (double)(ldx(xc, (long)(i / inner) * c * inner + i % inner) - k);
        s1 += d;
        s2 += d * d;
    }
    s1 = block_sum(s1, sh);
    s2 = block_sum(s2, sh);
    if (threadIdx.x == 0) {
        part[2 * blockIdx.x] = s1;
        part[2 * blockIdx.x + 1] = s2;
    }
}

template <typename X>
__device__ void bn_stats_final_t(int n, int c, int inner, int parts, float momentum, float eps,
                                 const X* x, const double* part, float* saved, float* run_mean, float* run_var) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    double s1 = 0, s2 = 0;
    for (int p = 0; p < parts; p++) {
        s1 += part[2 * (ch * parts + p)];
        s2 += part[2 * (ch * parts + p) + 1];
    }
    double cnt = (double)n * inner;
    double dm = s1 / cnt;
    double v = s2 / cnt - dm * dm;
    if (v < 0) v = 0;
    double mean = (double)ldx(x, (long)ch * inner) + dm;
    saved[ch] = (float)mean;
    saved[c + ch] = (float)(1.0 / sqrt(v + (double)eps));
    double mom = (double)momentum;
    double unbias = cnt / (cnt - 1);
    run_mean[ch] = (float)((1 - mom) * (double)run_mean[ch] + mom * mean);
    run_var[ch] = (float)((1 - mom) * (double)run_var[ch] + mom * v * unbias);
}

// y = (x - mean) * (gamma*invstd) + beta, then max(y, 0) when relu (a batch
// norm whose only consumer is a ReLU).
template <typename X, typename Y>
__device__ void bn_apply_t(int n, int c, int inner, const X* x, const float* gamma, const float* beta,
                           const float* saved, Y* y, bool relu) {
    long total = (long)n * c * inner;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        int ch = (i / inner) % c;
        float scale = (float)((double)gamma[ch] * (double)saved[c + ch]);
        float v = (ldx(x, i) - saved[ch]) * scale + beta[ch];
        store(y + i, relu ? (v > 0.f ? v : 0.f) : v);
    }
}

// red: (2, C) = sum(dy*(x-mean))*invstd, sum(dy), in two launches as bn_stats.
template <typename X>
__device__ void bn_param_part_t(int n, int c, int inner, int chunk, const X* x, const float* dy, const float* saved, double* part) {
    __shared__ double sh[BLOCK];
    int parts = (n + chunk - 1) / chunk;
    int ch = blockIdx.x / parts, p = blockIdx.x % parts;
    int b0 = p * chunk, m = (min(n, b0 + chunk) - b0) * inner;
    float mean = saved[ch];
    long base = ((long)b0 * c + ch) * inner;
    double sdy = 0, sdyx = 0;
    for (int i = threadIdx.x; i < m; i += BLOCK) {
        long o = base + (long)(i / inner) * c * inner + i % inner;
        float g = dy[o];
        sdy += (double)g;
        sdyx += (double)(g * (ldx(x, o) - mean));
    }
    sdy = block_sum(sdy, sh);
    sdyx = block_sum(sdyx, sh);
    if (threadIdx.x == 0) {
        part[2 * blockIdx.x] = sdyx;
        part[2 * blockIdx.x + 1] = sdy;
    }
}

// dx = g*dy + b*(x-mean) + c0 with g = gamma*invstd and, for batch
// statistics, b = -g*invstd*red0/M, c0 = -g*red1/M.
template <typename X>
__device__ void bn_input_grad_t(int n, int c, int inner, int batch, const X* x, const float* gamma,
                                const float* dy, const float* red, const float* saved, float* dx) {
    long total = (long)n * c * inner;
    double m = (double)n * inner;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        int ch = (i / inner) % c;
        double invstd = (double)saved[c + ch];
        double g = (double)gamma[ch] * invstd;
        double b = 0, c0 = 0;
        if (batch) {
            b = -g * invstd * (double)red[ch] / m;
            c0 = -g * (double)red[c + ch] / m;
        }
        dx[i] = (float)g * dy[i] + (float)b * (ldx(x, i) - saved[ch]) + (float)c0;
    }
}

extern "C" {

__global__ void bn_stats_part(int n, int c, int inner, int chunk, const float* x, double* part) {
    bn_stats_part_t(n, c, inner, chunk, x, part);
}

__global__ void bn_stats_final(int n, int c, int inner, int parts, float momentum, float eps,
                               const float* x, const double* part, float* saved, float* run_mean, float* run_var) {
    bn_stats_final_t(n, c, inner, parts, momentum, eps, x, part, saved, run_mean, run_var);
}

// Inference: the running statistics.
__global__ void bn_infer(int c, float eps, const float* run_mean, const float* run_var, float* saved) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    saved[ch] = run_mean[ch];
    saved[c + ch] = (float)(1.0 / sqrt((double)run_var[ch] + (double)eps));
}

__global__ void bn_apply(int n, int c, int inner, const float* x, const float* gamma, const float* beta,
                         const float* saved, float* y) {
    bn_apply_t(n, c, inner, x, gamma, beta, saved, y, false);
}

__global__ void bn_apply_relu(int n, int c, int inner, const float* x, const float* gamma, const float* beta,
                              const float* saved, float* y) {
    bn_apply_t(n, c, inner, x, gamma, beta, saved, y, true);
}

__global__ void bn_param_part(int n, int c, int inner, int chunk, const float* x, const float* dy, const float* saved, double* part) {
    bn_param_part_t(n, c, inner, chunk, x, dy, saved, part);
}

__global__ void bn_param_final(int c, int parts, const float* saved, const double* part, float* red) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    double sdyx = 0, sdy = 0;
    for (int p = 0; p < parts; p++) {
        sdyx += part[2 * (ch * parts + p)];
        sdy += part[2 * (ch * parts + p) + 1];
    }
    red[ch] = (float)(sdyx * (double)saved[c + ch]);
    red[c + ch] = (float)sdy;
}

__global__ void bn_input_grad(int n, int c, int inner, int batch, const float* x, const float* gamma,
                              const float* dy, const float* red, const float* saved, float* dx) {
    bn_input_grad_t(n, c, inner, batch, x, gamma, dy, red, saved, dx);
}

// The bf16-x twins (a bf16 step's stored convolution outputs).
__global__ void bn_stats_part_bf16(int n, int c, int inner, int chunk, const unsigned short* x, double* part) {
    bn_stats_part_t(n, c, inner, chunk, x, part);
}

__global__ void bn_stats_final_bf16(int n, int c, int inner, int parts, float momentum, float eps,
                                    const unsigned short* x, const double* part, float* saved, float* run_mean, float* run_var) {
    bn_stats_final_t(n, c, inner, parts, momentum, eps, x, part, saved, run_mean, run_var);
}

// bn_apply with x and y of other types: suffix x then y (f fp32, h bf16).
// bf16 y: a batch norm's output stored in bf16 because its readers take it.
__global__ void bn_apply_hf(int n, int c, int inner, const unsigned short* x, const float* gamma, const float* beta,
                            const float* saved, float* y) {
    bn_apply_t(n, c, inner, x, gamma, beta, saved, y, false);
}
__global__ void bn_apply_fh(int n, int c, int inner, const float* x, const float* gamma, const float* beta,
                            const float* saved, unsigned short* y) {
    bn_apply_t(n, c, inner, x, gamma, beta, saved, y, false);
}
__global__ void bn_apply_hh(int n, int c, int inner, const unsigned short* x, const float* gamma, const float* beta,
                            const float* saved, unsigned short* y) {
    bn_apply_t(n, c, inner, x, gamma, beta, saved, y, false);
}
__global__ void bn_apply_relu_hf(int n, int c, int inner, const unsigned short* x, const float* gamma, const float* beta,
                                 const float* saved, float* y) {
    bn_apply_t(n, c, inner, x, gamma, beta, saved, y, true);
}
__global__ void bn_apply_relu_fh(int n, int c, int inner, const float* x, const float* gamma, const float* beta,
                                 const float* saved, unsigned short* y) {
    bn_apply_t(n, c, inner, x, gamma, beta, saved, y, true);
}
__global__ void bn_apply_relu_hh(int n, int c, int inner, const unsigned short* x, const float* gamma, const float* beta,
                                 const float* saved, unsigned short* y) {
    bn_apply_t(n, c, inner, x, gamma, beta, saved, y, true);
}

__global__ void bn_param_part_bf16(int n, int c, int inner, int chunk, const unsigned short* x, const float* dy, const float* saved, double* part) {
    bn_param_part_t(n, c, inner, chunk, x, dy, saved, part);
}

__global__ void bn_input_grad_bf16(int n, int c, int inner, int batch, const unsigned short* x, const float* gamma,
                                   const float* dy, const float* red, const float* saved, float* dx) {
    bn_input_grad_t(n, c, inner, batch, x, gamma, dy, red, saved, dx);
}

}  // extern "C"

// ---- element-wise ops, pooling and shortcut with bf16 operands --------------
// A bf16 step stores a residual block's output (the add[+ReLU] result) in
// bf16 when every reader takes bf16 (cuda/bf16.go, storesBF16): the next
// block's im2col and 1x1 GEMM (which read bf16 anyway), the next add (its
// identity shortcut), the zero-pad shortcut, global average pooling and the
// ReLU's backward. The add computes in float and rounds once as it stores.
// One template body each for the fp32 kernels and their bf16 variants;
// suffixes name the buffer types in parameter order (f fp32, h bf16).

template <typename A, typename B, typename Y>
__device__ void add_t(int n, const A* a, const B* b, Y* y, bool relu) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float v = ldx(a, i) + ldx(b, i);
        store(y + i, relu ? (v > 0.f ? v : 0.f) : v);
    }
}

// dx = dy where y > 0
template <typename Y>
__device__ void relu_bwd_t(int n, const Y* y, const float* dy, float* dx) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        dx[i] = ldx(y, i) > 0.f ? dy[i] : 0.f;
}

template <typename X>
__device__ void zeropad_fwd_t(int n, int c, int outc, int lo, int h, int w, int ho, int wo, int s, const X* x, float* y) {
    long total = (long)n * outc * ho * wo;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        int ox = i % wo, oy = (i / wo) % ho;
        long oc = (i / ((long)wo * ho)) % outc, b = i / ((long)wo * ho * outc);
        long ch = oc - lo;
        y[i] = (ch >= 0 && ch < c) ? ldx(x, ((b * c + ch) * h + (long)oy * s) * w + (long)ox * s) : 0.f;
    }
}

template <typename X>
__device__ void gap_fwd_t(int planes, int inner, const X* x, float* y) {
    int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= planes) return;
    float s = 0.f;
    const X* xp = x + (long)p * inner;
    for (int i = 0; i < inner; i++) s += ldx(xp, i);
    y[p] = s * (1.f / (float)inner);
}

extern "C" {

__global__ void add(int n, const float* a, const float* b, float* y) { add_t(n, a, b, y, false); }
__global__ void add_ffh(int n, const float* a, const float* b, unsigned short* y) { add_t(n, a, b, y, false); }
__global__ void add_fhf(int n, const float* a, const unsigned short* b, float* y) { add_t(n, a, b, y, false); }
__global__ void add_fhh(int n, const float* a, const unsigned short* b, unsigned short* y) { add_t(n, a, b, y, false); }

// add followed by ReLU (a residual sum whose only consumer is a ReLU)
__global__ void add_relu(int n, const float* a, const float* b, float* y) { add_t(n, a, b, y, true); }
__global__ void add_relu_ffh(int n, const float* a, const float* b, unsigned short* y) { add_t(n, a, b, y, true); }
__global__ void add_relu_fhf(int n, const float* a, const unsigned short* b, float* y) { add_t(n, a, b, y, true); }
__global__ void add_relu_fhh(int n, const float* a, const unsigned short* b, unsigned short* y) { add_t(n, a, b, y, true); }

__global__ void relu_bwd(int n, const float* y, const float* dy, float* dx) { relu_bwd_t(n, y, dy, dx); }
__global__ void relu_bwd_bf16(int n, const unsigned short* y, const float* dy, float* dx) { relu_bwd_t(n, y, dy, dx); }

__global__ void zeropad_fwd(int n, int c, int outc, int lo, int h, int w, int ho, int wo, int s, const float* x, float* y) {
    zeropad_fwd_t(n, c, outc, lo, h, w, ho, wo, s, x, y);
}
__global__ void zeropad_fwd_bf16(int n, int c, int outc, int lo, int h, int w, int ho, int wo, int s, const unsigned short* x, float* y) {
    zeropad_fwd_t(n, c, outc, lo, h, w, ho, wo, s, x, y);
}

__global__ void gap_fwd(int planes, int inner, const float* x, float* y) { gap_fwd_t(planes, inner, x, y); }
__global__ void gap_fwd_bf16(int planes, int inner, const unsigned short* x, float* y) { gap_fwd_t(planes, inner, x, y); }

// bf16 images -> bf16 columns (the columns of a stored bf16 block output)
__global__ void im2col_bf16_bf16(int nimg, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw, int oh, int ow,
                                 const unsigned short* x, unsigned short* col) {
    im2col_cols(nimg, c, h, w, kh, kw, sh, sw, ph, pw, oh, ow, x, col);
}

}  // extern "C"
