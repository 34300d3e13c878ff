// Gradient descent on plain diagonal networks with the runs of a block as
// SIMD lanes.
//
// The generic fixed-step loop (flow.hpp) keeps one run per column and calls
// Eigen's GEMM for the two products per step; at the sizes of a typical sweep
// (M = 40, N = 100, 8 runs) the packing of A inside every GEMM call and the
// separate elementwise passes cost as much as the products.  Here the state
// of up to 8 runs sharing A is stored row-major, one row of 8 lanes per
// coordinate, A and A^T are padded to multiples of 8 rows once, and a step is
//   X = u^L - v^L           (one pass)
//   R = A X - y, loss        (8 x 8 register tiles over A's columns)
//   G = A^T R                (the same tiles over A^T)
//   u -= lr L u^(L-1) G, v += lr L v^(L-1) G   (one pass, lr per lane)
// Each lane's arithmetic never involves another lane and sums in a fixed
// order, so a run gives bitwise the same numbers in any block and for any
// thread count.  Semantics (statuses, divergence keeping the last finite
// state, recording, counters) are those of run_fixed_step, and kept by the
// same RunBook (run_book.hpp): lane j is run j, the book's active ids are the
// lanes still going.
#pragma once

#include "diagonal.hpp"
#include "flow.hpp"
#include "run_book.hpp"
#include "types.hpp"

#include <array>
#include <cmath>
#include <limits>
#include <vector>

namespace implicitbias {

namespace lanes {

constexpr int W = 8;  // lanes per block
using LaneMat = Eigen::Matrix<double, Eigen::Dynamic, W, Eigen::RowMajor>;

inline Index pad8(Index n) { return (n + W - 1) / W * W; }

using Lane = Eigen::Array<double, 1, W>;

// Rows of P per register tile: as many lane accumulators as the vector
// registers hold (8 x 512-bit, 4 x 2 x 256-bit, 2 x 4 x 128-bit).
#if defined(__AVX512F__)
constexpr int kTileRows = 8;
#elif defined(__AVX2__)
constexpr int kTileRows = 4;
#else
constexpr int kTileRows = 2;
#endif

// out(i, :) = sum_k P(i, k) * in(k, :) for i < rows_p (P col-major, rows_p a
// multiple of 8, k < depth), kTileRows rows at a time; each lane sums over k
// in order, whatever the tile size.
inline void tiled_product(const Mat& P, Index depth, const LaneMat& in, LaneMat& out) {
  const Index rows_p = P.rows();
  for (Index i0 = 0; i0 < rows_p; i0 += kTileRows) {
    Lane acc[kTileRows];
#pragma GCC unroll 8
    for (int j = 0; j < kTileRows; ++j) acc[j].setZero();
    for (Index k = 0; k < depth; ++k) {
      const double* a = P.data() + k * rows_p + i0;
      const Lane x = Eigen::Map<const Lane>(in.data() + k * W);
#pragma GCC unroll 8
      for (int j = 0; j < kTileRows; ++j) acc[j] += a[j] * x;
    }
#pragma GCC unroll 8
    for (int j = 0; j < kTileRows; ++j) out.row(i0 + j) = acc[j].matrix();
  }
}

// b^p by repeated multiplication (as int_pow), p >= 1
inline Lane lane_pow(const Lane& b, int p) {
  Lane r = b;
  for (int k = 1; k < p; ++k) r *= b;
  return r;
}

}  // namespace lanes

// True when a block can take the lanes path: plain GD, at most 8 runs.
inline bool lanes_applicable(const DiagonalSpec& spec, Index n_runs) {
  return spec.weight_norm == WeightNorm::none && n_runs >= 1 && n_runs <= lanes::W;
}

// Runs plain GD for the columns of Z0 (state [u; v] or [u]) with per-run
// steps lr; fills out like run_fixed_step.  model supplies the diagnostics.
inline void run_diagonal_gd_lanes(DiagonalBlockModel& model, const SensingProblem& prob, const DiagonalSpec& spec,
                                  const Mat& Z0, const Vec& lr, const FixedStepOptions& opt,
                                  std::vector<RunRecord>& out) {
  using lanes::LaneMat;
  using lanes::W;
  const Index K = Z0.cols();
  const Index M = prob.A.rows(), N = prob.A.cols();
  const Index Mp = lanes::pad8(M), Np = lanes::pad8(N);
  const int L = spec.depth;
  const bool signed_model = !spec.nonnegative;
  auto book = model_run_book(model, K);

  // A padded to Mp rows (col-major: column n is A(:, n)), A^T padded to Np rows.
  Mat Ap = Mat::Zero(Mp, N), ATp = Mat::Zero(Np, M);
  Ap.topRows(M) = prob.A;
  ATp.topRows(N) = prob.A.transpose();

  // Three state buffers rotate: previous, current, next.
  std::array<LaneMat, 3> U, V;
  for (auto& b : U) b = LaneMat::Zero(Np, W);
  for (auto& b : V) b = LaneMat::Zero(Np, W);
  int prev = 0, cur = 1, nxt = 2;
  for (Index c = 0; c < K; ++c) {
    U[cur].col(c).head(N) = Z0.col(c).head(N);
    if (signed_model) V[cur].col(c).head(N) = Z0.col(c).segment(N, N);
  }
  U[prev] = U[cur];
  V[prev] = V[cur];
  LaneMat X = LaneMat::Zero(Np, W), R = LaneMat::Zero(Mp, W), G = LaneMat::Zero(Np, W);
  std::array<double, W> lrl{}, loss{};
  for (Index c = 0; c < K; ++c) lrl[static_cast<std::size_t>(c)] = lr(c);
  Vec z(Z0.rows());

  // the state of lane j in buffer buf, as the model lays it out
  auto column = [&](int buf, Index j) -> const Vec& {
    z.head(N) = U[static_cast<std::size_t>(buf)].col(j).head(N);
    if (signed_model) z.segment(N, N) = V[static_cast<std::size_t>(buf)].col(j).head(N);
    return z;
  };

  const double Ld = static_cast<double>(L);
  bool x_ready = false;
  for (std::int64_t step = 0; !book.empty(); ++step) {
    book.poll();
    const bool last = step >= opt.steps;
    const LaneMat& Uc = U[static_cast<std::size_t>(cur)];
    const LaneMat& Vc = V[static_cast<std::size_t>(cur)];
    // X = u^L - v^L (repeated multiplication, as int_pow); after the first
    // step it was formed by the update loop of the step before
    if (!x_ready) for (Index n = 0; n < N; ++n) {
      const lanes::Lane u = Uc.row(n).array();
      lanes::Lane x = lanes::lane_pow(u, L);
      if (signed_model) x -= lanes::lane_pow(Vc.row(n).array(), L);
      X.row(n) = x.matrix();
    }
    lanes::tiled_product(Ap, N, X, R);
    lanes::Lane sq = lanes::Lane::Zero();
    for (Index m = 0; m < M; ++m) {
      const lanes::Lane r = R.row(m).array() - prob.y(m);
      R.row(m) = r.matrix();
      sq += r * r;
    }
    for (int l = 0; l < W; ++l) loss[static_cast<std::size_t>(l)] = 0.5 * sq(l);

    const bool due = fixed_step_due(opt, step);
    for (Index c = 0; c < book.n_active(); ++c) {
      const int j = book.id(c);
      // a run whose loss turned non-finite keeps the state one step back
      auto state = [&](bool back) -> const Vec& { return column(back ? prev : cur, j); };
      book.fixed_step_check(c, loss[static_cast<std::size_t>(j)], step, lr(j), last, due, opt.tol, state);
    }
    book.compact({});
    if (book.empty() || last) continue;

    // G = A^T R; the step for every lane (finished lanes are not read again)
    lanes::tiled_product(ATp, M, R, G);
    LaneMat& Un = U[static_cast<std::size_t>(nxt)];
    LaneMat& Vn = V[static_cast<std::size_t>(nxt)];
    const lanes::Lane lr_lane = Eigen::Map<const lanes::Lane>(lrl.data());
    // x * 0 is NaN exactly when x is not finite: one lane-wise sum flags
    // the lanes whose new state is not finite, without strided reads
    lanes::Lane nonfinite = lanes::Lane::Zero();
    for (Index n = 0; n < N; ++n) {
      const lanes::Lane g = G.row(n).array();
      const lanes::Lane u = Uc.row(n).array();
      const lanes::Lane pu = L > 1 ? lanes::lane_pow(u, L - 1) : lanes::Lane::Ones();
      const lanes::Lane un = u - lr_lane * (Ld * pu * g);
      Un.row(n) = un.matrix();
      nonfinite += un * 0.0;
      lanes::Lane x = lanes::lane_pow(un, L);  // the next step's X
      if (signed_model) {
        const lanes::Lane v = Vc.row(n).array();
        const lanes::Lane pv = L > 1 ? lanes::lane_pow(v, L - 1) : lanes::Lane::Ones();
        const lanes::Lane vn = v + lr_lane * (Ld * pv * g);
        Vn.row(n) = vn.matrix();
        nonfinite += vn * 0.0;
        x -= lanes::lane_pow(vn, L);
      }
      X.row(n) = x.matrix();
    }
    x_ready = true;
    for (Index c = 0; c < book.n_active(); ++c) {
      const int j = book.id(c);
      const double l = loss[static_cast<std::size_t>(j)];
      if (std::isnan(nonfinite(j))) book.fixed_step_diverged(c, column(cur, j), step, lr(j), l);
      else book.fixed_step_taken(c, l);
    }
    book.compact({});
    const int old_prev = prev;
    prev = cur;
    cur = nxt;
    nxt = old_prev;
  }
  out = book.take();
}

}  // namespace implicitbias
