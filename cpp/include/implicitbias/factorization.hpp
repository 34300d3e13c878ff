// Deep linear networks (deep matrix factorization) and the exact trace of the
// Hessian of their squared loss (docs/science.md, section 3).
//
// Layers W_j of shape (d_j, d_{j-1}), j = 1..L; end-to-end E = W_L ... W_1
// (d_L x d_0).  Prefix products P_j = W_j ... W_1 (P_0 = I_{d_0}) and suffix
// products S_j = W_L ... W_{j+1} (S_L = I_{d_L}), so that
// dE/dW_j [V] = S_j V P_{j-1}.
//
// Measurements f_i = <A_i, E>, i = 1..n, either dense Gaussian sensing
// matrices A_i (d_L x d_0) or entry sampling A_i = e_{r_i} e_{c_i}^T (matrix
// completion, kept as index pairs).  Loss (1/n) sum_i (f_i - y_i)^2.
//
// Regression data (deep linear regression): inputs X (n x d_0), targets Y
// (n x d_L), loss (1/n) ||E X^T - Y^T||_F^2 = (1/n) sum_{s,a} (f_{sa} - y_{sa})^2
// with measurements A_{sa} = e_a x_s^T: n stays the number of samples (the
// normalizer), the residual vector has d_L * n entries.  The loss depends on
// the data only through K^T K, K = [X Y]; when n > d_0 + d_L the samples are
// replaced by the rows of the triangular factor T of a QR of K (T^T T = K^T K,
// so loss, gradient, Hessian and trace are unchanged) and the kernels never
// touch n-sized arrays.  For this operator M(Q) = <G, Q> I and
// M^T(R) = tr(R) G with G = X^T X.
//
// A state vector z stacks vec(W_1), ..., vec(W_L) (each column-major).
//
// Exact trace of the Hessian at any point (each f_i is linear in each layer,
// so the same-layer blocks of sum_i r_i Hess f_i vanish):
//   tr H = (2/n) sum_i sum_j ||S_j^T A_i P_{j-1}^T||_F^2
//        = (2/n) sum_j < M(Q_j), R_j >,
// with Q_j = P_{j-1}^T P_{j-1}, R_j = S_j S_j^T, M(Q) = sum_i A_i Q A_i^T and
// its adjoint M^T(R) = sum_i A_i^T R A_i.  Its gradient with respect to W_k is
//   (2/n) (U_k P_{k-1}^T + S_k^T V_k),
//   U_k = sum_{j>k} W_{j-1:k+1}^T X_j,  X_j = 2 P_{j-1} M^T(R_j),
//   V_k = sum_{j<k} Y_j W_{k-1:j+1}^T,  Y_j = 2 M(Q_j) S_j,
// accumulated by the recurrences U_{k-1} = X_k + W_k^T U_k and
// V_{k+1} = Y_k + V_k W_k^T.
#pragma once

#include "flow.hpp"
#include "lanczos.hpp"
#include "parallel.hpp"
#include "rng.hpp"
#include "types.hpp"

#include <Eigen/QR>
#include <Eigen/SVD>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace implicitbias {

// ---------------------------------------------------------------------------
// Measurement operators
// ---------------------------------------------------------------------------
// Scratch buffers of the dense sandwich products (one per thread / block, so
// that a Measurements object can be shared read-only).
struct MeasScratch {
  RowMat C;
  Mat D, W;
};

class Measurements {
 public:
  enum class Kind : int { gaussian = 0, completion = 1, regression = 2 };

  // Dense sensing from the stack of the A_i, row-major (n * d_out) x d_in:
  // rows i * d_out .. i * d_out + d_out - 1 hold A_i (a C-ordered (n, d_out,
  // d_in) array, read without a transposing copy on the Python side).
  // prepare: form the Kronecker sum when it is small and pays off over many
  // calls (training); a one-off evaluation skips it.
  static Measurements gaussian(Index d_out, Index d_in, const Eigen::Ref<const RowMat>& stack, bool prepare = true) {
    if (d_out < 1 || d_in < 1) throw InvalidArgument("measurement shape must be positive");
    if (stack.cols() != d_in || stack.rows() % d_out != 0 || stack.rows() == 0)
      throw InvalidArgument("A: the stack must have n * d_out rows and d_in columns, n >= 1");
    Measurements m;
    m.kind_ = Kind::gaussian;
    m.d_out_ = d_out;
    m.d_in_ = d_in;
    m.n_ = stack.rows() / d_out;
    const Index DA = d_out * d_in;
    // One owned copy, the row-major stack S (rows i * d_out + a = A_i(a, :));
    // its memory read as an n x (d_out d_in) row-major matrix has row i =
    // A_i flattened row-major, and as a column-major (d_out d_in) x n matrix
    // column i = vec(A_i^T).
    m.S_ = stack;
    m.use_kron_ = prepare && DA <= 1500 && DA < m.n_ * (d_out + d_in);
    if (m.use_kron_) {
      Mat gram = Mat::Zero(DA, DA);  // gram(a d_in + b, c d_in + e) = sum_i A_i(a, b) A_i(c, e)
      gram.selfadjointView<Eigen::Lower>().rankUpdate(m.rows_t());  // index a d_in + b
      gram.triangularView<Eigen::StrictlyUpper>() = gram.transpose();
      m.T_.resize(d_out * d_out, d_in * d_in);
      for (Index e = 0; e < d_in; ++e)
        for (Index b = 0; b < d_in; ++b)
          for (Index c = 0; c < d_out; ++c)
            for (Index a = 0; a < d_out; ++a) m.T_(a + d_out * c, b + d_in * e) = gram(a * d_in + b, c * d_in + e);
    }
    // M(I) = sum_i A_i A_i^T and M^T(I) = sum_i A_i^T A_i
    m.MI_.setZero(d_out, d_out);
    for (Index i = 0; i < m.n_; ++i) m.MI_.noalias() += m.A(i) * m.A(i).transpose();
    m.MtI_.noalias() = m.S_.transpose() * m.S_;
    return m;
  }

  // Entry sampling: A_i = e_{rows[i]} e_{cols[i]}^T.
  static Measurements completion(Index d_out, Index d_in, std::vector<Index> rows, std::vector<Index> cols) {
    if (d_out < 1 || d_in < 1) throw InvalidArgument("measurement shape must be positive");
    if (rows.size() != cols.size()) throw InvalidArgument("rows and cols must have equal length");
    if (rows.empty()) throw InvalidArgument("need at least one measurement");
    for (std::size_t i = 0; i < rows.size(); ++i)
      if (rows[i] < 0 || rows[i] >= d_out || cols[i] < 0 || cols[i] >= d_in)
        throw InvalidArgument("entry index out of range");
    Measurements m;
    m.kind_ = Kind::completion;
    m.d_out_ = d_out;
    m.d_in_ = d_in;
    m.n_ = static_cast<Index>(rows.size());
    m.rows_ = std::move(rows);
    m.cols_ = std::move(cols);
    m.precompute_identity_sandwiches();
    return m;
  }

  // Regression data: X (n x d_in), Y (n x d_out), both column-major.  The
  // targets of the loss are the residual-space vector regression_targets()
  // (vec of the d_out x m matrix Yc^T, Yc the kept target rows).
  static Measurements regression(const Mat& X, const Mat& Y) {
    if (X.rows() < 1 || X.cols() < 1 || Y.cols() < 1)
      throw InvalidArgument("X and Y must be non-empty");
    if (Y.rows() != X.rows()) throw InvalidArgument("Y must have one row per row of X (sample)");
    Measurements m;
    m.kind_ = Kind::regression;
    m.d_out_ = Y.cols();
    m.d_in_ = X.cols();
    m.n_ = X.rows();
    const Index p = m.d_in_ + m.d_out_;
    if (m.n_ > p) {  // compress: K = Q T, keep T (p x p upper triangular)
      Mat K(m.n_, p);
      K << X, Y;
      Eigen::HouseholderQR<Mat> qr(K);
      const Mat T = qr.matrixQR().topRows(p).triangularView<Eigen::Upper>();
      m.Xc_ = T.leftCols(m.d_in_);
      m.Yt_ = T.rightCols(m.d_out_).transpose();
    } else {
      m.Xc_ = X;
      m.Yt_ = Y.transpose();
    }
    m.gram_.noalias() = m.Xc_.transpose() * m.Xc_;
    m.MI_ = m.gram_.trace() * Mat::Identity(m.d_out_, m.d_out_);
    m.MtI_ = static_cast<double>(m.d_out_) * m.gram_;
    return m;
  }
  // vec(Yc^T), the targets in residual space (regression only)
  Vec regression_targets() const { return Eigen::Map<const Vec>(Yt_.data(), Yt_.size()); }
  // The kept input rows (the samples, or the compressed factor's rows).
  const Mat& regression_inputs() const { return Xc_; }
  // sum_s x_s x_s^T = X^T X (regression only)
  const Mat& gram() const { return gram_; }

  Kind kind() const { return kind_; }
  // The loss normalizer: number of measurements (sensing, completion) or of
  // samples (regression).
  Index n() const { return n_; }
  // Length of the measurement / residual vector f.
  Index n_residuals() const { return kind_ == Kind::regression ? d_out_ * Xc_.rows() : n_; }
  Index d_out() const { return d_out_; }
  Index d_in() const { return d_in_; }
  bool uses_kronecker() const { return use_kron_; }

  // f_i = <A_i, E>
  void forward(const Mat& E, Vec& f) const {
    f.resize(n_residuals());
    if (kind_ == Kind::regression) {
      Eigen::Map<Mat>(f.data(), d_out_, Xc_.rows()).noalias() = E * Xc_.transpose();
    } else if (kind_ == Kind::gaussian) {
      const Mat Et = E.transpose();  // its storage is E flattened row-major
      f.noalias() = rows_t().transpose() * Eigen::Map<const Vec>(Et.data(), Et.size());
    } else {
      for (Index i = 0; i < n_; ++i) f(i) = E(rows_[i], cols_[i]);
    }
  }
  // G = sum_i u_i A_i
  void adjoint(const Vec& u, Mat& G) const {
    G.resize(d_out_, d_in_);
    if (kind_ == Kind::regression) {
      G.noalias() = Eigen::Map<const Mat>(u.data(), d_out_, Xc_.rows()) * Xc_;
    } else if (kind_ == Kind::gaussian) {
      const Vec g = rows_t() * u;  // G flattened row-major
      G = Eigen::Map<const RowMat>(g.data(), d_out_, d_in_);
    } else {
      G.setZero();
      for (Index i = 0; i < n_; ++i) G(rows_[i], cols_[i]) += u(i);
    }
  }
  // A_i itself (dense), for per-measurement work.
  void measurement(Index i, Mat& Ai) const {
    if (kind_ == Kind::regression) {  // i = a + d_out s: e_a x_s^T
      Ai.setZero(d_out_, d_in_);
      Ai.row(i % d_out_) = Xc_.row(i / d_out_);
    } else if (kind_ == Kind::gaussian) {
      Ai = A(i);
    } else {
      Ai.setZero(d_out_, d_in_);
      Ai(rows_[i], cols_[i]) = 1.0;
    }
  }
  Index row(Index i) const { return rows_[static_cast<std::size_t>(i)]; }
  Index col(Index i) const { return cols_[static_cast<std::size_t>(i)]; }

  // out = M(Q) = sum_i A_i Q A_i^T  (Q: d_in x d_in, out: d_out x d_out)
  void sandwich(const Mat& Q, Mat& out, MeasScratch& s) const {
    out.resize(d_out_, d_out_);
    if (kind_ == Kind::regression) {
      out = (gram_.array() * Q.array()).sum() * Mat::Identity(d_out_, d_out_);
    } else if (kind_ == Kind::completion) {
      out.setZero();
      for (Index i = 0; i < n_; ++i) out(rows_[i], rows_[i]) += Q(cols_[i], cols_[i]);
    } else if (use_kron_) {
      Eigen::Map<Vec>(out.data(), out.size()).noalias() = T_ * Eigen::Map<const Vec>(Q.data(), Q.size());
    } else {
      // per measurement, with d x d scratch only (no n-sized buffers)
      out.setZero();
      for (Index i = 0; i < n_; ++i) {
        s.C.noalias() = A(i) * Q;
        out.noalias() += s.C * A(i).transpose();
      }
    }
  }
  // out = M^T(R) = sum_i A_i^T R A_i  (R: d_out x d_out, out: d_in x d_in)
  void sandwich_t(const Mat& R, Mat& out, MeasScratch& s) const {
    out.resize(d_in_, d_in_);
    if (kind_ == Kind::regression) {
      out = R.trace() * gram_;
    } else if (kind_ == Kind::completion) {
      out.setZero();
      for (Index i = 0; i < n_; ++i) out(cols_[i], cols_[i]) += R(rows_[i], rows_[i]);
    } else if (use_kron_) {
      Eigen::Map<Vec>(out.data(), out.size()).noalias() = T_.transpose() * Eigen::Map<const Vec>(R.data(), R.size());
    } else {
      out.setZero();
      for (Index i = 0; i < n_; ++i) {
        s.C.noalias() = R * A(i);
        out.noalias() += A(i).transpose() * s.C;
      }
    }
  }
  // M(I) = sum_i A_i A_i^T and M^T(I) = sum_i A_i^T A_i, formed once: the
  // first (P_0 = I) and last (S_L = I) layer terms of the trace need only these.
  const Mat& sandwich_identity() const { return MI_; }
  const Mat& sandwich_t_identity() const { return MtI_; }

  // sum_i <A_i Q A_i^T, R>; for entry sampling sum_i R(r_i, r_i) Q(c_i, c_i).
  double pair(const Mat& Q, const Mat& R, MeasScratch& sc) const {
    if (kind_ == Kind::regression) return (gram_.array() * Q.array()).sum() * R.trace();
    if (kind_ == Kind::completion) {
      double s = 0.0;
      for (Index i = 0; i < n_; ++i) s += R(rows_[i], rows_[i]) * Q(cols_[i], cols_[i]);
      return s;
    }
    sandwich(Q, sc.W, sc);
    return (sc.W.array() * R.array()).sum();
  }

 private:
  Kind kind_ = Kind::gaussian;
  Index d_out_ = 0, d_in_ = 0, n_ = 0;
  void precompute_identity_sandwiches() {  // entry sampling: diagonal counts
    MeasScratch sc;
    sandwich(Mat::Identity(d_in_, d_in_), MI_, sc);
    sandwich_t(Mat::Identity(d_out_, d_out_), MtI_, sc);
  }

  // A_i as a row-major view into S_
  Eigen::Map<const RowMat> A(Index i) const { return Eigen::Map<const RowMat>(S_.data() + i * d_out_ * d_in_, d_out_, d_in_); }
  // (d_out d_in) x n, column i = A_i flattened row-major
  Eigen::Map<const Mat> rows_t() const { return Eigen::Map<const Mat>(S_.data(), d_out_ * d_in_, n_); }

  RowMat S_;
  Mat T_, MI_, MtI_;
  Mat Xc_, Yt_, gram_;  // regression: kept inputs (m x d_in), targets Yc^T (d_out x m), X^T X
  bool use_kron_ = false;
  std::vector<Index> rows_, cols_;
};

// ---------------------------------------------------------------------------
// A deep linear network at one point: layers mapped from a state vector,
// prefix and suffix products cached.
// ---------------------------------------------------------------------------
class DeepLinear {
 public:
  DeepLinear() = default;
  explicit DeepLinear(std::vector<Index> dims) : dims_(std::move(dims)) {
    if (dims_.size() < 2) throw InvalidArgument("depth must be >= 1");
    for (Index d : dims_)
      if (d < 1) throw InvalidArgument("layer widths must be >= 1");
    const int L = depth();
    offsets_.assign(static_cast<std::size_t>(L) + 2, 0);
    for (int j = 1; j <= L; ++j) offsets_[j + 1] = offsets_[j] + dims_[j] * dims_[j - 1];
    P_.resize(static_cast<std::size_t>(L) + 1);
    S_.resize(static_cast<std::size_t>(L) + 1);
    P_[0] = Mat::Identity(dims_[0], dims_[0]);
    S_[L] = Mat::Identity(dims_[L], dims_[L]);
  }

  int depth() const { return static_cast<int>(dims_.size()) - 1; }
  Index d(int j) const { return dims_[static_cast<std::size_t>(j)]; }
  const std::vector<Index>& dims() const { return dims_; }
  Index n_params() const { return offsets_.back(); }
  Index offset(int j) const { return offsets_[static_cast<std::size_t>(j)]; }  // of vec(W_j), j = 1..L

  Eigen::Map<const Mat> W(int j) const { return Eigen::Map<const Mat>(z_ + offset(j), d(j), d(j - 1)); }
  const Mat& P(int j) const { return P_[static_cast<std::size_t>(j)]; }
  const Mat& S(int j) const { return S_[static_cast<std::size_t>(j)]; }
  const Mat& E() const { return P_[static_cast<std::size_t>(depth())]; }

  // Points the network at z (length n_params; must outlive the use) and
  // builds the products.
  void set(const double* z) {
    z_ = z;
    const int L = depth();
    for (int j = 1; j <= L; ++j) P_[j].noalias() = W(j) * P_[j - 1];
    for (int j = L - 1; j >= 0; --j) S_[j].noalias() = S_[j + 1] * W(j + 1);
  }

  // g(W_k) = s * S_k^T G P_{k-1}^T  (+= if accumulate), G: d_L x d_0.
  void backprop(const Mat& G, double s, double* g, bool accumulate = false) const {
    for (int k = 1; k <= depth(); ++k) {
      Eigen::Map<Mat> gk(g + offset(k), d(k), d(k - 1));
      tmp_.noalias() = S(k).transpose() * G;
      if (accumulate) gk.noalias() += s * tmp_ * P(k - 1).transpose();
      else gk.noalias() = s * tmp_ * P(k - 1).transpose();
    }
  }

  // dE for a direction v (stacked like z): sum_j S_j V_j P_{j-1}; also keeps
  // the forward-mode products dP_j and dS_j for hvp().
  void directional(const double* v) {
    const int L = depth();
    dP_.resize(static_cast<std::size_t>(L) + 1);
    dS_.resize(static_cast<std::size_t>(L) + 1);
    dP_[0].setZero(d(0), d(0));
    for (int j = 1; j <= L; ++j) {
      Eigen::Map<const Mat> Vj(v + offset(j), d(j), d(j - 1));
      dP_[j].noalias() = W(j) * dP_[j - 1];
      dP_[j].noalias() += Vj * P(j - 1);
    }
    dS_[L].setZero(d(L), d(L));
    for (int j = L - 1; j >= 0; --j) {
      Eigen::Map<const Mat> Vn(v + offset(j + 1), d(j + 1), d(j));
      dS_[j].noalias() = dS_[j + 1] * W(j + 1);
      dS_[j].noalias() += S(j + 1) * Vn;
    }
  }
  const Mat& dE() const { return dP_[static_cast<std::size_t>(depth())]; }
  const Mat& dP(int j) const { return dP_[static_cast<std::size_t>(j)]; }
  const Mat& dS(int j) const { return dS_[static_cast<std::size_t>(j)]; }

 private:
  std::vector<Index> dims_;
  std::vector<Index> offsets_;
  const double* z_ = nullptr;
  std::vector<Mat> P_, S_, dP_, dS_;
  mutable Mat tmp_;
};

// ---------------------------------------------------------------------------
// Loss, gradient, trace, trace gradient, Hessian-vector product, Jacobian.
// All take a network already set() at the point of interest.
// ---------------------------------------------------------------------------
struct FactorizationWork {
  Vec f, r, u;
  Mat G, Q, R, MQ, MtR, X, Y, U, V, tmp, Ai;
  std::vector<Mat> Xs, Ys;
  MeasScratch ms;
};

// Loss (1/n) sum (f_i - y_i)^2; residual r = f - y left in w.r.
inline double factorization_loss(const DeepLinear& net, const Measurements& m, const Vec& y, FactorizationWork& w) {
  m.forward(net.E(), w.f);
  w.r = w.f - y;
  return w.r.squaredNorm() / static_cast<double>(m.n());
}

// Gradient (2/n) sum_i r_i grad f_i for the residual vector r.
inline void factorization_gradient_from_residual(const DeepLinear& net, const Measurements& m, const Vec& r,
                                                 FactorizationWork& w, double* g, double scale = 1.0,
                                                 bool accumulate = false) {
  m.adjoint(r, w.G);
  net.backprop(w.G, scale * 2.0 / static_cast<double>(m.n()), g, accumulate);
}

inline double factorization_trace(const DeepLinear& net, const Measurements& m, FactorizationWork& w) {
  double s = 0.0;
  const int L = net.depth();
  for (int j = 1; j <= L; ++j) {
    if (m.kind() == Measurements::Kind::completion) {
      // ||S_j(r,:)||^2 ||P_{j-1}(:,c)||^2 per measurement: O(n) after the norms.
      const Vec rn = net.S(j).rowwise().squaredNorm();
      const Vec cn = net.P(j - 1).colwise().squaredNorm().transpose();
      for (Index i = 0; i < m.n(); ++i) s += rn(m.row(i)) * cn(m.col(i));
      continue;
    }
    if (j > 1) w.Q.noalias() = net.P(j - 1).transpose() * net.P(j - 1);
    if (j < L) w.R.noalias() = net.S(j) * net.S(j).transpose();
    if (j == 1 && j == L) s += m.sandwich_identity().trace();
    else if (j == 1) s += (m.sandwich_identity().array() * w.R.array()).sum();   // Q_1 = I
    else if (j == L) s += (m.sandwich_t_identity().array() * w.Q.array()).sum();  // R_L = I
    else s += m.pair(w.Q, w.R, w.ms);
  }
  return 2.0 * s / static_cast<double>(m.n());
}

// Trace and its gradient (written to g, scaled by `scale`, added if accumulate).
inline double factorization_trace_gradient(const DeepLinear& net, const Measurements& m, FactorizationWork& w,
                                           double* g, double scale = 1.0, bool accumulate = false) {
  const int L = net.depth();
  const double c = 2.0 / static_cast<double>(m.n());
  w.Xs.resize(static_cast<std::size_t>(L) + 1);
  w.Ys.resize(static_cast<std::size_t>(L) + 1);
  double s = 0.0;
  // Q_1 = I and R_L = I: their sandwiches M(I), M^T(I) are precomputed.
  for (int j = 1; j <= L; ++j) {
    if (j > 1) w.Q.noalias() = net.P(j - 1).transpose() * net.P(j - 1);
    if (j < L) w.R.noalias() = net.S(j) * net.S(j).transpose();
    const Mat* MQ = &m.sandwich_identity();
    if (j > 1 && j < L) {
      m.sandwich(w.Q, w.MQ, w.ms);
      MQ = &w.MQ;
    }
    if (j == 1 && j == L) s += MQ->trace();
    else if (j == L) s += (m.sandwich_t_identity().array() * w.Q.array()).sum();
    else s += (MQ->array() * w.R.array()).sum();
    if (j > 1) {  // X_j feeds layers k < j
      const Mat* MtR = &m.sandwich_t_identity();
      if (j < L) {
        m.sandwich_t(w.R, w.MtR, w.ms);
        MtR = &w.MtR;
      }
      w.Xs[j].noalias() = 2.0 * net.P(j - 1) * (*MtR);
    }
    if (j < L) w.Ys[j].noalias() = 2.0 * (*MQ) * net.S(j);  // Y_j feeds layers k > j
  }
  // U_k = X_{k+1} + W_{k+1}^T U_{k+1} (U_L = 0); V_k = Y_{k-1} + V_{k-1} W_{k-1}^T (V_1 = 0)
  for (int k = L; k >= 1; --k) {
    Eigen::Map<Mat> gk(g + net.offset(k), net.d(k), net.d(k - 1));
    if (!accumulate) gk.setZero();
    if (k < L) {
      if (k == L - 1) w.U = w.Xs[L];
      else {
        w.tmp.noalias() = net.W(k + 1).transpose() * w.U;
        w.U = w.Xs[k + 1] + w.tmp;
      }
      gk.noalias() += (scale * c) * w.U * net.P(k - 1).transpose();
    }
  }
  for (int k = 1; k <= L; ++k) {
    Eigen::Map<Mat> gk(g + net.offset(k), net.d(k), net.d(k - 1));
    if (k > 1) {
      if (k == 2) w.V = w.Ys[1];
      else {
        w.tmp.noalias() = w.V * net.W(k - 1).transpose();
        w.V = w.Ys[k - 1] + w.tmp;
      }
      gk.noalias() += (scale * c) * net.S(k).transpose() * w.V;
    }
  }
  return c * s;
}

// out = H v for the loss Hessian, including the residual term:
//   H v = (2/n) sum_i [ <grad f_i, v> grad f_i + r_i Hess f_i v ].
// Needs w.r from factorization_loss at the same point.  net.directional is
// called (overwrites its forward-mode products).
inline void factorization_hvp(DeepLinear& net, const Measurements& m, FactorizationWork& w, const double* v,
                              double* out) {
  const int L = net.depth();
  const double c = 2.0 / static_cast<double>(m.n());
  net.directional(v);
  m.forward(net.dE(), w.u);   // J v
  m.adjoint(w.u, w.X);        // sum_i (Jv)_i A_i
  m.adjoint(w.r, w.G);        // sum_i r_i A_i
  for (int k = 1; k <= L; ++k) {
    Eigen::Map<Mat> ok(out + net.offset(k), net.d(k), net.d(k - 1));
    w.tmp.noalias() = net.S(k).transpose() * w.X;
    ok.noalias() = c * w.tmp * net.P(k - 1).transpose();
    w.tmp.noalias() = net.dS(k).transpose() * w.G;
    ok.noalias() += c * w.tmp * net.P(k - 1).transpose();
    w.tmp.noalias() = net.S(k).transpose() * w.G;
    ok.noalias() += c * w.tmp * net.dP(k - 1).transpose();
  }
}

// Per-measurement gradients: J (n_residuals x n_params), row i = grad f_i
// (regression: i = a + d_out s over the kept rows s; J^T J is that of the data).
inline Mat factorization_jacobian(const DeepLinear& net, const Measurements& m, FactorizationWork& w) {
  Mat J(m.n_residuals(), net.n_params());
  Vec row(net.n_params());
  for (Index i = 0; i < m.n_residuals(); ++i) {
    if (m.kind() == Measurements::Kind::completion) {
      // S_k^T e_r e_c^T P_{k-1}^T = (row r of S_k)^T (column c of P_{k-1})^T
      for (int k = 1; k <= net.depth(); ++k) {
        Eigen::Map<Mat> gk(row.data() + net.offset(k), net.d(k), net.d(k - 1));
        gk.noalias() = net.S(k).row(m.row(i)).transpose() * net.P(k - 1).col(m.col(i)).transpose();
      }
    } else {
      m.measurement(i, w.Ai);
      net.backprop(w.Ai, 1.0, row.data());
    }
    J.row(i) = row.transpose();
  }
  return J;
}

// Singular-value diagnostics of E: nuclear norm and effective rank
// exp(-sum p_k log p_k), p = sigma / sum(sigma) (Roy & Vetterli 2007).
inline void singular_diagnostics(const Mat& E, double& nuclear, double& eff_rank) {
  Eigen::JacobiSVD<Mat> svd(E);
  const Vec s = svd.singularValues();
  nuclear = s.sum();
  if (!(nuclear > 0) || !std::isfinite(nuclear)) {
    eff_rank = nuclear == 0 ? 0.0 : std::numeric_limits<double>::quiet_NaN();
    return;
  }
  double h = 0.0;
  for (Index k = 0; k < s.size(); ++k) {
    const double p = s(k) / nuclear;
    if (p > 0) h -= p * std::log(p);
  }
  eff_rank = std::exp(h);
}

// ---------------------------------------------------------------------------
// Training: a block model for the generic integrator (flow.hpp).
// ---------------------------------------------------------------------------
enum class FactMethod : int { descent = 0, flow = 1, trace_penalty = 2, label_noise_sgd = 3, sam = 4 };

// Strength schedule of the flat-solution finders (lam, sigma, rho): constant
// factor 1 at step 0, decaying geometrically to final_ratio at step
// anneal_steps, then 0 (pure loss refinement) for the remaining steps.
struct StrengthSchedule {
  std::int64_t anneal_steps = 0;
  double final_ratio = 1e-3;
  double factor(std::int64_t step) const {
    if (step >= anneal_steps || anneal_steps <= 0) return 0.0;
    return std::pow(final_ratio, static_cast<double>(step) / static_cast<double>(anneal_steps));
  }
};

struct FactorizationProblem {
  Measurements meas;
  Vec y;
  Mat M_star;         // empty when not given
  double tol = -1.0;  // stop as converged at loss <= tol (negative: never)
};

class FactorizationBlockModel {
 public:
  // strength(id): lam / sigma / rho per run id; seed(id): noise stream per run id.
  FactorizationBlockModel(const FactorizationProblem& prob, std::vector<Index> dims, FactMethod method,
                          Vec strength, std::vector<std::uint64_t> seeds, StrengthSchedule schedule,
                          SharpnessOptions sharpness = {})
      : prob_(prob),
        meas_(prob.meas),
        net_(std::move(dims)),
        method_(method),
        strength_(std::move(strength)),
        seeds_(std::move(seeds)),
        schedule_(schedule),
        sharp_(sharpness),
        sharp_vec_(seeds_.size()) {
    if (net_.d(0) != meas_.d_in() || net_.d(net_.depth()) != meas_.d_out())
      throw InvalidArgument("layer shapes do not match the measurement shape");
  }

  Index state_dim() const { return net_.n_params(); }
  bool projects() const { return false; }
  void project(Eigen::Ref<Vec> /*z*/, int /*id*/) const {}
  // The integrator calls this before the field of each fixed step.
  void begin_step(std::int64_t step) {
    step_ = step;
    factor_ = schedule_.factor(step);
  }

  void loss(const Mat& Z, const std::vector<int>& /*ids*/, Vec& loss) {
    loss.resize(Z.cols());
    for (Index c = 0; c < Z.cols(); ++c) {
      net_.set(Z.col(c).data());
      loss(c) = factorization_loss(net_, meas_, prob_.y, w_);
    }
  }

  void field(const Mat& Z, const std::vector<int>& ids, Mat& F, Vec& loss) {
    const Index K = Z.cols();
    F.resize(Z.rows(), K);
    loss.resize(K);
    for (Index c = 0; c < K; ++c) {
      const int id = ids[static_cast<std::size_t>(c)];
      const double strength = strength_(id) * factor_;
      double* f = F.col(c).data();
      net_.set(Z.col(c).data());
      loss(c) = factorization_loss(net_, meas_, prob_.y, w_);
      switch (method_) {
        case FactMethod::descent:
        case FactMethod::flow:
          factorization_gradient_from_residual(net_, meas_, w_.r, w_, f, -1.0);
          break;
        case FactMethod::trace_penalty:
          factorization_gradient_from_residual(net_, meas_, w_.r, w_, f, -1.0);
          if (strength > 0) factorization_trace_gradient(net_, meas_, w_, f, -strength, true);
          break;
        case FactMethod::label_noise_sgd: {
          // fresh labels y_i + sigma xi_i: residual r_i - sigma xi_i.  Regression
          // data kept as a QR factor: the noise on its d_out * (d_in + d_out)
          // rows gives a gradient noise of the same Gaussian law as fresh noise
          // on the n original targets (T^T T = K^T K).
          if (strength > 0) {
            Rng rng(seeds_[static_cast<std::size_t>(id)], 0x4c4e, static_cast<std::uint64_t>(step_));
            for (Index i = 0; i < meas_.n_residuals(); ++i) w_.r(i) -= strength * rng.normal();
          }
          factorization_gradient_from_residual(net_, meas_, w_.r, w_, f, -1.0);
          break;
        }
        case FactMethod::sam: {
          factorization_gradient_from_residual(net_, meas_, w_.r, w_, f, 1.0);
          const double gn = F.col(c).norm();
          if (strength > 0 && gn > 0 && std::isfinite(gn)) {
            zp_ = Z.col(c) + (strength / gn) * F.col(c);
            net_.set(zp_.data());
            factorization_loss(net_, meas_, prob_.y, w_);
          }
          factorization_gradient_from_residual(net_, meas_, w_.r, w_, f, -1.0);
          break;
        }
      }
    }
  }

  std::vector<std::string> diagnostic_names() const {
    std::vector<std::string> names{"trace", "nuclear_norm", "effective_rank"};
    if (prob_.M_star.size() > 0) names.push_back("error");
    sharpness_channel_names(sharp_, names);
    return names;
  }
  void diagnostics(const Eigen::Ref<const Vec>& z, int id, double* out) {
    zd_ = z;
    net_.set(zd_.data());
    out[0] = factorization_trace(net_, meas_, w_);
    singular_diagnostics(net_.E(), out[1], out[2]);
    Index k = 3;
    if (prob_.M_star.size() > 0) out[k++] = (net_.E() - prob_.M_star).norm() / prob_.M_star.norm();
    if (sharp_.record) sharpness(id, out + k);
  }

 private:
  const FactorizationProblem& prob_;
  const Measurements& meas_;
  DeepLinear net_;
  FactMethod method_;
  Vec strength_;
  std::vector<std::uint64_t> seeds_;
  StrengthSchedule schedule_;
  std::int64_t step_ = 0;
  double factor_ = 0.0;
  // the sharpness of the data loss (1/n) sum_i (f_i - y_i)^2 (clean labels; no trace penalty, no SAM
  // perturbation, whatever the method: the quantity compared with 2 / lr) at zd_ (net_ set there),
  // warm-started from run id's previous point; the random start of its first point from its seed
  void sharpness(int id, double* out) {
    const double l = factorization_loss(net_, meas_, prob_.y, w_);  // the residual r the HVP needs
    auto hvp = [this](const Eigen::Ref<const Mat>& X, Mat& Y) {
      Y.resize(X.rows(), X.cols());
      for (Index c = 0; c < X.cols(); ++c) {
        xcol_ = X.col(c);
        factorization_hvp(net_, meas_, w_, xcol_.data(), Y.col(c).data());
      }
    };
    const auto u = static_cast<std::size_t>(id);
    record_sharpness(hvp, net_.n_params(), sharp_, seeds_[u], std::isfinite(l) && zd_.allFinite(), sharp_vec_[u], out);
  }

  FactorizationWork w_;
  Vec zp_, zd_, xcol_;
  SharpnessOptions sharp_;
  std::vector<Vec> sharp_vec_;  // per run id: the last top Ritz vector (the warm start)
};

// How the initial layers are drawn (factorization_initial_layers).
enum class FactInit : int { gaussian = 0, balanced = 1 };

// The initial layers W_1 .. W_L for widths dims = d_0 .. d_L, stacked like z
// (vec(W_j) column-major, layer after layer), drawn from Rng(seed, "INIT"):
//   gaussian: W_j = (a G_j) / sqrt(d_{j-1}), G_j i.i.d. N(0, 1) (drawn in the
//             order of z);
//   balanced: W_j = (a O_j) O_{j-1}^T, O_j the d_j x m factor with orthonormal
//             columns of the QR factorization of a Gaussian d_j x m matrix
//             (signs fixed so that diag(R) > 0, which makes O_j Haar
//             distributed), m = min_j d_j; then W_{j+1}^T W_{j+1} = W_j W_j^T.
// Throws InvalidArgument when a layer overflows (a huge init_scale).
inline Vec factorization_initial_layers(const std::vector<Index>& dims, double a, FactInit init, std::uint64_t seed) {
  if (dims.size() < 2) throw InvalidArgument("depth must be >= 1");
  Index n = 0;
  for (std::size_t j = 1; j < dims.size(); ++j) n += dims[j] * dims[j - 1];
  Vec z(n);
  Rng rng(seed, 0x494e4954);  // "INIT"
  if (init == FactInit::gaussian) {
    Index off = 0;
    for (std::size_t j = 1; j < dims.size(); ++j) {
      const double root = std::sqrt(static_cast<double>(dims[j - 1]));
      for (Index i = 0; i < dims[j] * dims[j - 1]; ++i) z(off + i) = (a * rng.normal()) / root;
      off += dims[j] * dims[j - 1];
    }
  } else {
    const Index m = *std::min_element(dims.begin(), dims.end());
    std::vector<Mat> Os;
    for (Index d : dims) {
      Mat G(d, m);
      for (Index c = 0; c < m; ++c)
        for (Index i = 0; i < d; ++i) G(i, c) = rng.normal();
      Eigen::HouseholderQR<Mat> qr(G);
      Mat Q = qr.householderQ() * Mat::Identity(d, m);
      for (Index c = 0; c < m; ++c)
        if (qr.matrixQR()(c, c) < 0.0) Q.col(c) = -Q.col(c);
      Os.push_back(std::move(Q));
    }
    Index off = 0;
    for (std::size_t j = 1; j < dims.size(); ++j) {
      const Mat W = (a * Os[j]) * Os[j - 1].transpose();
      z.segment(off, W.size()) = Eigen::Map<const Vec>(W.data(), W.size());
      off += W.size();
    }
  }
  if (!z.allFinite())
    throw InvalidArgument("init_scale: the initial layer overflows float64 (non-finite result); scale the init_scale down");
  return z;
}

// One run of a batch.
struct FactorizationRun {
  int problem = 0;
  FactMethod method = FactMethod::descent;
  std::vector<Index> dims;  // d_0 .. d_L
  Vec z0;                   // initial layers, stacked (empty: drawn by factorization_initial_layers)
  double lr = 0.0;          // fixed-step methods
  double strength = 0.0;    // lam (trace_penalty), sigma (label_noise_sgd), rho (sam)
  std::uint64_t seed = 0;   // label-noise stream, and the draw of the initial layers
  FactInit init = FactInit::gaussian;  // the draw of the initial layers when z0 is empty
  double init_scale = 0.0;             // a of the draw
};

struct FactorizationBatchOptions {
  FixedStepOptions fixed;
  AdaptiveOptions adaptive;
  StrengthSchedule schedule;
  SharpnessOptions sharpness;
  std::size_t block_size = 1;
  int num_threads = 0;
};

// Runs every run (fixed-step methods through run_fixed_step, the flow through
// run_dopri5); runs with the same problem, method and widths form blocks
// (run_grouped_batch).  Results do not depend on the number of threads.
inline std::vector<RunRecord> run_factorization_batch(const std::vector<FactorizationProblem>& problems,
                                                      const std::vector<FactorizationRun>& runs,
                                                      const FactorizationBatchOptions& opt) {
  for (const auto& r : runs) {
    const auto& m = problem_of(problems, r.problem).meas;
    DeepLinear net(r.dims);
    if (net.d(0) != m.d_in() || net.d(net.depth()) != m.d_out())
      throw InvalidArgument("layer widths do not match the measurement shape");
    if (r.z0.size() == 0) {
      if (!(r.init_scale > 0.0) || !std::isfinite(r.init_scale))
        throw InvalidArgument("init_scale must be positive and finite");
    } else if (r.z0.size() != net.n_params()) {
      throw InvalidArgument("initial state has the wrong length");
    } else if (!r.z0.allFinite()) {
      throw InvalidArgument("the initial layers must be finite");
    }
  }
  // the grouping key: runs of one problem, method and widths share blocks
  auto key = [](const FactorizationRun& r) { return std::tie(r.problem, r.method, r.dims); };
  return run_grouped_batch(runs, opt.block_size, opt.num_threads, key,
                           [&](const std::vector<FactorizationRun>& runs, std::size_t lo, std::size_t hi,
                               std::vector<RunRecord>& out) {
    const Index K = static_cast<Index>(hi - lo);
    const FactorizationRun& first = runs[lo];
    const FactorizationProblem& prob = problems[static_cast<std::size_t>(first.problem)];
    Mat Z0(DeepLinear(first.dims).n_params(), K);
    Vec lr(K), strength(K);
    std::vector<std::uint64_t> seeds(static_cast<std::size_t>(K));
    for (Index c = 0; c < K; ++c) {
      const FactorizationRun& r = runs[lo + static_cast<std::size_t>(c)];
      Z0.col(c) = r.z0.size() != 0 ? r.z0 : factorization_initial_layers(r.dims, r.init_scale, r.init, r.seed);
      lr(c) = r.lr;
      strength(c) = r.strength;
      seeds[static_cast<std::size_t>(c)] = r.seed;
    }
    FactorizationBlockModel model(prob, first.dims, first.method, strength, seeds, opt.schedule, opt.sharpness);
    if (first.method == FactMethod::flow) {
      AdaptiveOptions adaptive = opt.adaptive;
      adaptive.tol = prob.tol;
      run_dopri5(model, Z0, adaptive, out);
    } else {
      FixedStepOptions fixed = opt.fixed;
      fixed.tol = prob.tol;
      run_fixed_step(model, Z0, lr, fixed, out);
    }
  });
}

}  // namespace implicitbias
