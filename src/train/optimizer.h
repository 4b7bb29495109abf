// AdamW (Loshchilov & Hutter, as torch.optim.AdamW computes it) with decoupled weight decay,
// and global-norm gradient clipping. For each parameter p with gradient g, at step t >= 1:
//   p <- p * (1 - lr * wd)                       (only parameters with 2+ dimensions)
//   m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
//   p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
// State (m, v: same dtype as the parameter; t) round-trips through named tensors for
// checkpoints. A parameter without a gradient this step is left untouched.
#pragma once

#include "io/safetensors.h"
#include "train/trainable.h"

#include <cstdint>
#include <vector>

namespace lrnn::train {

struct adamw_options {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.0;
};

class adamw {
 public:
  adamw(std::vector<parameter>* params, adamw_options opt) : params_(params), opt_(opt) {}
  // One update with learning rate `lr` from the gradients held by the parameters.
  status step(double lr);
  void zero_grad();
  int64_t steps_done() const { return t_; }
  // "adamw.m.<name>", "adamw.v.<name>" and "adamw.step" (int64 scalar [1]).
  io::named_tensors state() const;
  // Restores a state written by state(); errors name the missing or mismatched tensor.
  status load_state(const io::named_tensors& state);

 private:
  std::vector<parameter>* params_;
  adamw_options opt_;
  int64_t t_ = 0;
  std::vector<tensor> m_, v_;
};

// L2 norm of all gradients together (computed in f64); when it exceeds max_norm > 0 every
// gradient is scaled by max_norm / norm. Returns the norm before clipping.
result<double> clip_grad_norm(std::vector<parameter>& params, double max_norm);

}  // namespace lrnn::train
