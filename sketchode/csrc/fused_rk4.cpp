// The stage loops of sketchode.fused (RK4, 3/8 rule, periodic MLP fields) in C++.
//
// This file is a line-by-line port of the two Python loops in
// sketchode/fused.py (_FusedRK4.forward and _FusedRK4.backward): the same
// ATen operations in the same order, writing into the same buffers, so that
// on one thread the results are bitwise those of the Python loops
// (tests/test_fused_cpp.py).  Two things change:
//
// * no Python interpreter between the ~3000 small operations of a solve
//   (the per-operation cost drops from several microseconds to about one);
// * the batch is split into contiguous row blocks, one per intra-op thread
//   (at::parallel_for): samples are independent in the stage loop, and the
//   matrices involved (64 x 77 by 77 x 77) are too small for the BLAS to
//   use two cores on its own.  Inside a block every operation runs on one
//   thread.
//
// The weight gradients (a few large matrix products over all stages) stay in
// Python, where the BLAS parallelises them well.

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

#include <vector>

using at::Tensor;

namespace {

// rows [b0, b0 + nb) of a (B, ...) tensor: a contiguous block for the buffers here
inline Tensor rows(const Tensor& t, int64_t b0, int64_t nb) { return t.narrow(0, b0, nb); }

void act_out(bool is_cos, const Tensor& a, const Tensor& z_out, const Tensor* d_out) {
  if (is_cos) {
    at::cos_out(const_cast<Tensor&>(z_out), a);
    if (d_out) at::sin_out(const_cast<Tensor&>(*d_out), a);  // act' = -sin (sign applied in backward)
  } else {
    at::sin_out(const_cast<Tensor&>(z_out), a);
    if (d_out) at::cos_out(const_cast<Tensor&>(*d_out), a);
  }
}

int64_t grain(int64_t B) {
  // one block per thread, at least 8 rows each (smaller blocks lose more to overhead than they gain)
  int64_t t = std::max<int64_t>(1, at::get_num_threads());
  return std::max<int64_t>(8, (B + t - 1) / t);
}

}  // namespace

// Forward solve.  Returns [Y, K (or undefined), X, O (controlled and grad, else undefined),
// Z_0..Z_{L-1}, D_0..D_{L-1} (when grad)].
std::vector<Tensor> forward(const std::vector<double>& hs, const std::vector<bool>& is_cos, bool stages, bool grad,
                            const Tensor& y0, const Tensor& bias1, const Tensor& out_bias,
                            const c10::optional<Tensor>& dx_opt, const Tensor& W1,
                            const std::vector<Tensor>& mids,  // W_1, b_1, W_2, b_2, ...
                            const Tensor& Wlast) {
  const int64_t L = static_cast<int64_t>(is_cos.size());
  const int64_t n = static_cast<int64_t>(hs.size());
  const int64_t S = 4 * n, B = y0.size(0), D = y0.size(1);
  const bool controlled = dx_opt.has_value() && dx_opt->defined();
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
  Tensor dx = controlled ? dx_opt->unsqueeze(-1) : Tensor();  // (S, B, C, 1)
  const int64_t C = controlled ? dx.size(2) : 0;
  // the outer products dX (x) z_L of every stage, kept for the last weight's gradient
  Tensor O = (controlled && grad) ? at::empty({S, B, C, H.back()}, opts) : Tensor();
  Tensor W1t = W1.t();
  std::vector<Tensor> midt, midb;
  for (int64_t j = 0; j + 1 < L; ++j) {
    midt.push_back(mids[2 * j].t());
    midb.push_back(mids[2 * j + 1]);
  }
  Tensor Wl = controlled ? Wlast : Wlast.t();
  Y[0].copy_(y0);

  at::parallel_for(0, B, grain(B), [&](int64_t b0, int64_t b1) {
    // grad mode and dispatch keys are thread-local: every worker skips autograd itself
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    const int64_t nb = b1 - b0;
    std::vector<Tensor> abuf;
    for (int64_t h : H) abuf.push_back(at::empty({nb, h}, opts));
    Tensor outer = (controlled && !grad) ? at::empty({nb, C, H.back()}, opts) : Tensor();
    Tensor k4 = at::empty({nb, D}, opts), tmp = at::empty({nb, D}, opts);
    std::vector<Tensor> kown;
    if (!stages)
      for (int i = 0; i < 3; ++i) kown.push_back(at::empty({nb, D}, opts));

    auto f = [&](int64_t s, Tensor& out) {
      Tensor a = abuf[0];
      at::addmm_out(a, rows(bias1[s], b0, nb), rows(X[s], b0, nb), W1t);
      Tensor dz = grad ? rows(Dr[0][s], b0, nb) : Tensor();
      act_out(is_cos[0], a, rows(Z[0][s], b0, nb), grad ? &dz : nullptr);
      for (int64_t j = 0; j + 1 < L; ++j) {
        Tensor aj = abuf[j + 1];
        at::addmm_out(aj, midb[j], rows(Z[j][s], b0, nb), midt[j]);
        Tensor dj = grad ? rows(Dr[j + 1][s], b0, nb) : Tensor();
        act_out(is_cos[j + 1], aj, rows(Z[j + 1][s], b0, nb), grad ? &dj : nullptr);
      }
      Tensor z = rows(Z[L - 1][s], b0, nb);
      if (controlled) {
        Tensor o = grad ? rows(O[s], b0, nb) : outer;
        at::mul_out(o, rows(dx[s], b0, nb), z.unsqueeze(-2));
        z = o.view({nb, -1});
      }
      at::addmm_out(out, rows(out_bias[s], b0, nb), z, Wl);
    };

    for (int64_t i = 0; i < n; ++i) {
      const double h = hs[i];
      const int64_t s = 4 * i;
      Tensor y = rows(Y[i], b0, nb);
      Tensor k1 = stages ? rows(K[0][i], b0, nb) : kown[0];
      Tensor k2 = stages ? rows(K[1][i], b0, nb) : kown[1];
      Tensor k3 = stages ? rows(K[2][i], b0, nb) : kown[2];
      rows(X[s], b0, nb).copy_(y);
      f(s, k1);
      Tensor x1 = rows(X[s + 1], b0, nb);
      at::add_out(x1, y, k1, h / 3);
      f(s + 1, k2);
      at::sub_out(tmp, k2, k1, 1.0 / 3);
      Tensor x2 = rows(X[s + 2], b0, nb);
      at::add_out(x2, y, tmp, h);
      f(s + 2, k3);
      at::sub_out(tmp, k1, k2);
      tmp.add_(k3);
      Tensor x3 = rows(X[s + 3], b0, nb);
      at::add_out(x3, y, tmp, h);
      f(s + 3, k4);
      at::add_out(tmp, k2, k3);
      tmp.mul_(3).add_(k1).add_(k4);
      Tensor ynext = rows(Y[i + 1], b0, nb);
      at::add_out(ynext, y, tmp, h / 8);
    }
  });

  std::vector<Tensor> out{Y, K, X, O};
  for (auto& z : Z) out.push_back(z);
  for (auto& d : Dr) out.push_back(d);
  return out;
}

// Backward loop.  Returns [a (gradient wrt y0), GO (S, B, D), GA_0..GA_{L-1}].
std::vector<Tensor> backward(const std::vector<double>& hs, const std::vector<bool>& is_cos, const Tensor& gY,
                             const c10::optional<Tensor>& gK_opt, const c10::optional<Tensor>& dx_opt,
                             const Tensor& W1, const std::vector<Tensor>& midW, const Tensor& Wlast,
                             const std::vector<Tensor>& Dr) {
  const int64_t L = static_cast<int64_t>(is_cos.size());
  const int64_t n = static_cast<int64_t>(hs.size());
  const int64_t S = 4 * n, B = gY.size(1), D = gY.size(2);
  const bool controlled = dx_opt.has_value() && dx_opt->defined();
  const bool has_gK = gK_opt.has_value() && gK_opt->defined();
  auto opts = gY.options();
  Tensor GO = at::empty({S, B, D}, opts);
  std::vector<Tensor> GA;
  std::vector<int64_t> H;
  for (auto& d : Dr) {
    GA.push_back(at::empty_like(d));
    H.push_back(d.size(2));
  }
  Tensor dx = controlled ? dx_opt->unsqueeze(-1) : Tensor();
  const int64_t C = controlled ? dx.size(2) : 0;
  Tensor WlT = controlled ? Wlast.t() : Tensor();
  Tensor a_all = gY[n].clone();

  at::parallel_for(0, B, grain(B), [&](int64_t b0, int64_t b1) {
    // grad mode and dispatch keys are thread-local: every worker skips autograd itself
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    const int64_t nb = b1 - b0;
    Tensor a = rows(a_all, b0, nb);
    std::vector<Tensor> gz;  // gradient wrt each layer's output
    for (int64_t h : H) gz.push_back(at::empty({nb, h}, opts));
    Tensor gCH = controlled ? at::empty({nb, C * H.back()}, opts) : Tensor();
    Tensor gCH3 = controlled ? at::empty({nb, C, H.back()}, opts) : Tensor();
    Tensor gu = at::empty({nb, D}, opts);

    auto fb = [&](int64_t s) {  // gradient wrt the stage input into gu, given GO[s]
      Tensor g = rows(GO[s], b0, nb);
      Tensor z = gz[L - 1];
      if (controlled) {
        at::mm_out(gCH, g, WlT);
        at::mul_out(gCH3, gCH.view({nb, C, -1}), rows(dx[s], b0, nb));
        at::sum_out(z, gCH3, {1});
      } else {
        at::mm_out(z, g, Wlast);
      }
      for (int64_t j = L - 1; j >= 0; --j) {
        Tensor ga = rows(GA[j][s], b0, nb);
        at::mul_out(ga, gz[j], rows(Dr[j][s], b0, nb));
        if (is_cos[j]) ga.neg_();
        if (j) at::mm_out(gz[j - 1], ga, midW[j - 1]);
      }
      at::mm_out(gu, rows(GA[0][s], b0, nb), W1);
    };

    for (int64_t i = n - 1; i >= 0; --i) {
      const double h = hs[i];
      const int64_t s = 4 * i;
      Tensor gk1 = rows(GO[s], b0, nb), gk2 = rows(GO[s + 1], b0, nb);
      Tensor gk3 = rows(GO[s + 2], b0, nb), gk4 = rows(GO[s + 3], b0, nb);
      at::mul_out(gk4, a, h / 8);
      at::mul_out(gk3, a, 3 * h / 8);
      if (has_gK) {
        at::add_out(gk2, gk3, rows((*gK_opt)[1][i], b0, nb));
        at::add_out(gk1, gk4, rows((*gK_opt)[0][i], b0, nb));
        gk3.add_(rows((*gK_opt)[2][i], b0, nb));
      } else {
        gk2.copy_(gk3);
        gk1.copy_(gk4);
      }
      a.add_(rows(gY[i], b0, nb));
      fb(s + 3);
      a.add_(gu);
      gk1.add_(gu, h);
      gk2.sub_(gu, h);
      gk3.add_(gu, h);
      fb(s + 2);
      a.add_(gu);
      gk2.add_(gu, h);
      gk1.sub_(gu, h / 3);
      fb(s + 1);
      a.add_(gu);
      gk1.add_(gu, h / 3);
      fb(s);
      a.add_(gu);
    }
  });

  std::vector<Tensor> out{a_all, GO};
  for (auto& g : GA) out.push_back(g);
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "fused RK4 forward (see sketchode/fused.py)");
  m.def("backward", &backward, "fused RK4 backward loop (see sketchode/fused.py)");
}
