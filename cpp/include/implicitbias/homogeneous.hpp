// Homogeneous classifiers without biases and log-domain classification losses
// (docs/science.md, section 2).
//
// Models, parameters theta flattened into one vector:
//   linear    f(x) = <w, x>                               degree 1, theta = w
//   diagonal  f(x) = <u^2 - v^2, x>                       degree 2, theta = (u, v)
//   mlp       f(x) = a^T relu(W_{L-1} ... relu(W_1 x))    degree L, theta = (W_1, ..., W_{L-1}, a)
// (the two-layer ReLU network sum_k a_k relu(<w_k, x>) is the mlp of depth 2).
// Matrices are stored column-major; W_1 is (width x dim), W_l (width x width),
// a has length width.  relu'(0) = 0.
//
// Losses over labels y_i in {-1, +1} with q_i = y_i f(x_i):
//   exponential  Loss = sum_i exp(-q_i)
//   logistic     Loss = sum_i log(1 + exp(-q_i))
// Late in training Loss is far below the smallest double, so everything is
// kept in the log domain: the log-loss log(Loss) by log-sum-exp, and the
// gradient as grad Loss = Loss * g~ with the scale-free part
//   g~ = sum_i c_i grad f(x_i),   c_i = y_i l'(q_i) / Loss,
// where for the exponential loss -y_i c_i = softmax(-q)_i.  Every steepest
// direction is homogeneous of degree 1 in the gradient, so steps are computed
// from g~ and the factor Loss enters only as exp(log lr + log Loss).
#pragma once

#include "types.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace implicitbias {

enum class ModelKind : int { linear = 0, diagonal = 1, mlp = 2 };
enum class LossKind : int { exponential = 0, logistic = 1 };

// Binary classification data: X (n x d), labels y in {-1, +1}.
struct ClassificationProblem {
  Mat X;   // n x d
  Mat Xt;  // d x n (the transpose, kept for the mlp's products)
  Vec y;
  ClassificationProblem() = default;
  ClassificationProblem(Mat X_, Vec y_) : X(std::move(X_)), y(std::move(y_)) { Xt = X.transpose(); }
};

// A weight block of theta: rows x cols at offset (vectors are 1 x len).
struct ParamBlock {
  Index offset = 0, rows = 1, cols = 1;
  Index size() const { return rows * cols; }
};

struct HomogeneousSpec {
  ModelKind kind = ModelKind::linear;
  int depth = 2;   // mlp only (>= 2)
  Index width = 0; // mlp only

  int degree() const {
    switch (kind) {
      case ModelKind::linear: return 1;
      case ModelKind::diagonal: return 2;
      default: return depth;
    }
  }
  // Weight blocks for dim input features (the spectral norm acts per block).
  std::vector<ParamBlock> blocks(Index dim) const {
    std::vector<ParamBlock> b;
    if (kind == ModelKind::linear) {
      b.push_back({0, 1, dim});
    } else if (kind == ModelKind::diagonal) {
      b.push_back({0, 1, dim});
      b.push_back({dim, 1, dim});
    } else {
      Index off = 0;
      b.push_back({off, width, dim});
      off += width * dim;
      for (int l = 2; l < depth; ++l) {
        b.push_back({off, width, width});
        off += width * width;
      }
      b.push_back({off, 1, width});
    }
    return b;
  }
  Index n_params(Index dim) const {
    const auto b = blocks(dim);
    return b.back().offset + b.back().size();
  }
};

// log(1 + exp(x)) without overflow.
inline double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }

// log(log(1 + exp(-q))), the log of one logistic term, for any q.
inline double log_logistic_term(double q) {
  if (q > 35.0) return -q - 0.5 * std::exp(-q);  // log1p(e) = e - e^2/2 + ...; e <= 6e-16
  return std::log(softplus(-q));
}

// Evaluates a homogeneous model on a problem, with work buffers of its own
// (one instance per run, never shared between threads).
class HomogeneousModel {
 public:
  HomogeneousModel(const ClassificationProblem& prob, const HomogeneousSpec& spec)
      : prob_(prob), spec_(spec), blocks_(spec.blocks(prob.X.cols())), P_(spec.n_params(prob.X.cols())) {
    if (spec.kind == ModelKind::mlp) {
      if (spec.depth < 2) throw InvalidArgument("mlp depth must be >= 2");
      if (spec.width < 1) throw InvalidArgument("mlp width must be >= 1");
      act_.resize(static_cast<std::size_t>(spec.depth - 1));
    }
  }

  Index n_params() const { return P_; }
  Index n_samples() const { return prob_.X.rows(); }
  int degree() const { return spec_.degree(); }
  const std::vector<ParamBlock>& blocks() const { return blocks_; }
  const HomogeneousSpec& spec() const { return spec_; }

  // f(x_i; theta) for every sample.  For the mlp the layer activations are
  // kept for a following grad_sum at the same theta.
  void outputs(const Eigen::Ref<const Vec>& theta, Vec& f) {
    const Mat& X = prob_.X;
    const Index d = X.cols();
    switch (spec_.kind) {
      case ModelKind::linear:
        f.noalias() = X * theta;
        break;
      case ModelKind::diagonal:
        beta_ = theta.head(d).array().square() - theta.tail(d).array().square();
        f.noalias() = X * beta_;
        break;
      case ModelKind::mlp: {
        const Index n = X.rows();
        const Index m = spec_.width;
        // act_l = relu(W_l act_{l-1}), act_0 = X^T; relu'(z) = [act > 0]
        for (int l = 0; l < spec_.depth - 1; ++l) {
          const ParamBlock& b = blocks_[static_cast<std::size_t>(l)];
          Eigen::Map<const Mat> W(theta.data() + b.offset, b.rows, b.cols);
          Mat& A = act_[static_cast<std::size_t>(l)];
          A.resize(m, n);
          if (l == 0) A.noalias() = W * prob_.Xt;
          else A.noalias() = W * act_[static_cast<std::size_t>(l - 1)];
          A = A.cwiseMax(0.0);
        }
        const ParamBlock& b = blocks_.back();
        Eigen::Map<const Vec> a(theta.data() + b.offset, m);
        f.noalias() = act_.back().transpose() * a;
        break;
      }
    }
  }

  // Samples whose backward pass the last mlp grad_sum ran (all, or the
  // active ones when the skip applied); for tests of the skip rule.
  Index samples_used() const { return samples_used_; }

  // G = sum_i c_i grad_theta f(x_i; theta), after outputs(theta) (mlp).
  void grad_sum(const Eigen::Ref<const Vec>& theta, const Vec& c, Eigen::Ref<Vec> G) {
    const Mat& X = prob_.X;
    const Index d = X.cols();
    switch (spec_.kind) {
      case ModelKind::linear:
        G.noalias() = X.transpose() * c;
        break;
      case ModelKind::diagonal:
        xc_.noalias() = X.transpose() * c;
        G.head(d) = 2.0 * theta.head(d).cwiseProduct(xc_);
        G.tail(d) = -2.0 * theta.tail(d).cwiseProduct(xc_);
        break;
      case ModelKind::mlp: {
        // Samples whose weight is below 2^-64 of the largest one are skipped
        // when that provably changes G by at most 2^-53 ||G|| (skipped_bound);
        // otherwise every sample is used.  Late in training the softmax
        // weights of the exponential loss concentrate on a few samples, and
        // the backward products shrink to those columns.
        const Index n = X.rows();
        const double cut = c.cwiseAbs().maxCoeff() * 0x1p-64;
        active_.clear();
        skipped_.clear();
        for (Index i = 0; i < n; ++i) (std::abs(c(i)) > cut ? active_ : skipped_).push_back(i);
        if (static_cast<Index>(active_.size()) < (3 * n) / 4) {
          mlp_grad_sum(theta, c, G, true);
          if (skipped_bound(theta, c) <= 0x1p-53 * G.norm()) {
            samples_used_ = static_cast<Index>(active_.size());
            break;
          }
        }
        mlp_grad_sum(theta, c, G, false);
        samples_used_ = n;
        break;
      }
    }
  }

  // Log-domain loss and scale-free gradient at theta:
  //   log_loss = log(Loss),  gt = grad Loss / Loss,  q = y .* f.
  // Returns false when a value is not finite.
  bool evaluate(const Eigen::Ref<const Vec>& theta, LossKind loss, double& log_loss, Eigen::Ref<Vec> gt, Vec& q) {
    outputs(theta, f_);
    q = prob_.y.cwiseProduct(f_);
    const Index n = q.size();
    c_.resize(n);
    if (loss == LossKind::exponential) {
      const double qmin = q.minCoeff();
      // log sum exp(-q_i) = -qmin + log sum exp(-(q_i - qmin))
      c_ = (-(q.array() - qmin)).exp().matrix();
      const double s = c_.sum();
      log_loss = -qmin + std::log(s);
      c_ = -prob_.y.cwiseProduct(c_) / s;  // y_i l'(q_i)/Loss = -y_i softmax(-q)_i
    } else {
      lt_.resize(n);
      for (Index i = 0; i < n; ++i) lt_(i) = log_logistic_term(q(i));
      const double mx = lt_.maxCoeff();
      log_loss = mx + std::log((lt_.array() - mx).exp().sum());
      // l'(q) = -sigmoid(-q) = -exp(-softplus(q))
      for (Index i = 0; i < n; ++i) c_(i) = -prob_.y(i) * std::exp(-softplus(q(i)) - log_loss);
    }
    if (!std::isfinite(log_loss)) return false;
    grad_sum(theta, c_, gt);
    return gt.allFinite();
  }

  // Log-loss only.
  double log_loss(const Eigen::Ref<const Vec>& theta, LossKind loss, Vec& q) {
    outputs(theta, f_);
    q = prob_.y.cwiseProduct(f_);
    if (loss == LossKind::exponential) {
      const double qmin = q.minCoeff();
      return -qmin + std::log((-(q.array() - qmin)).exp().sum());
    }
    const Index n = q.size();
    lt_.resize(n);
    for (Index i = 0; i < n; ++i) lt_(i) = log_logistic_term(q(i));
    const double mx = lt_.maxCoeff();
    return mx + std::log((lt_.array() - mx).exp().sum());
  }

 private:
  // G = sum_i c_i grad f(x_i) of the mlp over the active samples (sparse) or all.
  void mlp_grad_sum(const Eigen::Ref<const Vec>& theta, const Vec& c, Eigen::Ref<Vec> G, bool sparse) {
    const Mat& X = prob_.X;
    const Index m = spec_.width;
    const int Lm1 = spec_.depth - 1;
    const ParamBlock& ba = blocks_.back();
    Eigen::Map<const Vec> a(theta.data() + ba.offset, m);
    if (sparse) {
      const Index na = static_cast<Index>(active_.size());
      ca_.resize(na);
      for (Index k = 0; k < na; ++k) ca_(k) = c(active_[static_cast<std::size_t>(k)]);
      acta_.resize(static_cast<std::size_t>(Lm1));
      for (int l = 0; l < Lm1; ++l) acta_[static_cast<std::size_t>(l)] = act_[static_cast<std::size_t>(l)](Eigen::all, active_);
      Xa_ = X(active_, Eigen::all);
    }
    const Vec& cc = sparse ? ca_ : c;
    const std::vector<Mat>& act = sparse ? acta_ : act_;
    const Mat& XX = sparse ? Xa_ : X;
    const Index nn = cc.size();
    G.segment(ba.offset, m).noalias() = act.back() * cc;
    // delta = d(sum_i c_i f_i)/d(pre-activation of the last hidden layer)
    delta_.resize(m, nn);
    for (Index i = 0; i < nn; ++i) delta_.col(i) = (act.back().col(i).array() > 0.0).select(a.array() * cc(i), 0.0);
    for (int l = Lm1 - 1; l >= 0; --l) {
      const ParamBlock& b = blocks_[static_cast<std::size_t>(l)];
      Eigen::Map<Mat> GW(G.data() + b.offset, b.rows, b.cols);
      if (l == 0) GW.noalias() = delta_ * XX;
      else GW.noalias() = delta_ * act[static_cast<std::size_t>(l - 1)].transpose();
      if (l > 0) {
        Eigen::Map<const Mat> W(theta.data() + b.offset, b.rows, b.cols);
        tmp_.noalias() = W.transpose() * delta_;
        delta_ = (act[static_cast<std::size_t>(l - 1)].array() > 0.0).select(tmp_.array(), 0.0);
      }
    }
  }

  // An upper bound of ||sum_{i skipped} c_i grad f(x_i)||_2 (mlp, after
  // outputs): sum_i |c_i| B_i with B_i >= ||grad f(x_i)||, where
  //   grad_a f = h_{L-1},  grad_{W_l} f = delta_l h_{l-1}^T  (h_0 = x),
  //   ||delta_{L-1}|| <= ||a||,  ||delta_{l-1}|| <= ||W_l||_F ||delta_l||
  // (ReLU derivatives are 0 or 1), so B_i = ||h_{L-1,i}|| + sum_l D_l ||h_{l-1,i}||.
  double skipped_bound(const Eigen::Ref<const Vec>& theta, const Vec& c) const {
    const int Lm1 = spec_.depth - 1;
    std::vector<double> D(static_cast<std::size_t>(Lm1));
    D.back() = theta.segment(blocks_.back().offset, spec_.width).norm();
    for (int l = Lm1 - 1; l > 0; --l) {
      const ParamBlock& b = blocks_[static_cast<std::size_t>(l)];
      D[static_cast<std::size_t>(l - 1)] = theta.segment(b.offset, b.size()).norm() * D[static_cast<std::size_t>(l)];
    }
    double total = 0.0;
    for (Index i : skipped_) {
      double B = act_.back().col(i).norm() + D[0] * prob_.X.row(i).norm();
      for (int l = 1; l < Lm1; ++l)
        B += D[static_cast<std::size_t>(l)] * act_[static_cast<std::size_t>(l - 1)].col(i).norm();
      total += std::abs(c(i)) * B;
    }
    return total;
  }

  const ClassificationProblem& prob_;
  HomogeneousSpec spec_;
  std::vector<ParamBlock> blocks_;
  Index P_;
  std::vector<Mat> act_, acta_;
  std::vector<Index> active_, skipped_;
  Index samples_used_ = 0;
  Mat delta_, tmp_, Xa_;
  Vec ca_;
  Vec beta_, xc_, f_, c_, lt_;
};

// Smoothed margin numerator: log(1/Loss) (exponential) or
// log(1/(exp(Loss) - 1)) (logistic), from the log-loss.  For the logistic
// loss with Loss = exp(log_loss) > 1, log(exp(Loss) - 1) = Loss + log1p(-exp(-Loss)),
// finite for any finite Loss (exp(Loss) alone overflows above ~709).
inline double smoothed_margin_numerator(double log_loss, LossKind loss) {
  if (loss == LossKind::exponential) return -log_loss;
  if (log_loss < -20.0) return -log_loss - 0.5 * std::exp(log_loss);  // expm1(L) = L (1 + L/2 + ...)
  const double L = std::exp(log_loss);
  if (L > 1.0) return -(L + std::log1p(-std::exp(-L)));
  return -std::log(std::expm1(L));
}

}  // namespace implicitbias
