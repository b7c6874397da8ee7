// The stage loops of sketchode.numerics.fused (RK4, 3/8 rule, periodic MLP fields) in C++.
// Compiled and loaded by sketchode.accel: once per machine, into a cache keyed by this file's sha256 and torch.
//
// This file is a port of the two Python loops in sketchode/numerics/fused.py
// (_forward_loop and _backward_loop): the same stages, the same buffers,
// the same order of operations.  What changes is the cost of each operation:
//
// * matrix products call the BLAS (sgemm_/dgemm_, the library torch itself
//   uses) directly on raw pointers, without creating tensors or going through
//   torch's dispatcher: a product of 64 x 77 by 77 x 77 takes ~12 us, and the
//   ~1.5 us torch adds to each of the ~3000 operations of a solve is no
//   longer negligible;
// * element-wise work (RK4 combinations, outer products, derivative masks) is
//   plain loops that the compiler vectorises;
// * a periodic layer needs both sin and cos of its pre-activation (the
//   activation and its derivative): in float32 one pass computes both
//   (sincos_f32, in double precision, rounded once), written straight into
//   the stage buffers; float64 and out-of-range inputs use torch's sin and cos;
// * the batch is split into contiguous row blocks, one per intra-op thread
//   (at::parallel_for): samples are independent in the stage loop, and these
//   matrices are too small for the BLAS to use two cores on its own.
//
// * the products are all "A @ B" with B stored (k x n) (transposed copies of
//   the weights are made once per call): MKL's kernels for them are 15-40 %
//   faster at these shapes than its "A @ B^T" ones;
// * the weight gradients are summed inside the backward loop, one RK4 step
//   at a time while its stage gradients are in cache (the Python loops make
//   one product over all stages after the loop), so the controlled form keeps
//   no outer products dX (x) z_L between forward and backward;
// * subnormal numbers are flushed to zero (FlushSubnormals): gradients that
//   travel back through a long chain of strokes reach that range.
//
// Results agree with the Python loops to rounding (tests/test_fused_cpp.py).

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define SKETCHODE_HAVE_MXCSR 1
#endif

using at::Tensor;

// The Fortran BLAS symbols that torch's own library exports (MKL or OpenBLAS).
// Weak: where they are missing, products go through torch instead.
extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*, const int*,
            const float*, const int*, const float*, float*, const int*) __attribute__((weak));
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*, const double*, const int*,
            const double*, const int*, const double*, double*, const int*) __attribute__((weak));
}

namespace {

// Subnormal numbers (|x| < 1.2e-38 in float32) flushed to zero on this thread while the object lives
// (the SSE/AVX flags FTZ and DAZ, restored by the destructor).  Gradients that travel back through a
// long chain of strokes shrink geometrically and reach the subnormal range: on Quick, Draw! sheep
// (45 strokes) the first strokes' backward then met ~20 000 subnormal operands, which every x86 core
// handles by a microcode assist, and took 3.5x as long (40 ms instead of 12 ms at B = 64).  Flushing
// moves each operand or result by less than 1.2e-38 (results: by sums of such amounts, tested
// against the unflushed loops in tests/test_multistroke_speed.py).  No-op off x86-64.
struct FlushSubnormals {
#ifdef SKETCHODE_HAVE_MXCSR
  unsigned int old;
  explicit FlushSubnormals(bool on = true) : old(_mm_getcsr()) {
    if (on) _mm_setcsr(old | 0x8040u);  // FTZ (bit 15) | DAZ (bit 6)
  }
  ~FlushSubnormals() { _mm_setcsr(old); }
#else
  explicit FlushSubnormals(bool = true) {}
#endif
};

bool g_flush = true;  // tests switch it off to compare

template <typename T>
void blas(char ta, char tb, int m, int n, int k, T alpha, const T* a, int lda, const T* b, int ldb, T beta, T* c,
          int ldc);

template <>
void blas<float>(char ta, char tb, int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb,
                 float beta, float* c, int ldc) {
  sgemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}

template <>
void blas<double>(char ta, char tb, int m, int n, int k, double alpha, const double* a, int lda, const double* b,
                  int ldb, double beta, double* c, int ldc) {
  dgemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}

bool g_use_blas = true;  // tests switch it off to check the fallback through torch

template <typename T>
bool have_blas();
template <>
bool have_blas<float>() { return g_use_blas && sgemm_ != nullptr; }
template <>
bool have_blas<double>() { return g_use_blas && dgemm_ != nullptr; }

// Row-major C (m x n, row stride ldc) = beta C + A (m x k, lda) @ B, where B is (k x n, ldb),
// or, with trans_b, B is (n x k, ldb) and the product is A @ B^T.
template <typename T>
void gemm(bool trans_b, int64_t m, int64_t n, int64_t k, const T* A, int64_t lda, const T* B, int64_t ldb, T beta,
          T* C, int64_t ldc) {
  if (have_blas<T>()) {
    // column-major view: C^T = op(B)^T A^T
    blas<T>(trans_b ? 'T' : 'N', 'N', (int)n, (int)m, (int)k, T(1), B, (int)ldb, A, (int)lda, beta, C, (int)ldc);
    return;
  }
  auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  Tensor a = at::from_blob(const_cast<T*>(A), {m, k}, {lda, 1}, opts);
  Tensor b = trans_b ? at::from_blob(const_cast<T*>(B), {n, k}, {ldb, 1}, opts).t()
                     : at::from_blob(const_cast<T*>(B), {k, n}, {ldb, 1}, opts);
  Tensor c = at::from_blob(C, {m, n}, {ldc, 1}, opts);
  if (beta == T(0))
    c.zero_();
  else
    c.mul_(beta);
  c.addmm_(a, b);
}

// Row-major C (m x n, ldc) = beta C + A^T B, with A stored (k x m, lda) and B (k x n, ldb): the weight
// gradients' products, which sum over k = rows (stages x samples).
template <typename T>
void gemm_tn(int64_t m, int64_t n, int64_t k, const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C,
             int64_t ldc) {
  if (have_blas<T>()) {
    // column-major view: C^T (n x m) = B^T A, B^T being B as stored and A the transpose of A as stored
    blas<T>('N', 'T', (int)n, (int)m, (int)k, T(1), B, (int)ldb, A, (int)lda, beta, C, (int)ldc);
    return;
  }
  auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  Tensor a = at::from_blob(const_cast<T*>(A), {k, m}, {lda, 1}, opts);
  Tensor b = at::from_blob(const_cast<T*>(B), {k, n}, {ldb, 1}, opts);
  Tensor c = at::from_blob(C, {m, n}, {ldc, 1}, opts);
  if (beta == T(0))
    c.zero_();
  else
    c.mul_(beta);
  c.addmm_(a.t(), b);
}

// One weight gradient P^T Q (P: rows x m, Q: rows x n) accumulated over blocks of rows.  It is kept as
// (Q^T P) (n x m) when n < m: the BLAS runs these products faster with the smaller side as the result's
// rows (with MKL on one thread: 1.2x for 173 x 146, even for 173 x 144).
template <typename T>
struct WeightGrad {
  int64_t m = 0, n = 0;
  bool flip = false;
  std::vector<T> acc;
  void init(int64_t m_, int64_t n_) {
    m = m_, n = n_, flip = n < m;
    acc.assign(m * n, T(0));
  }
  void add(const T* P, int64_t ldp, const T* Q, int64_t ldq, int64_t rows) {
    if (flip)
      gemm_tn<T>(n, m, rows, Q, ldq, P, ldp, T(1), acc.data(), m);
    else
      gemm_tn<T>(m, n, rows, P, ldp, Q, ldq, T(1), acc.data(), n);
  }
  void write_to(T* out, bool first) const {  // out (m x n) row-major: = (first) or += this block's sum
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        const T v = flip ? acc[j * m + i] : acc[i * n + j];
        out[i * n + j] = first ? v : out[i * n + j] + v;
      }
  }
};

// a (S, B, F) tensor read row by row: element [s, r, f] at s * st0 + r * st1 + f (last stride 1)
template <typename T>
struct Rows3 {
  const T* p;
  int64_t st0, st1;
  Rows3(const Tensor& t) : p(t.data_ptr<T>()), st0(t.stride(0)), st1(t.stride(1)) {
    TORCH_CHECK(t.size(2) == 1 || t.stride(2) == 1, "fused_rk4: the last dimension of a bias must be contiguous");
  }
  const T* row(int64_t s, int64_t r) const { return p + s * st0 + r * st1; }
};

// copy rows [b0, b0 + nb) of a stage's bias (possibly broadcast) into a dense nb x F block
template <typename T>
void copy_rows(const Rows3<T>& src, int64_t s, int64_t b0, int64_t nb, int64_t F, T* dst) {
  for (int64_t r = 0; r < nb; ++r) std::memcpy(dst + r * F, src.row(s, b0 + r), F * sizeof(T));
}

int64_t grain(int64_t B) {
  // one block per thread, at least 8 rows each (smaller blocks lose more to overhead than they gain)
  int64_t t = std::max<int64_t>(1, at::get_num_threads());
  return std::max<int64_t>(8, (B + t - 1) / t);
}

// sin and cos of n floats in one pass, computed in double precision and rounded once to float
// (so about half an ulp, like torch's own float kernels): reduction by pi/2 with a two-piece constant
// (fdlibm's pio2_1, pio2_1t) and the minimax polynomials of Cephes' double sin/cos on [-pi/4, pi/4].
// Compiled for AVX-512, AVX2 and plain x86-64 (the loader picks one at run time).  Returns nonzero
// when some |x| > 8192 or is NaN: the caller then recomputes the block with torch.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SKETCHODE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SKETCHODE_CLONES
#endif

SKETCHODE_CLONES
int sincos_f32(const float* __restrict x, int64_t n, float* __restrict s_out, float* __restrict c_out) {
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    bad |= !(std::fabs(v) <= 8192.0);
    const double t = (v * 0.63661977236758134308 + 6755399441055744.0) - 6755399441055744.0;  // nearest integer
    const int q = (int)t;
    const double r = (v - t * 1.57079632673412561417e+00) - t * 6.07710050650619224932e-11;  // x = q pi/2 + r
    const double z = r * r;
    const double sp =
        r + r * z *
                (((((1.58962301576546568060e-10 * z - 2.50507477628578072866e-8) * z + 2.75573136213857245213e-6) * z -
                   1.98412698295895385996e-4) * z + 8.33333333332211858878e-3) * z - 1.66666666666666307295e-1);
    const double cp =
        1.0 - 0.5 * z +
        z * z *
            (((((-1.13585365213876817300e-11 * z + 2.08757008419747316778e-9) * z - 2.75573141792967388112e-7) * z +
               2.48015872888517045348e-5) * z - 1.38888888888730564116e-3) * z + 4.16666666666665929218e-2);
    // quadrant q: (sin, cos) = (s, c), (c, -s), (-s, -c), (-c, s); blended arithmetically so that the
    // loop vectorises (the blend's double rounding is far below float resolution)
    const double odd = (double)(q & 1);
    const double sw = sp + odd * (cp - sp), cw = cp + odd * (sp - cp);
    s_out[i] = (float)(sw * (double)(1 - (q & 2)));
    c_out[i] = (float)(cw * (double)(1 - ((q + 1) & 2)));
  }
  return bad;
}

// the activation of one hidden layer on a block: z = act(a), d = act'(a) up to sign, written into the stage buffers
struct Act {
  Tensor a, z, d;  // (nb, H) scratch: pre-activation, and torch's results when it computes them
  void init(int64_t nb, int64_t H, const at::TensorOptions& o) {
    a = at::empty({nb, H}, o);
    z = at::empty({nb, H}, o);
    d = at::empty({nb, H}, o);
  }
  template <typename T>
  void apply(bool is_cos, T* z_out, T* d_out) {  // d_out == nullptr: no derivative needed
    if constexpr (std::is_same<T, float>::value) {
      float* dd = d_out ? d_out : d.data_ptr<float>();
      // cos layer: z = cos, d = sin (act' = -sin, sign applied in backward); sin layer: z = sin, d = cos
      if (!sincos_f32(a.data_ptr<float>(), a.numel(), is_cos ? dd : z_out, is_cos ? z_out : dd)) return;
    }
    if (is_cos) {
      at::cos_out(z, a);
      if (d_out) at::sin_out(d, a);
    } else {
      at::sin_out(z, a);
      if (d_out) at::cos_out(d, a);
    }
    std::memcpy(z_out, z.data_ptr<T>(), z.numel() * sizeof(T));
    if (d_out) std::memcpy(d_out, d.data_ptr<T>(), d.numel() * sizeof(T));
  }
};

template <typename T>
void forward_impl(const std::vector<double>& hs, const std::vector<bool>& is_cos, bool stages, bool grad,
                  const Tensor& y0, const Tensor& bias1, const Tensor& out_bias, const Tensor& dx, const Tensor& W1,
                  const std::vector<Tensor>& mids, const Tensor& Wlast, Tensor& X, std::vector<Tensor>& Z,
                  std::vector<Tensor>& Dr, Tensor& Y, Tensor& K, Tensor& O) {
  const int64_t L = (int64_t)is_cos.size(), n = (int64_t)hs.size();
  const int64_t B = y0.size(0), D = y0.size(1);
  const bool controlled = dx.defined();
  const int64_t C = controlled ? dx.size(2) : 0;
  std::vector<int64_t> H;
  for (auto& z : Z) H.push_back(z.size(2));
  const int64_t HL = H.back();
  auto opts = y0.options();
  Rows3<T> b1(bias1), ob(out_bias);
  // every per-stage product is row-major A @ B with B stored (k x n) ("NN"): MKL's NN kernels are
  // 15-40 % faster than its A @ B^T ("NT") ones at these shapes, so transposed copies are made once
  const Tensor W1t = W1.t().contiguous();  // (D, H_0)
  const Tensor Wlt = controlled ? Wlast : Wlast.t().contiguous();  // (C H_L, D) or (H_L, D)
  std::vector<Tensor> midt;
  for (int64_t j = 0; j + 1 < L; ++j) midt.push_back(mids[2 * j].t().contiguous());  // (H_{j}, H_{j+1})
  const T* w1 = W1t.data_ptr<T>();
  const T* wl = Wlt.data_ptr<T>();
  const T* dxp = controlled ? dx.data_ptr<T>() : nullptr;
  std::vector<const T*> mw, mb;
  for (int64_t j = 0; j + 1 < L; ++j) {
    mw.push_back(midt[j].data_ptr<T>());
    mb.push_back(mids[2 * j + 1].data_ptr<T>());
  }
  T* Xp = X.data_ptr<T>();
  T* Yp = Y.data_ptr<T>();
  T* Kp = stages ? K.data_ptr<T>() : nullptr;
  std::vector<T*> Zp, Dp;
  for (int64_t j = 0; j < L; ++j) {
    Zp.push_back(Z[j].data_ptr<T>());
    Dp.push_back(grad ? Dr[j].data_ptr<T>() : nullptr);
  }
  std::memcpy(Yp, y0.data_ptr<T>(), B * D * sizeof(T));

  at::parallel_for(0, B, grain(B), [&](int64_t b0, int64_t b1r) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;  // thread-local: each worker skips autograd itself
    FlushSubnormals ftz(g_flush);  // thread-local as well
    const int64_t nb = b1r - b0;
    std::vector<Act> act(L);
    for (int64_t j = 0; j < L; ++j) act[j].init(nb, H[j], opts);
    std::vector<T> outer(controlled ? nb * C * HL : 0);  // one stage's outer products (the backward rebuilds them)
    std::vector<T> own(stages ? 0 : 3 * nb * D), k4(nb * D);
    auto at_stage = [&](T* base, int64_t s, int64_t F) { return base + (s * B + b0) * F; };

    auto f = [&](int64_t s, T* out) {  // the field at stage s (input already in X[s]) into out (nb x D)
      T* a = act[0].a.template data_ptr<T>();
      copy_rows(b1, s, b0, nb, H[0], a);
      gemm<T>(false, nb, H[0], D, at_stage(Xp, s, D), D, w1, H[0], T(1), a, H[0]);
      act[0].apply<T>(is_cos[0], at_stage(Zp[0], s, H[0]), grad ? at_stage(Dp[0], s, H[0]) : nullptr);
      for (int64_t j = 1; j < L; ++j) {
        T* aj = act[j].a.template data_ptr<T>();
        for (int64_t r = 0; r < nb; ++r) std::memcpy(aj + r * H[j], mb[j - 1], H[j] * sizeof(T));
        gemm<T>(false, nb, H[j], H[j - 1], at_stage(Zp[j - 1], s, H[j - 1]), H[j - 1], mw[j - 1], H[j], T(1), aj,
                H[j]);
        act[j].apply<T>(is_cos[j], at_stage(Zp[j], s, H[j]), grad ? at_stage(Dp[j], s, H[j]) : nullptr);
      }
      const T* z = at_stage(Zp[L - 1], s, HL);
      copy_rows(ob, s, b0, nb, D, out);
      if (controlled) {
        T* o = outer.data();
        const T* dxs = dxp + (s * B + b0) * C;
        for (int64_t r = 0; r < nb; ++r)
          for (int64_t c = 0; c < C; ++c) {
            const T v = dxs[r * C + c];
            T* orow = o + (r * C + c) * HL;
            const T* zr = z + r * HL;
            for (int64_t h = 0; h < HL; ++h) orow[h] = v * zr[h];
          }
        gemm<T>(false, nb, D, C * HL, o, C * HL, wl, D, T(1), out, D);  // (nb, C H) @ (C H, D)
      } else {
        gemm<T>(false, nb, D, HL, z, HL, wl, D, T(1), out, D);  // (nb, H) @ (H, D)
      }
    };

    const int64_t m = nb * D;
    for (int64_t i = 0; i < n; ++i) {
      const T h = (T)hs[i], third = T(1.0 / 3);
      const int64_t s = 4 * i;
      const T* y = Yp + (i * B + b0) * D;
      T* k1 = stages ? Kp + ((0 * n + i) * B + b0) * D : own.data();
      T* k2 = stages ? Kp + ((1 * n + i) * B + b0) * D : own.data() + m;
      T* k3 = stages ? Kp + ((2 * n + i) * B + b0) * D : own.data() + 2 * m;
      T* x0 = at_stage(Xp, s, D);
      T* x1 = at_stage(Xp, s + 1, D);
      T* x2 = at_stage(Xp, s + 2, D);
      T* x3 = at_stage(Xp, s + 3, D);
      std::memcpy(x0, y, m * sizeof(T));
      f(s, k1);
      const T h3 = (T)(hs[i] / 3), h8 = (T)(hs[i] / 8);
      for (int64_t e = 0; e < m; ++e) x1[e] = y[e] + h3 * k1[e];
      f(s + 1, k2);
      for (int64_t e = 0; e < m; ++e) x2[e] = y[e] + h * (k2[e] - third * k1[e]);
      f(s + 2, k3);
      for (int64_t e = 0; e < m; ++e) x3[e] = y[e] + h * (k1[e] - k2[e] + k3[e]);
      f(s + 3, k4.data());
      T* yn = Yp + ((i + 1) * B + b0) * D;
      for (int64_t e = 0; e < m; ++e) yn[e] = y[e] + h8 * ((k2[e] + k3[e]) * T(3) + k1[e] + k4[e]);
    }
  });
}

template <typename T>
void backward_impl(const std::vector<double>& hs, const std::vector<bool>& is_cos, const Tensor& gY,
                   const Tensor& gK, const Tensor& dx, const Tensor& W1, const std::vector<Tensor>& midW,
                   const Tensor& Wlast, const std::vector<Tensor>& Dr, const Tensor& X, const std::vector<Tensor>& Z,
                   Tensor& a_all, Tensor& GO, std::vector<Tensor>& GA, std::vector<Tensor>& WG) {
  const int64_t L = (int64_t)is_cos.size(), n = (int64_t)hs.size();
  const int64_t B = gY.size(1), D = gY.size(2);
  const bool controlled = dx.defined();
  const int64_t C = controlled ? dx.size(2) : 0;
  std::vector<int64_t> H;
  for (auto& d : Dr) H.push_back(d.size(2));
  const int64_t HL = H.back();
  const T* w1 = W1.data_ptr<T>();
  const Tensor Wlt = controlled ? Wlast.t().contiguous() : Wlast;  // (D, C H_L) for an NN product
  const T* wl = Wlt.data_ptr<T>();
  const T* dxp = controlled ? dx.data_ptr<T>() : nullptr;
  const T* gYp = gY.data_ptr<T>();
  const T* gKp = gK.defined() ? gK.data_ptr<T>() : nullptr;
  std::vector<const T*> mw, Dp;
  for (auto& w : midW) mw.push_back(w.data_ptr<T>());
  for (auto& d : Dr) Dp.push_back(d.data_ptr<T>());
  T* GOp = GO.data_ptr<T>();
  std::vector<T*> GAp;
  for (auto& g : GA) GAp.push_back(g.data_ptr<T>());
  T* Ap = a_all.data_ptr<T>();
  const T* Xp = X.data_ptr<T>();
  std::vector<const T*> Zp;
  for (auto& z : Z) Zp.push_back(z.data_ptr<T>());

  // The weight gradients are summed inside the loop, one RK4 step (4 stages) at a time, while that
  // step's stage gradients are still in cache (they used to be one product over all stages after the
  // loop, reading every buffer back from memory, and the controlled form kept the outer products
  // dX (x) z_L of every stage for it: now each step's are rebuilt in a small scratch block).
  // Each block of rows sums its own; the blocks are added in row order after the loop.
  struct Block {
    WeightGrad<T> first, last;
    std::vector<WeightGrad<T>> mids;
    std::vector<std::vector<T>> mid_bias;
  };
  std::mutex blocks_mutex;
  std::map<int64_t, Block> blocks;

  at::parallel_for(0, B, grain(B), [&](int64_t b0, int64_t b1r) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    FlushSubnormals ftz(g_flush);
    const int64_t nb = b1r - b0, m = nb * D;
    std::vector<std::vector<T>> gz(L);
    for (int64_t j = 0; j < L; ++j) gz[j].resize(nb * H[j]);
    std::vector<T> gCH(controlled ? nb * C * HL : 0), gu(m);
    T* a = Ap + b0 * D;
    auto at_stage = [&](auto* base, int64_t s, int64_t F) { return base + (s * B + b0) * F; };
    // When this block is the whole batch, the rows of consecutive stages are contiguous: the products
    // then cover whole steps, enough of them for >= 256 rows (small batches: several steps at once,
    // else the accumulators' traffic would dominate).  A block of a larger batch sums stage by stage.
    const int64_t per = nb == B ? 4 * std::min<int64_t>(n, std::max<int64_t>(1, (256 + 4 * nb - 1) / (4 * nb))) : 1;
    Block wg;
    wg.first.init(H[0], D);
    for (int64_t j = 1; j < L; ++j) {
      wg.mids.emplace_back();
      wg.mids.back().init(H[j], H[j - 1]);
      wg.mid_bias.emplace_back(H[j], T(0));
    }
    if (controlled)
      wg.last.init(C * HL, D);
    else
      wg.last.init(D, HL);
    std::vector<T> outer(controlled ? per * nb * C * HL : 0);
    auto accumulate = [&](int64_t s0, int64_t stages) {  // stages s0 .. s0 + stages - 1: contiguous rows
      const int64_t rows = stages * nb;
      wg.first.add(at_stage(GAp[0], s0, H[0]), H[0], at_stage(Xp, s0, D), D, rows);  // GA_0^T X
      for (int64_t j = 1; j < L; ++j) {
        const T* ga = at_stage(GAp[j], s0, H[j]);
        wg.mids[j - 1].add(ga, H[j], at_stage(Zp[j - 1], s0, H[j - 1]), H[j - 1], rows);  // GA_j^T Z_{j-1}
        T* gb = wg.mid_bias[j - 1].data();
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t h = 0; h < H[j]; ++h) gb[h] += ga[r * H[j] + h];
      }
      const T* go = at_stage(GOp, s0, D);
      const T* z = at_stage(Zp[L - 1], s0, HL);
      if (controlled) {  // O^T GO with O = dX (x) z_L, rebuilt for these rows
        const T* dxs = at_stage(dxp, s0, C);
        T* o = outer.data();
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < C; ++c) {
            const T v = dxs[r * C + c];
            T* orow = o + (r * C + c) * HL;
            const T* zr = z + r * HL;
            for (int64_t h = 0; h < HL; ++h) orow[h] = v * zr[h];
          }
        wg.last.add(o, C * HL, go, D, rows);
      } else {
        wg.last.add(go, D, z, HL, rows);  // GO^T z_L
      }
    };

    auto fb = [&](int64_t s) {  // gradient wrt the stage input into gu, given GO[s]
      const T* g = at_stage(GOp, s, D);
      T* zL = gz[L - 1].data();
      if (controlled) {
        gemm<T>(false, nb, C * HL, D, g, D, wl, C * HL, T(0), gCH.data(), C * HL);  // (nb, D) @ (D, C H)
        const T* dxs = at_stage(dxp, s, C);
        for (int64_t r = 0; r < nb; ++r) {
          T* zr = zL + r * HL;
          const T* gr = gCH.data() + r * C * HL;
          for (int64_t h = 0; h < HL; ++h) zr[h] = gr[h] * dxs[r * C];
          for (int64_t c = 1; c < C; ++c) {
            const T v = dxs[r * C + c];
            const T* gc = gr + c * HL;
            for (int64_t h = 0; h < HL; ++h) zr[h] += gc[h] * v;
          }
        }
      } else {
        gemm<T>(false, nb, HL, D, g, D, wl, HL, T(0), zL, HL);  // (nb, D) @ (D, H)
      }
      for (int64_t j = L - 1; j >= 0; --j) {
        T* ga = at_stage(GAp[j], s, H[j]);
        const T* dj = at_stage(Dp[j], s, H[j]);
        const T* gzj = gz[j].data();
        const int64_t e_end = nb * H[j];
        if (is_cos[j])
          for (int64_t e = 0; e < e_end; ++e) ga[e] = -(gzj[e] * dj[e]);
        else
          for (int64_t e = 0; e < e_end; ++e) ga[e] = gzj[e] * dj[e];
        if (j) gemm<T>(false, nb, H[j - 1], H[j], ga, H[j], mw[j - 1], H[j - 1], T(0), gz[j - 1].data(), H[j - 1]);
      }
      gemm<T>(false, nb, D, H[0], at_stage(GAp[0], s, H[0]), H[0], w1, D, T(0), gu.data(), D);
    };

    int64_t pending_end = n;  // steps [i, pending_end) have final stage gradients not yet summed
    for (int64_t i = n - 1; i >= 0; --i) {
      const T h = (T)hs[i], h3 = (T)(hs[i] / 3), h8 = (T)(hs[i] / 8), h38 = (T)(3 * hs[i] / 8);
      const int64_t s = 4 * i;
      T* gk1 = at_stage(GOp, s, D);
      T* gk2 = at_stage(GOp, s + 1, D);
      T* gk3 = at_stage(GOp, s + 2, D);
      T* gk4 = at_stage(GOp, s + 3, D);
      for (int64_t e = 0; e < m; ++e) {
        gk4[e] = a[e] * h8;
        gk3[e] = a[e] * h38;
      }
      if (gKp) {
        const T* q1 = gKp + ((0 * n + i) * B + b0) * D;
        const T* q2 = gKp + ((1 * n + i) * B + b0) * D;
        const T* q3 = gKp + ((2 * n + i) * B + b0) * D;
        for (int64_t e = 0; e < m; ++e) {
          gk2[e] = gk3[e] + q2[e];
          gk1[e] = gk4[e] + q1[e];
          gk3[e] += q3[e];
        }
      } else {
        std::memcpy(gk2, gk3, m * sizeof(T));
        std::memcpy(gk1, gk4, m * sizeof(T));
      }
      const T* gy = gYp + (i * B + b0) * D;
      for (int64_t e = 0; e < m; ++e) a[e] += gy[e];
      fb(s + 3);
      for (int64_t e = 0; e < m; ++e) {
        a[e] += gu[e];
        gk1[e] += h * gu[e];
        gk2[e] -= h * gu[e];
        gk3[e] += h * gu[e];
      }
      fb(s + 2);
      for (int64_t e = 0; e < m; ++e) {
        a[e] += gu[e];
        gk2[e] += h * gu[e];
        gk1[e] -= h3 * gu[e];
      }
      fb(s + 1);
      for (int64_t e = 0; e < m; ++e) {
        a[e] += gu[e];
        gk1[e] += h3 * gu[e];
      }
      fb(s);
      for (int64_t e = 0; e < m; ++e) a[e] += gu[e];
      // the stage gradients of this step are final: sum the pending ones into the weight gradients
      if (per == 1) {
        for (int64_t q = 0; q < 4; ++q) accumulate(s + q, 1);
      } else if (4 * pending_end - s >= per || i == 0) {
        accumulate(s, 4 * pending_end - s);
        pending_end = i;
      }
    }
    std::lock_guard<std::mutex> lock(blocks_mutex);
    blocks.emplace(b0, std::move(wg));
  });
  // the blocks' sums, added in row order (the same result on any number of threads up to rounding)
  bool first = true;
  for (auto& kv : blocks) {
    Block& wg = kv.second;
    wg.first.write_to(WG[0].data_ptr<T>(), first);
    for (int64_t j = 1; j < L; ++j) {
      wg.mids[j - 1].write_to(WG[2 * j - 1].data_ptr<T>(), first);
      T* gb = WG[2 * j].data_ptr<T>();
      for (int64_t h = 0; h < H[j]; ++h) gb[h] = first ? wg.mid_bias[j - 1][h] : gb[h] + wg.mid_bias[j - 1][h];
    }
    wg.last.write_to(WG.back().data_ptr<T>(), first);
    first = false;
  }
}

void check_dense(const Tensor& t, const char* what) {
  TORCH_CHECK(t.device().is_cpu(), "fused_rk4: ", what, " must be on the CPU");
  TORCH_CHECK(t.is_contiguous(), "fused_rk4: ", what, " must be contiguous");
}

}  // namespace

// Forward solve.  Returns [Y, K (or undefined), X, O (controlled and grad, else undefined),
// Z_0..Z_{L-1}, D_0..D_{L-1} (when grad)].
std::vector<Tensor> forward(const std::vector<double>& hs, const std::vector<bool>& is_cos, bool stages, bool grad,
                            const Tensor& y0_, const Tensor& bias1, const Tensor& out_bias,
                            const c10::optional<Tensor>& dx_opt, const Tensor& W1,
                            const std::vector<Tensor>& mids,  // W_1, b_1, W_2, b_2, ...
                            const Tensor& Wlast) {
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const int64_t L = (int64_t)is_cos.size(), n = (int64_t)hs.size();
  Tensor y0 = y0_.contiguous();
  const int64_t S = 4 * n, B = y0.size(0), D = y0.size(1);
  const bool controlled = dx_opt.has_value() && dx_opt->defined();
  Tensor dx = controlled ? dx_opt->contiguous() : Tensor();
  check_dense(W1, "W1");
  check_dense(Wlast, "Wlast");
  for (auto& t : mids) check_dense(t, "a hidden layer's weight or bias");
  auto opts = y0.options();
  std::vector<int64_t> H{W1.size(0)};
  for (int64_t j = 0; j + 1 < L; ++j) H.push_back(mids[2 * j].size(0));
  Tensor X = at::empty({S, B, D}, opts);
  std::vector<Tensor> Z, Dr;
  for (int64_t h : H) {
    Z.push_back(at::empty({S, B, h}, opts));
    if (grad) Dr.push_back(at::empty({S, B, h}, opts));
  }
  Tensor Y = at::empty({n + 1, B, D}, opts);
  Tensor K = stages ? at::empty({3, n, B, D}, opts) : Tensor();
  // the outer products dX (x) z_L of every stage, kept for the last weight's gradient
  Tensor O;  // the outer products are not kept: the backward loop rebuilds them block by block
  AT_DISPATCH_FLOATING_TYPES(y0.scalar_type(), "fused_rk4_forward", [&] {
    forward_impl<scalar_t>(hs, is_cos, stages, grad, y0, bias1, out_bias, dx, W1, mids, Wlast, X, Z, Dr, Y, K, O);
  });
  std::vector<Tensor> out{Y, K, X, O};
  for (auto& z : Z) out.push_back(z);
  for (auto& d : Dr) out.push_back(d);
  return out;
}

// Backward loop.  Returns [a (gradient wrt y0), GO (S, B, D), GA_0..GA_{L-1}, gW1, gW_1, gb_1, ..., gWlast]:
// the weight gradients (summed inside the loop) in the layout of the weights (W1 (H_0, D), hidden
// layers (H_j, H_{j-1}) and (H_j), Wlast (C H_L, D) or (D, H_L)).  X and Z are the forward's.
std::vector<Tensor> backward(const std::vector<double>& hs, const std::vector<bool>& is_cos, const Tensor& gY_,
                             const c10::optional<Tensor>& gK_opt, const c10::optional<Tensor>& dx_opt,
                             const Tensor& W1, const std::vector<Tensor>& midW, const Tensor& Wlast,
                             const std::vector<Tensor>& Dr, const Tensor& X, const std::vector<Tensor>& Z) {
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const int64_t n = (int64_t)hs.size(), L = (int64_t)is_cos.size();
  Tensor gY = gY_.contiguous();
  const int64_t S = 4 * n, B = gY.size(1), D = gY.size(2);
  Tensor gK = (gK_opt.has_value() && gK_opt->defined()) ? gK_opt->contiguous() : Tensor();
  Tensor dx = (dx_opt.has_value() && dx_opt->defined()) ? dx_opt->contiguous() : Tensor();
  for (auto& d : Dr) check_dense(d, "a saved derivative");
  check_dense(X, "a saved stage input");
  for (auto& z : Z) check_dense(z, "a saved activation");
  TORCH_CHECK((int64_t)Z.size() == L && (int64_t)Dr.size() == L, "fused_rk4: one activation per hidden layer");
  auto opts = gY.options();
  Tensor GO = at::empty({S, B, D}, opts);
  std::vector<Tensor> GA;
  for (auto& d : Dr) GA.push_back(at::empty_like(d));
  std::vector<Tensor> WG{at::empty_like(W1)};
  for (int64_t j = 1; j < L; ++j) {
    WG.push_back(at::empty_like(midW[j - 1]));
    WG.push_back(at::empty({midW[j - 1].size(0)}, opts));
  }
  WG.push_back(at::empty_like(Wlast));
  Tensor a_all = gY[n].clone();
  AT_DISPATCH_FLOATING_TYPES(gY.scalar_type(), "fused_rk4_backward", [&] {
    backward_impl<scalar_t>(hs, is_cos, gY, gK, dx, W1, midW, Wlast, Dr, X, Z, a_all, GO, GA, WG);
  });
  std::vector<Tensor> out{a_all, GO};
  for (auto& g : GA) out.push_back(g);
  for (auto& w : WG) out.push_back(w);
  return out;
}

bool set_flush(bool on) {
  const bool old = g_flush;
  g_flush = on;
  return old;
}

bool uses_blas() { return g_use_blas && sgemm_ != nullptr && dgemm_ != nullptr; }

// sin and cos of a float tensor through the C++ loops' own kernel (for the tests)
std::vector<Tensor> sincos_float(const Tensor& x_) {
  Tensor x = x_.contiguous().to(at::kFloat);
  Tensor s = at::empty_like(x), c = at::empty_like(x);
  const int bad = sincos_f32(x.data_ptr<float>(), x.numel(), s.data_ptr<float>(), c.data_ptr<float>());
  return {s, c, at::scalar_tensor(bad)};
}

bool set_use_blas(bool on) {
  const bool old = g_use_blas;
  g_use_blas = on;
  return old;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "fused RK4 forward (see sketchode/numerics/fused.py)");
  m.def("backward", &backward, "fused RK4 backward loop (see sketchode/numerics/fused.py)");
  m.def("uses_blas", &uses_blas, "whether products call the BLAS directly (else through torch)");
  m.def("sincos", &sincos_float, "sin and cos of a float tensor by the loops' kernel, and whether some input was out of range");
  m.def("set_flush", &set_flush, "flush subnormals to zero in the loops (True, default); returns the old value");
  m.def("set_use_blas", &set_use_blas, "call the BLAS directly (True) or go through torch (False); returns the old value");
}
