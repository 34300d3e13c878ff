// Rodas5: an 8-stage, order-5, stiffly accurate, L-stable Rosenbrock method
// with an embedded order-4 solution (Di Marzo 1993; Hairer & Wanner, Solving
// ODEs II, Sec. IV.7, in their "C-matrix" form that needs no Jacobian-vector
// products).  It is one more stepper for the shared adaptive driver
// run_adaptive (flow.hpp), so step control, records, status and step
// accounting mean the same as for dopri5 and rosw.
//
// The error of a step is step_error's (driver.hpp): the model's error_norm
// if it has one (e.g. the dual flow measures it in the primal coordinates),
// else the error norm of driver.hpp.
//
// Per step, with W = I - gamma h J (J the model's Jacobian at the step's start):
//   W k_1 = gamma h F(z)
//   W k_i = gamma h F(Y_i) + gamma sum_{j<i} C_ij k_j,  Y_i = z + sum_{j<i} a_ij k_j  (i = 2..6)
//   Y_7 = Y_6 + k_6,  Y_8 = Y_7 + k_7  (the last stages continue from Y_6),
//   z_new = Y_8 + k_8,  error estimate k_8.
// Eight gradient evaluations per step (seven stages and F(z_new)), one
// Jacobian and one factorization.  Unlike a W-method its order needs the
// exact Jacobian: the model's prepare_jacobian / factor / solve (the same
// interface as run_rosw) are called at every step.  With the exact Jacobian
// of the dual-coordinate flow (dual_flow.hpp) it takes steps whose size is
// limited by accuracy only, e.g. growing across the plateaus of the
// saddle-to-saddle regime.
#pragma once

#include "flow.hpp"
#include "types.hpp"

#include <array>
#include <cmath>
#include <vector>

namespace implicitbias {

namespace rodas5 {
constexpr double gamma = 0.19;
// a_ij, i = 2..6 (row i-2 holds a_i1 .. a_i,i-1)
constexpr double a[5][5] = {
    {2.0, 0, 0, 0, 0},
    {3.040894194418781, 1.041747909077569, 0, 0, 0},
    {2.576417536461461, 1.622083060776640, -0.9089668560264532, 0, 0},
    {2.760842080225597, 1.446624659844071, -0.3036980084553738, 0.2877498600325443, 0},
    {-14.09640773051259, 6.925207756232704, -41.47510893210728, 2.343771018586405, 24.13215229196062}};
// C_ij, i = 2..8 (row i-2 holds C_i1 .. C_i,i-1)
constexpr double C[7][7] = {
    {-10.31323885133993, 0, 0, 0, 0, 0, 0},
    {-21.04823117650003, -7.234992135176716, 0, 0, 0, 0, 0},
    {32.22751541853323, -4.943732386540191, 19.44922031041879, 0, 0, 0, 0},
    {-20.69865579590063, -8.816374604402768, 1.260436877740897, -0.7495647613787146, 0, 0, 0},
    {-46.22004352711257, -17.49534862857472, -289.6389582892057, 93.60855400400906, 318.3822534212147, 0, 0},
    {34.20013733472935, -14.15535402717690, 57.82335640988400, 25.83362985412365, 1.408950972071624,
     -6.551835421242162, 0},
    {42.57076742291101, -13.80770672017997, 93.98938432427124, 18.77919633714503, -31.58359187223370,
     -6.685968952921985, -5.810979938412932}};
// The dense output (Di Marzo 1993; the coefficients as tabulated in
// OrdinaryDiffEq.jl's Rodas5Tableau): q_r = sum_j H_rj k_j (r = 1..3) and
//   z(t + theta h) = (1 - theta) z + theta (z_new + (1 - theta) (q_1 + theta (q_2 + theta q_3))).
constexpr double H[3][8] = {
    {27.354592673333357, -6.925207756232857, 26.40037733258859, 0.5635230501052979, -4.699151156849391,
     -1.6008677469422725, -1.5306074446748028, -1.3929872940716344},
    {44.19024239501722, 1.3677947663381929e-13, 202.93261852171622, -35.5669339789154, -181.91095152160645,
     3.4116351403665033, 2.5793540257308067, 2.2435122582734066},
    {-44.0988150021747, -5.755396159656812e-13, -181.26175034586677, 56.99302194811676, 183.21182741427398,
     -7.480257918273637, -5.792426076169686, -5.32503859794143}};
}  // namespace rodas5

// The Rodas5 flow.  The model provides field / loss / diagnostics (flow.hpp)
// and prepare_jacobian(Z, FZ, ids, refresh), factor(ids, gamma * hv) and
// solve(R, ids, gamma * hv) (R <- (I - gamma h J)^{-1} R per column).
template <class Model>
void run_rodas5(Model& model, const Mat& Z0, const AdaptiveOptions& opt, std::vector<RunRecord>& out) {
  std::array<Mat, 8> k;
  Mat Ys, Fs;
  Vec lscratch, gh;
  std::vector<char> refresh;
  auto stepper = [&](auto& book, const Mat& Z, const Mat& FZ, const std::vector<int>& ids,
                     const Eigen::Ref<const Vec>& hv, Mat& Znew, Mat& Fnew, Vec& loss_new, Vec& err) {
    gh = rodas5::gamma * hv;
    const auto GH = gh.asDiagonal();
    refresh.assign(ids.size(), 1);
    model.prepare_jacobian(Z, FZ, ids, refresh);
    model.factor(ids, gh);
    for (int id : ids) {  // one Jacobian and one factorization per run and attempt
      book.count_jacobian(id);
      book.count_factorization(id);
    }
    k[0].noalias() = FZ * GH;
    model.solve(k[0], ids, gh);
    for (int i = 1; i < 8; ++i) {
      // Y_i: z + sum a_ij k_j for stages 2..6, then Y_7 = Y_6 + k_6, Y_8 = Y_7 + k_7
      if (i <= 5) {
        Ys = Z;
        for (int j = 0; j < i; ++j) Ys += rodas5::a[i - 1][j] * k[static_cast<std::size_t>(j)];
      } else {
        Ys += k[static_cast<std::size_t>(i - 1)];
      }
      model.field(Ys, ids, Fs, lscratch);
      Mat& ki = k[static_cast<std::size_t>(i)];
      ki.noalias() = Fs * GH;
      for (int j = 0; j < i; ++j) ki += (rodas5::gamma * rodas5::C[i - 1][j]) * k[static_cast<std::size_t>(j)];
      model.solve(ki, ids, gh);
    }
    Znew.noalias() = Ys + k[7];
    model.field(Znew, ids, Fnew, loss_new);
    step_error(model, Z, Znew, k[7], ids, opt, err);
    return 8;
  };
  std::array<Vec, 3> q;
  auto dense = [&](Index c, double th, double, const Mat& Z, const Mat& Znew, const Mat&, const Mat&, Vec& z) {
    for (std::size_t r = 0; r < 3; ++r) {
      q[r] = rodas5::H[r][0] * k[0].col(c);
      for (std::size_t j = 1; j < 8; ++j) q[r] += rodas5::H[r][j] * k[j].col(c);
    }
    z = (1.0 - th) * Z.col(c) + th * (Znew.col(c) + (1.0 - th) * (q[0] + th * (q[1] + th * q[2])));
  };
  run_adaptive(model, Z0, opt, out, stepper, dense, 4.0);
}

}  // namespace implicitbias
