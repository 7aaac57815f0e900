// caracal's fused kernels for CUDA, compiled at run time by NVRTC (no
// headers: bf16 and f16 are carried as 16-bit integers and converted here).
// Every kernel computes in `D::A` (f32, or f64 for f64 data) and exists once
// per storage type, as `<name>_<f32|f64|bf16|f16>`. The formulas are the CPU
// kernels' (see the Rust module of each op); comments here only say how the
// work is split.

// ---------------------------------------------------------------- dtypes

struct F32 {
  typedef float T;
  typedef float A;
  static __device__ __forceinline__ float ld(float v) { return v; }
  static __device__ __forceinline__ float st(float v) { return v; }
};

struct F64 {
  typedef double T;
  typedef double A;
  static __device__ __forceinline__ double ld(double v) { return v; }
  static __device__ __forceinline__ double st(double v) { return v; }
};

struct BF16 {
  typedef unsigned short T;
  typedef float A;
  static __device__ __forceinline__ float ld(unsigned short v) {
    return __uint_as_float(((unsigned int)v) << 16);
  }
  // Round to nearest even, NaN stays NaN (one instruction from sm_80 on).
  static __device__ __forceinline__ unsigned short st(float f) {
#if __CUDA_ARCH__ >= 800
    unsigned short h;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
#endif
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)0x7fc0u;
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
  }
};

struct F16 {
  typedef unsigned short T;
  typedef float A;
  static __device__ __forceinline__ float ld(unsigned short v) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v));
    return f;
  }
  static __device__ __forceinline__ unsigned short st(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
  }
};

// Elements of T in one 16-byte vector.
#define VEC_OF(T) (16 / sizeof(T))

// Round a compute value to the storage precision and back.
template <class D>
__device__ __forceinline__ typename D::A rnd(typename D::A v) {
  return D::ld(D::st(v));
}

__device__ __forceinline__ float x_exp(float v) { return expf(v); }
__device__ __forceinline__ double x_exp(double v) { return exp(v); }
__device__ __forceinline__ float x_log(float v) { return logf(v); }
__device__ __forceinline__ double x_log(double v) { return log(v); }
__device__ __forceinline__ float x_sqrt(float v) { return sqrtf(v); }
__device__ __forceinline__ double x_sqrt(double v) { return sqrt(v); }
__device__ __forceinline__ float x_tanh(float v) { return tanhf(v); }
__device__ __forceinline__ double x_tanh(double v) { return tanh(v); }
__device__ __forceinline__ float x_inf(float) { return __int_as_float(0x7f800000); }
__device__ __forceinline__ double x_inf(double) { return __longlong_as_double(0x7ff0000000000000LL); }

// ---------------------------------------------------------------- block reductions
// blockDim.x is a multiple of 32 and at most 1024; `sh` holds 32 values.
// Every thread gets the result. Safe to call repeatedly with the same `sh`.

// The two reductions: `apply` combines two values, `identity` pads.
struct SumOp {
  template <class A> __device__ __forceinline__ static A apply(A a, A b) { return a + b; }
  template <class A> __device__ __forceinline__ static A identity() { return A(0); }
};
struct MaxOp {
  // Keeps `a` unless `b` is larger (a NaN in `b` is dropped, as before).
  template <class A> __device__ __forceinline__ static A apply(A a, A b) { return b > a ? b : a; }
  template <class A> __device__ __forceinline__ static A identity() { return -x_inf(A(0)); }
};

template <class Op, class A>
__device__ __forceinline__ A warp_reduce(A v) {
  for (int o = 16; o > 0; o >>= 1) v = Op::apply(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

template <class Op, class A>
__device__ A block_reduce(A v, A* sh) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  const int nw = (blockDim.x + 31) >> 5;
  v = warp_reduce<Op>(v);
  __syncthreads();
  if (lane == 0) sh[w] = v;
  __syncthreads();
  A r = (lane < nw) ? sh[lane] : Op::template identity<A>();
  return warp_reduce<Op>(r);
}

template <class A>
__device__ A block_sum(A v, A* sh) { return block_reduce<SumOp>(v, sh); }

template <class A>
__device__ A block_max(A v, A* sh) { return block_reduce<MaxOp>(v, sh); }

// ---------------------------------------------------------------- RMSNorm
// mode: 0 = Llama, 1 = Gemma, 2 = None (see rms_norm.rs).
// Forward: one block per row (grid-stride over rows).

template <class D>
__device__ void rms_fwd(const typename D::T* x, const typename D::T* w, typename D::T* y,
                        int rows, int n, float eps, float offset, int mode) {
  typedef typename D::A A;
  __shared__ A sh[32];
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const typename D::T* xr = x + (unsigned long long)r * n;
    typename D::T* yr = y + (unsigned long long)r * n;
    A ss = 0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
      A v = D::ld(xr[j]);
      ss += v * v;
    }
    ss = block_sum(ss, sh);
    A rstd = A(1) / x_sqrt(ss / A(n) + A(eps));
    if (mode == 2) rstd = rnd<D>(rstd);
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
      A v = D::ld(xr[j]);
      A wv = D::ld(w[j]) + A(offset);
      A out;
      if (mode == 1) {
        out = v * rstd * wv;
      } else {
        out = rnd<D>(v * rstd) * rnd<D>(wv);
      }
      yr[j] = D::st(out);
    }
  }
}

// Backward: `gridDim.x` blocks each take a strided set of rows; thread t owns
// columns t, t+blockDim, ... (at most RMS_COLS of them) and keeps their dw
// sums in registers, written once to `dw_part[block, n]` (compute type).
// The entry points carry __launch_bounds__(1024) so that blocks of up to
// 1024 threads always fit the register file.
#define RMS_COLS 16

template <class D>
__device__ void rms_bwd(const typename D::T* x, const typename D::T* w, const typename D::T* dy,
                        typename D::T* dx, typename D::A* dw_part, int rows, int n, float eps,
                        float offset, int mode) {
  typedef typename D::A A;
  __shared__ A sh[32];
  A acc[RMS_COLS];
#pragma unroll
  for (int k = 0; k < RMS_COLS; k++) acc[k] = 0;
  const bool round = mode != 1;
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const typename D::T* xr = x + (unsigned long long)r * n;
    const typename D::T* gr = dy + (unsigned long long)r * n;
    typename D::T* dxr = dx + (unsigned long long)r * n;
    A ss = 0, mx = 0;
#pragma unroll
    for (int k = 0; k < RMS_COLS; k++) {
      int j = threadIdx.x + k * blockDim.x;
      if (j < n) {
        A v = D::ld(xr[j]);
        A wo = D::ld(w[j]) + A(offset);
        if (round) wo = rnd<D>(wo);
        A m = D::ld(gr[j]) * wo;
        if (round) m = rnd<D>(m);
        ss += v * v;
        mx += m * v;
      }
    }
    ss = block_sum(ss, sh);
    mx = block_sum(mx, sh);
    A rstd = A(1) / x_sqrt(ss / A(n) + A(eps));
    if (mode == 2) rstd = rnd<D>(rstd);
    A c = rstd * rstd * rstd / A(n) * mx;
#pragma unroll
    for (int k = 0; k < RMS_COLS; k++) {
      int j = threadIdx.x + k * blockDim.x;
      if (j < n) {
        A v = D::ld(xr[j]);
        A g = D::ld(gr[j]);
        A wo = D::ld(w[j]) + A(offset);
        if (round) wo = rnd<D>(wo);
        A m = g * wo;
        if (round) m = rnd<D>(m);
        dxr[j] = D::st(rstd * m - c * v);
        A xn = v * rstd;
        if (round) xn = rnd<D>(xn);
        acc[k] += g * xn;
      }
    }
  }
#pragma unroll
  for (int k = 0; k < RMS_COLS; k++) {
    int j = threadIdx.x + k * blockDim.x;
    if (j < n) dw_part[(unsigned long long)blockIdx.x * n + j] = acc[k];
  }
}

// Register-resident variants for rows of n = VEC·k elements with k ≤ 1024:
// thread q owns the 16-byte vector q of every row (and of w), so each row is
// read once and written once, with one vector load per thread.

template <class D>
__device__ __forceinline__ void rms_wo(const typename D::T* w, int q, float offset, int mode,
                                       typename D::A* wo) {
  typedef typename D::T T;
  const int V = VEC_OF(T);
  __align__(16) T wv[16 / sizeof(T)];
  *(uint4*)wv = ((const uint4*)w)[q];
#pragma unroll
  for (int e = 0; e < V; e++) {
    typename D::A v = D::ld(wv[e]) + typename D::A(offset);
    wo[e] = mode == 1 ? v : rnd<D>(v);
  }
}

template <class D>
__device__ void rms_fwd_v(const typename D::T* x, const typename D::T* w, typename D::T* y,
                          int rows, int n, float eps, float offset, int mode) {
  typedef typename D::T T;
  typedef typename D::A A;
  const int V = VEC_OF(T);
  __shared__ A sh[32];
  const int q = threadIdx.x;
  const bool on = q < n / V;
  A wo[16 / sizeof(T)];
  if (on) rms_wo<D>(w, q, offset, mode, wo);
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    __align__(16) T xv[16 / sizeof(T)];
    A ss = 0;
    if (on) {
      *(uint4*)xv = ((const uint4*)(x + (unsigned long long)r * n))[q];
#pragma unroll
      for (int e = 0; e < V; e++) {
        A v = D::ld(xv[e]);
        ss += v * v;
      }
    }
    ss = block_sum(ss, sh);
    A rstd = A(1) / x_sqrt(ss / A(n) + A(eps));
    if (mode == 2) rstd = rnd<D>(rstd);
    if (on) {
#pragma unroll
      for (int e = 0; e < V; e++) {
        A v = D::ld(xv[e]);
        xv[e] = D::st(mode == 1 ? v * rstd * wo[e] : rnd<D>(v * rstd) * wo[e]);
      }
      ((uint4*)(y + (unsigned long long)r * n))[q] = *(uint4*)xv;
    }
  }
}

template <class D>
__device__ void rms_bwd_v(const typename D::T* x, const typename D::T* w, const typename D::T* dy,
                          typename D::T* dx, typename D::A* dw_part, int rows, int n, float eps,
                          float offset, int mode) {
  typedef typename D::T T;
  typedef typename D::A A;
  const int V = VEC_OF(T);
  __shared__ A sh[32];
  const int q = threadIdx.x;
  const bool on = q < n / V;
  const bool round = mode != 1;
  A wo[16 / sizeof(T)], acc[16 / sizeof(T)];
#pragma unroll
  for (int e = 0; e < V; e++) acc[e] = 0;
  if (on) rms_wo<D>(w, q, offset, mode, wo);
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    __align__(16) T xv[16 / sizeof(T)], gv[16 / sizeof(T)];
    A ss = 0, mx = 0;
    if (on) {
      *(uint4*)xv = ((const uint4*)(x + (unsigned long long)r * n))[q];
      *(uint4*)gv = ((const uint4*)(dy + (unsigned long long)r * n))[q];
#pragma unroll
      for (int e = 0; e < V; e++) {
        A v = D::ld(xv[e]);
        A m = D::ld(gv[e]) * wo[e];
        if (round) m = rnd<D>(m);
        ss += v * v;
        mx += m * v;
      }
    }
    ss = block_sum(ss, sh);
    mx = block_sum(mx, sh);
    A rstd = A(1) / x_sqrt(ss / A(n) + A(eps));
    if (mode == 2) rstd = rnd<D>(rstd);
    A c = rstd * rstd * rstd / A(n) * mx;
    if (on) {
#pragma unroll
      for (int e = 0; e < V; e++) {
        A v = D::ld(xv[e]);
        A g = D::ld(gv[e]);
        A m = g * wo[e];
        if (round) m = rnd<D>(m);
        A xn = v * rstd;
        if (round) xn = rnd<D>(xn);
        acc[e] += g * xn;
        xv[e] = D::st(rstd * m - c * v);
      }
      ((uint4*)(dx + (unsigned long long)r * n))[q] = *(uint4*)xv;
    }
  }
  if (on) {
#pragma unroll
    for (int e = 0; e < V; e++) dw_part[(unsigned long long)blockIdx.x * n + q * V + e] = acc[e];
  }
}

// out[j] = Σ_p part[p, j] (compute type in, storage type out).
template <class D>
__device__ void colsum(const typename D::A* part, typename D::T* out, int parts, int n) {
  int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= n) return;
  typename D::A s = 0;
  for (int p = 0; p < parts; p++) s += part[(unsigned long long)p * n + j];
  out[j] = D::st(s);
}

// ---------------------------------------------------------------- LayerNorm

template <class D>
__device__ void ln_fwd(const typename D::T* x, const typename D::T* w, const typename D::T* b,
                       typename D::T* y, int rows, int n, float eps) {
  typedef typename D::A A;
  __shared__ A sh[32];
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const typename D::T* xr = x + (unsigned long long)r * n;
    typename D::T* yr = y + (unsigned long long)r * n;
    A s = 0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) s += D::ld(xr[j]);
    A mean = block_sum(s, sh) / A(n);
    A q = 0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
      A d = D::ld(xr[j]) - mean;
      q += d * d;
    }
    A rstd = A(1) / x_sqrt(block_sum(q, sh) / A(n) + A(eps));
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
      A xh = (D::ld(xr[j]) - mean) * rstd;
      yr[j] = D::st(xh * D::ld(w[j]) + D::ld(b[j]));
    }
  }
}

template <class D>
__device__ void ln_bwd(const typename D::T* x, const typename D::T* w, const typename D::T* dy,
                       typename D::T* dx, typename D::A* dw_part, typename D::A* db_part,
                       int rows, int n, float eps) {
  typedef typename D::A A;
  __shared__ A sh[32];
  A aw[RMS_COLS], ab[RMS_COLS];
#pragma unroll
  for (int k = 0; k < RMS_COLS; k++) {
    aw[k] = 0;
    ab[k] = 0;
  }
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    const typename D::T* xr = x + (unsigned long long)r * n;
    const typename D::T* gr = dy + (unsigned long long)r * n;
    typename D::T* dxr = dx + (unsigned long long)r * n;
    A s = 0;
#pragma unroll
    for (int k = 0; k < RMS_COLS; k++) {
      int j = threadIdx.x + k * blockDim.x;
      if (j < n) s += D::ld(xr[j]);
    }
    A mean = block_sum(s, sh) / A(n);
    A q = 0;
#pragma unroll
    for (int k = 0; k < RMS_COLS; k++) {
      int j = threadIdx.x + k * blockDim.x;
      if (j < n) {
        A d = D::ld(xr[j]) - mean;
        q += d * d;
      }
    }
    A rstd = A(1) / x_sqrt(block_sum(q, sh) / A(n) + A(eps));
    A c1 = 0, c2 = 0;
#pragma unroll
    for (int k = 0; k < RMS_COLS; k++) {
      int j = threadIdx.x + k * blockDim.x;
      if (j < n) {
        A xh = (D::ld(xr[j]) - mean) * rstd;
        A g = D::ld(w[j]) * D::ld(gr[j]);
        c1 += xh * g;
        c2 += g;
      }
    }
    c1 = block_sum(c1, sh) / A(n);
    c2 = block_sum(c2, sh) / A(n);
#pragma unroll
    for (int k = 0; k < RMS_COLS; k++) {
      int j = threadIdx.x + k * blockDim.x;
      if (j < n) {
        A xh = (D::ld(xr[j]) - mean) * rstd;
        A gy = D::ld(gr[j]);
        A g = D::ld(w[j]) * gy;
        dxr[j] = D::st((g - (xh * c1 + c2)) * rstd);
        aw[k] += gy * xh;
        ab[k] += gy;
      }
    }
  }
#pragma unroll
  for (int k = 0; k < RMS_COLS; k++) {
    int j = threadIdx.x + k * blockDim.x;
    if (j < n) {
      dw_part[(unsigned long long)blockIdx.x * n + j] = aw[k];
      db_part[(unsigned long long)blockIdx.x * n + j] = ab[k];
    }
  }
}

// ---------------------------------------------------------------- RoPE
// x [B, H, T, Dh] contiguous; cos/sin [T, Dh] or [B, T, Dh] in compute type.
// One thread per (row, i < Dh/2) pair. inv = 1 applies the transpose.

template <class D>
__device__ void rope(const typename D::T* x, const typename D::A* cs, const typename D::A* sn,
                     typename D::T* y, long long pairs, int h, int t, int d, int batched,
                     int inv) {
  typedef typename D::A A;
  const int half = d / 2;
  for (long long p = blockIdx.x * (long long)blockDim.x + threadIdx.x; p < pairs;
       p += (long long)gridDim.x * blockDim.x) {
    long long r = p / half;
    int i = (int)(p - r * half);
    long long bh = r / t;
    int tt = (int)(r - bh * t);
    long long crow = (batched ? (bh / h) * t + tt : (long long)tt) * d;
    A c1 = cs[crow + i], c2 = cs[crow + half + i];
    A s1 = sn[crow + i], s2 = sn[crow + half + i];
    const typename D::T* xr = x + r * d;
    A x1 = D::ld(xr[i]), x2 = D::ld(xr[half + i]);
    A y1, y2;
    if (inv) {
      y1 = x1 * c1 + x2 * s2;
      y2 = x2 * c2 - x1 * s1;
    } else {
      y1 = x1 * c1 - x2 * s1;
      y2 = x2 * c2 + x1 * s2;
    }
    y[r * d + i] = D::st(y1);
    y[r * d + half + i] = D::st(y2);
  }
}

// ---------------------------------------------------------------- GLU
// gate: 0 = SiLU, 1 = tanh GELU. VEC consecutive elements per thread step,
// loaded as one 16-byte vector when `vec` (host checks size and alignment).

// σ(a) = 1/(1 + e^{−a}): the fast exp and reciprocal in f32 (a few ulp,
// far inside the f32 tolerance; exactly 0 or 1 in the tails), exact in f64.
__device__ __forceinline__ float sigmoid(float a) { return __frcp_rn(1.0f + __expf(-a)); }
__device__ __forceinline__ double sigmoid(double a) { return 1.0 / (1.0 + exp(-a)); }

template <class A>
__device__ __forceinline__ void act_grad(int gate, A a, A& act, A& d) {
  if (gate == 0) {
    A s = sigmoid(a);
    act = a * s;
    d = s + act * (A(1) - s);
  } else {
    const A k = A(0.7978845608028654), c = A(0.044715);
    A t = x_tanh(k * (a + c * a * a * a));
    act = A(0.5) * a * (A(1) + t);
    d = A(0.5) * (A(1) + t) + A(0.5) * a * (A(1) - t * t) * k * (A(1) + A(3) * c * a * a);
  }
}

template <class D>
__device__ void glu_fwd(const typename D::T* a, const typename D::T* b, typename D::T* c,
                        long long n, int gate, int vec) {
  typedef typename D::T T;
  typedef typename D::A A;
  const int V = VEC_OF(T);
  const long long step = (long long)gridDim.x * blockDim.x;
  long long i0 = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (vec) {
    const long long nv = n / V;
    for (long long q = i0; q < nv; q += step) {
      __align__(16) T av[16 / sizeof(T)], bv[16 / sizeof(T)], cv[16 / sizeof(T)];
      // Streaming loads and stores (evict-first): nothing here is reused.
      *(uint4*)av = __ldcs((const uint4*)a + q);
      *(uint4*)bv = __ldcs((const uint4*)b + q);
#pragma unroll
      for (int e = 0; e < V; e++) {
        A act, d;
        act_grad<A>(gate, D::ld(av[e]), act, d);
        cv[e] = D::st(act * D::ld(bv[e]));
      }
      __stcs((uint4*)c + q, *(uint4*)cv);
    }
  } else {
    for (long long i = i0; i < n; i += step) {
      A act, d;
      act_grad<A>(gate, D::ld(a[i]), act, d);
      c[i] = D::st(act * D::ld(b[i]));
    }
  }
}

template <class D>
__device__ void glu_bwd(const typename D::T* a, const typename D::T* b, const typename D::T* dc,
                        typename D::T* da, typename D::T* db, long long n, int gate, int vec) {
  typedef typename D::T T;
  typedef typename D::A A;
  const int V = VEC_OF(T);
  const long long step = (long long)gridDim.x * blockDim.x;
  long long i0 = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (vec) {
    const long long nv = n / V;
    for (long long q = i0; q < nv; q += step) {
      __align__(16) T av[16 / sizeof(T)], bv[16 / sizeof(T)], gv[16 / sizeof(T)];
      __align__(16) T dav[16 / sizeof(T)], dbv[16 / sizeof(T)];
      *(uint4*)av = __ldcs((const uint4*)a + q);
      *(uint4*)bv = __ldcs((const uint4*)b + q);
      *(uint4*)gv = __ldcs((const uint4*)dc + q);
#pragma unroll
      for (int e = 0; e < V; e++) {
        A act, d;
        act_grad<A>(gate, D::ld(av[e]), act, d);
        A g = D::ld(gv[e]);
        dav[e] = D::st(g * D::ld(bv[e]) * d);
        dbv[e] = D::st(g * act);
      }
      __stcs((uint4*)da + q, *(uint4*)dav);
      __stcs((uint4*)db + q, *(uint4*)dbv);
    }
  } else {
    for (long long i = i0; i < n; i += step) {
      A act, d;
      act_grad<A>(gate, D::ld(a[i]), act, d);
      A g = D::ld(dc[i]);
      da[i] = D::st(g * D::ld(b[i]) * d);
      db[i] = D::st(g * act);
    }
  }
}

// ---------------------------------------------------------------- cross-entropy
// One block per row (grid-stride). `tgt[r]` < 0 means ignored. With `grad`
// non-null, writes grad_scale·∂loss/∂z there (it may alias `z`: each element
// is read before it is written by the same thread, and z_y is read before
// the first block barrier). `bias` (optional) is added to z; `w` (optional)
// are the class weights. `row_g` (optional) scales row r's gradient by
// row_g[r] instead of `g`.

struct CeParams {
  float one_minus_ls, eps, lambda, softcap, weight_sum, ce_scale, z_scale, g;
  int has_softcap;
};

template <class D>
__device__ __forceinline__ float ce_val(const typename D::T* zr, const typename D::T* bias, int j,
                                        const CeParams& p) {
  float v = (float)D::ld(zr[j]);
  if (bias) v += (float)D::ld(bias[j]);
  if (p.has_softcap) v = p.softcap * tanhf(v / p.softcap);
  return v;
}

template <class D>
__device__ void ce_rows(typename D::T* z, typename D::T* grad, const int* tgt,
                        const typename D::T* bias, const float* w, const float* row_g,
                        float* loss, float* zloss, int rows, int v, CeParams p) {
  __shared__ float shf[32];
  __shared__ double shd[32];
  const bool smooth = p.eps != 0.0f;
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    typename D::T* zr = z + (unsigned long long)r * v;
    typename D::T* gr = grad ? grad + (unsigned long long)r * v : 0;
    const int y = tgt[r];
    if (y < 0) {
      if (gr)
        for (int j = threadIdx.x; j < v; j += blockDim.x) gr[j] = D::st(0.0f);
      if (threadIdx.x == 0) {
        loss[r] = 0.0f;
        zloss[r] = 0.0f;
      }
      continue;
    }
    const float z_y = ce_val<D>(zr, bias, y, p);
    // Pass 1: per-thread online max and Σexp, and the smoothing sums.
    float m = -__int_as_float(0x7f800000), s = 0.0f;
    double sw = 0.0, swz = 0.0;
    for (int j = threadIdx.x; j < v; j += blockDim.x) {
      float x = ce_val<D>(zr, bias, j, p);
      if (x > m) {
        s = s * expf(m - x) + 1.0f;
        m = x;
      } else {
        s += expf(x - m);
      }
      if (smooth) {
        double wj = w ? (double)w[j] : 1.0;
        sw += wj;
        swz += wj * (double)x;
      }
    }
    float M = block_max(m, shf);
    float S = block_sum(m == -__int_as_float(0x7f800000) ? 0.0f : s * expf(m - M), shf);
    if (smooth) {
      sw = block_sum(sw, shd);
      swz = block_sum(swz, shd);
    }
    const float lse = M + logf(S);
    const float w_y = w ? w[y] : 1.0f;
    float ce = p.one_minus_ls * w_y * (lse - z_y);
    if (smooth) ce += p.eps * (float)(sw * (double)lse - swz);
    const float zl = p.lambda * lse * lse * p.z_scale;
    if (threadIdx.x == 0) {
      loss[r] = ce * p.ce_scale + zl;
      zloss[r] = zl;
    }
    if (!gr) continue;
    const float g = row_g ? row_g[r] : p.g;
    const float a = ((p.one_minus_ls * w_y + p.eps * p.weight_sum) * p.ce_scale +
                     2.0f * p.lambda * lse * p.z_scale) * g;
    const float bb = p.eps * p.ce_scale * g;
    const float c = p.one_minus_ls * w_y * p.ce_scale * g;
    // Pass 2: dz_j = (a·p_j − b·w_j − c·[j=y])·(1 − tanh²).
    for (int j = threadIdx.x; j < v; j += blockDim.x) {
      float raw = (float)D::ld(zr[j]);
      if (bias) raw += (float)D::ld(bias[j]);
      float x = raw, deriv = 1.0f;
      if (p.has_softcap) {
        float t = tanhf(raw / p.softcap);
        x = p.softcap * t;
        deriv = 1.0f - t * t;
      }
      float pj = expf(x - lse);
      float gj = a * pj - bb * (w ? w[j] : 1.0f);
      if (j == y) gj -= c;
      gr[j] = D::st(gj * deriv);
    }
  }
}

// Vectorized variant for the common case: no bias, no softcap, no class
// weights, no smoothing; `v` a multiple of VEC and rows 16-byte aligned.
template <class D>
__device__ void ce_rows_vec(typename D::T* z, typename D::T* grad, const int* tgt,
                            const float* row_g, float* loss, float* zloss, int rows, int v,
                            CeParams p) {
  typedef typename D::T T;
  const int V = VEC_OF(T);
  __shared__ float shf[32];
  const int nv = v / V;
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    T* zr = z + (unsigned long long)r * v;
    T* gr = grad ? grad + (unsigned long long)r * v : 0;
    const int y = tgt[r];
    if (y < 0) {
      if (gr)
        for (int j = threadIdx.x; j < v; j += blockDim.x) gr[j] = D::st(0.0f);
      if (threadIdx.x == 0) {
        loss[r] = 0.0f;
        zloss[r] = 0.0f;
      }
      continue;
    }
    const float z_y = (float)D::ld(zr[y]);
    float m = -__int_as_float(0x7f800000), s = 0.0f;
    for (int q = threadIdx.x; q < nv; q += blockDim.x) {
      __align__(16) T xv[16 / sizeof(T)];
      *(uint4*)xv = ((const uint4*)zr)[q];
      float bm = (float)D::ld(xv[0]);
#pragma unroll
      for (int e = 1; e < V; e++) bm = fmaxf(bm, (float)D::ld(xv[e]));
      if (bm > m) {
        s *= expf(m - bm);
        m = bm;
      }
#pragma unroll
      for (int e = 0; e < V; e++) s += expf((float)D::ld(xv[e]) - m);
    }
    float M = block_max(m, shf);
    float S = block_sum(m == -__int_as_float(0x7f800000) ? 0.0f : s * expf(m - M), shf);
    const float lse = M + logf(S);
    const float ce = p.one_minus_ls * (lse - z_y);
    const float zl = p.lambda * lse * lse * p.z_scale;
    if (threadIdx.x == 0) {
      loss[r] = ce * p.ce_scale + zl;
      zloss[r] = zl;
    }
    if (!gr) continue;
    const float g = row_g ? row_g[r] : p.g;
    const float a = (p.one_minus_ls * p.ce_scale + 2.0f * p.lambda * lse * p.z_scale) * g;
    const float c = p.one_minus_ls * p.ce_scale * g;
    for (int q = threadIdx.x; q < nv; q += blockDim.x) {
      __align__(16) T xv[16 / sizeof(T)];
      *(uint4*)xv = ((const uint4*)zr)[q];
#pragma unroll
      for (int e = 0; e < V; e++) {
        float gj = a * expf((float)D::ld(xv[e]) - lse);
        if (q * V + e == y) gj -= c;
        xv[e] = D::st(gj);
      }
      ((uint4*)gr)[q] = *(uint4*)xv;
    }
  }
}

// ---------------------------------------------------------------- JSD
// Elementwise over [rows, v]; `lab` (optional) marks ignored rows. Each
// block writes one partial loss sum (compute type double) to part[block].

template <class A>
__device__ __forceinline__ A xmul(A a, A l) { return a == A(0) ? A(0) : a * l; }

template <class A>
__device__ __forceinline__ A jsd_elem(A x, A y, double beta, A scale, A& d) {
  if (beta == 0.0) {
    A p = x_exp(y);
    d = -p * scale;
    return xmul(p, y - x);
  } else if (beta == 1.0) {
    A q = x_exp(x);
    A l = xmul(q, x - y);
    d = (l + q) * scale;
    return l;
  } else {
    A bp = A(beta) * x_exp(y);
    A oq = (A(1) - A(beta)) * x_exp(x);
    A lm = x_log(bp + oq);
    A gq = xmul(oq, x - lm);
    d = gq * scale;
    return xmul(bp, y - lm) + gq;
  }
}

template <class D>
__device__ void jsd(const typename D::T* x, const typename D::T* y, typename D::T* dx,
                    const long long* lab, long long ignore, double* part, long long n, int v,
                    double beta, double scale) {
  typedef typename D::A A;
  __shared__ double sh[32];
  double acc = 0.0;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    long long r = i / v;
    if (lab && lab[r] == ignore) {
      dx[i] = D::st(A(0));
      continue;
    }
    A d;
    acc += (double)jsd_elem<A>(D::ld(x[i]), D::ld(y[i]), beta, A(scale), d);
    dx[i] = D::st(d);
  }
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = acc;
}

// ---------------------------------------------------------------- KL divergence
// fwd: pointwise ℓ into `out` (reduction none) or per-block sums into `part`.
// bwd: dx = −weight(y)·(g[i] or s).

template <class A>
__device__ __forceinline__ A kl_point(A x, A y, int log_target) {
  if (log_target) {
    A e = x_exp(y);
    return e == A(0) ? A(0) : e * (y - x);
  }
  return y == A(0) ? A(0) : y * (x_log(y) - x);
}

template <class D>
__device__ void kl_fwd(const typename D::T* x, const typename D::T* y, typename D::T* out,
                       double* part, long long n, int log_target) {
  typedef typename D::A A;
  __shared__ double sh[32];
  double acc = 0.0;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    A l = kl_point<A>(D::ld(x[i]), D::ld(y[i]), log_target);
    if (out) out[i] = D::st(l);
    else acc += (double)l;
  }
  if (part) {
    acc = block_sum(acc, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = acc;
  }
}

template <class D>
__device__ void kl_bwd(const typename D::T* y, const typename D::T* g, typename D::T* dx,
                       long long n, double s, int log_target) {
  typedef typename D::A A;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    A yv = D::ld(y[i]);
    A wv = log_target ? x_exp(yv) : yv;
    A gv = g ? D::ld(g[i]) : A(s);
    dx[i] = D::st(-wv * gv);
  }
}

// ---------------------------------------------------------------- fused linear JSD rows
// One block per row of a chunk: s (student logits, compute-type f32/f64
// buffer) and t (teacher logits) are turned into log-softmax(·/T), the JSD
// row loss goes to loss[r], and s is overwritten with
// dz = (g − softmax(s/T)·Σg)/T where g = ∂loss/∂X. Ignored rows get dz = 0.

template <class A>
__device__ void fljsd_rows(A* s, A* t, const long long* lab, long long ignore, double* loss,
                           int rows, int v, double inv_t, double beta, double scale) {
  __shared__ A sh[32];
  __shared__ double shd[32];
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    A* sr = s + (unsigned long long)r * v;
    A* tr = t + (unsigned long long)r * v;
    if (lab && lab[r] == ignore) {
      for (int j = threadIdx.x; j < v; j += blockDim.x) sr[j] = A(0);
      if (threadIdx.x == 0) loss[r] = 0.0;
      continue;
    }
    // log-softmax of both rows, in place.
    for (int which = 0; which < 2; which++) {
      A* row = which ? tr : sr;
      A m = -x_inf(A(0));
      for (int j = threadIdx.x; j < v; j += blockDim.x) {
        A u = row[j] * A(inv_t);
        m = u > m ? u : m;
      }
      m = block_max(m, sh);
      A e = 0;
      for (int j = threadIdx.x; j < v; j += blockDim.x) e += x_exp(row[j] * A(inv_t) - m);
      A l = m + x_log(block_sum(e, sh));
      for (int j = threadIdx.x; j < v; j += blockDim.x) row[j] = row[j] * A(inv_t) - l;
    }
    // JSD terms and Σg; each thread rereads only the elements it wrote.
    double acc = 0.0;
    A gs = 0;
    for (int j = threadIdx.x; j < v; j += blockDim.x) {
      A d;
      acc += (double)jsd_elem<A>(sr[j], tr[j], beta, A(scale), d);
      tr[j] = d;  // the teacher row is free now: keep g there
      gs += d;
    }
    acc = block_sum(acc, shd);
    gs = block_sum(gs, sh);
    for (int j = threadIdx.x; j < v; j += blockDim.x)
      sr[j] = (tr[j] - x_exp(sr[j]) * gs) * A(inv_t);
    if (threadIdx.x == 0) loss[r] = acc;
  }
}

// ---------------------------------------------------------------- small helpers

// acc[j] += Σ_r src[r, j] (src storage type, acc compute type).
template <class D>
__device__ void colsum_acc(const typename D::T* src, typename D::A* acc, int rows, int n) {
  int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= n) return;
  typename D::A s = 0;
  for (int r = 0; r < rows; r++) s += D::ld(src[(unsigned long long)r * n + j]);
  acc[j] += s;
}

// out = cast(src) between compute and storage types.
template <class D>
__device__ void to_storage(const typename D::A* src, typename D::T* out, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x)
    out[i] = D::st(src[i]);
}

template <class D>
__device__ void to_compute(const typename D::T* src, typename D::A* out, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x)
    out[i] = D::ld(src[i]);
}

// ---------------------------------------------------------------- entry points

#define ENTRY(SFX, D)                                                                          \
  extern "C" __global__ void rms_fwd_##SFX(const D::T* x, const D::T* w, D::T* y, int rows,   \
                                           int n, float eps, float offset, int mode) {         \
    rms_fwd<D>(x, w, y, rows, n, eps, offset, mode);                                           \
  }                                                                                            \
  extern "C" __global__ void __launch_bounds__(1024) rms_bwd_##SFX(const D::T* x, const D::T* w, const D::T* dy,      \
                                           D::T* dx, D::A* dw_part, int rows, int n,           \
                                           float eps, float offset, int mode) {                \
    rms_bwd<D>(x, w, dy, dx, dw_part, rows, n, eps, offset, mode);                             \
  }                                                                                            \
  extern "C" __global__ void rms_fwd_v_##SFX(const D::T* x, const D::T* w, D::T* y, int rows, \
                                             int n, float eps, float offset, int mode) {       \
    rms_fwd_v<D>(x, w, y, rows, n, eps, offset, mode);                                         \
  }                                                                                            \
  extern "C" __global__ void __launch_bounds__(1024) rms_bwd_v_##SFX(                          \
      const D::T* x, const D::T* w, const D::T* dy, D::T* dx, D::A* dw_part, int rows, int n,  \
      float eps, float offset, int mode) {                                                     \
    rms_bwd_v<D>(x, w, dy, dx, dw_part, rows, n, eps, offset, mode);                           \
  }                                                                                            \
  extern "C" __global__ void colsum_##SFX(const D::A* part, D::T* out, int parts, int n) {    \
    colsum<D>(part, out, parts, n);                                                            \
  }                                                                                            \
  extern "C" __global__ void ln_fwd_##SFX(const D::T* x, const D::T* w, const D::T* b,        \
                                          D::T* y, int rows, int n, float eps) {               \
    ln_fwd<D>(x, w, b, y, rows, n, eps);                                                       \
  }                                                                                            \
  extern "C" __global__ void __launch_bounds__(1024) ln_bwd_##SFX(const D::T* x, const D::T* w, const D::T* dy,       \
                                          D::T* dx, D::A* dw_part, D::A* db_part, int rows,    \
                                          int n, float eps) {                                  \
    ln_bwd<D>(x, w, dy, dx, dw_part, db_part, rows, n, eps);                                   \
  }                                                                                            \
  extern "C" __global__ void rope_##SFX(const D::T* x, const D::A* cs, const D::A* sn,        \
                                        D::T* y, long long pairs, int h, int t, int d,         \
                                        int batched, int inv) {                                \
    rope<D>(x, cs, sn, y, pairs, h, t, d, batched, inv);                                       \
  }                                                                                            \
  extern "C" __global__ void glu_fwd_##SFX(const D::T* a, const D::T* b, D::T* c, long long n, \
                                           int gate, int vec) {                                \
    glu_fwd<D>(a, b, c, n, gate, vec);                                                         \
  }                                                                                            \
  extern "C" __global__ void glu_bwd_##SFX(const D::T* a, const D::T* b, const D::T* dc,      \
                                           D::T* da, D::T* db, long long n, int gate,          \
                                           int vec) {                                          \
    glu_bwd<D>(a, b, dc, da, db, n, gate, vec);                                                \
  }                                                                                            \
  extern "C" __global__ void ce_rows_##SFX(D::T* z, D::T* grad, const int* tgt,              \
                                           const D::T* bias, const float* w,                   \
                                           const float* row_g, float* loss, float* zloss,      \
                                           int rows, int v, CeParams p) {                      \
    ce_rows<D>(z, grad, tgt, bias, w, row_g, loss, zloss, rows, v, p);                         \
  }                                                                                            \
  extern "C" __global__ void ce_rows_vec_##SFX(D::T* z, D::T* grad, const int* tgt,          \
                                               const float* row_g, float* loss, float* zloss,  \
                                               int rows, int v, CeParams p) {                  \
    ce_rows_vec<D>(z, grad, tgt, row_g, loss, zloss, rows, v, p);                              \
  }                                                                                            \
  extern "C" __global__ void jsd_##SFX(const D::T* x, const D::T* y, D::T* dx,                \
                                       const long long* lab, long long ignore, double* part,   \
                                       long long n, int v, double beta, double scale) {        \
    jsd<D>(x, y, dx, lab, ignore, part, n, v, beta, scale);                                    \
  }                                                                                            \
  extern "C" __global__ void kl_fwd_##SFX(const D::T* x, const D::T* y, D::T* out,            \
                                          double* part, long long n, int log_target) {         \
    kl_fwd<D>(x, y, out, part, n, log_target);                                                 \
  }                                                                                            \
  extern "C" __global__ void kl_bwd_##SFX(const D::T* y, const D::T* g, D::T* dx,             \
                                          long long n, double s, int log_target) {             \
    kl_bwd<D>(y, g, dx, n, s, log_target);                                                     \
  }                                                                                            \
  extern "C" __global__ void colsum_acc_##SFX(const D::T* src, D::A* acc, int rows, int n) {  \
    colsum_acc<D>(src, acc, rows, n);                                                          \
  }                                                                                            \
  extern "C" __global__ void to_storage_##SFX(const D::A* src, D::T* out, long long n) {      \
    to_storage<D>(src, out, n);                                                                \
  }                                                                                            \
  extern "C" __global__ void to_compute_##SFX(const D::T* src, D::A* out, long long n) {      \
    to_compute<D>(src, out, n);                                                                \
  }

ENTRY(f32, F32)
ENTRY(f64, F64)
ENTRY(bf16, BF16)
ENTRY(f16, F16)

extern "C" __global__ void fljsd_rows_f32(float* s, float* t, const long long* lab,
                                          long long ignore, double* loss, int rows, int v,
                                          double inv_t, double beta, double scale) {
  fljsd_rows<float>(s, t, lab, ignore, loss, rows, v, inv_t, beta, scale);
}

extern "C" __global__ void fljsd_rows_f64(double* s, double* t, const long long* lab,
                                          long long ignore, double* loss, int rows, int v,
                                          double inv_t, double beta, double scale) {
  fljsd_rows<double>(s, t, lab, ignore, loss, rows, v, inv_t, beta, scale);
}
