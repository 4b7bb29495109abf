// Helpers shared by the trainable architectures of this folder (except gla / retnet): parameter
// registration through a param_source, the orthogonal initialiser the fla / RWKV references use,
// and the few model-specific differentiable ops that have no dense counterpart (each with its
// backward next to its forward in arch_util.cpp). All ops work in f32 and f64.
#pragma once

#include "lrnn/autograd.h"
#include "train/trainable.h"

#include <string>
#include <vector>

namespace lrnn::train::arch {

// Asks `src` for a parameter, makes it a requires_grad leaf and appends it to `params`.
class param_builder {
 public:
  param_builder(param_source& src, std::vector<parameter>& params) : src_(src), params_(params) {}
  result<ag::var> get(const std::string& name, const shape_t& shape, const param_init& init, const std::string& why);

 private:
  param_source& src_;
  std::vector<parameter>& params_;
};

// torch.nn.init.orthogonal_(w, gain) for a 2-D [rows, cols] parameter (Gram-Schmidt on a
// Gaussian matrix). param_init::custom gets no RNG, so the matrix is seeded from `seed_name`
// (the parameter name): deterministic, but the same for every create_trainable seed.
param_init orthogonal_init(double gain, const std::string& seed_name);

// x [..., G * D] -> x / max(||x||_2, 1e-12) per group of D (torch F.normalize, fla's RWKV-7 kk).
result<ag::var> l2_normalize_groups(const ag::var& x, int64_t D);

// RWKV-7 bonus: r, k [..., H * K], r_k [H, K], v [..., H * V] -> (sum_i r k r_k)_h * v per head h.
result<ag::var> rwkv7_bonus(const ag::var& r, const ag::var& k, const ag::var& r_k, const ag::var& v);

// Griffin's block-diagonal gate: x [..., H * W], w [H, W, W], b [H, W] ->
// out[..., h * W + j] = b[h, j] + sum_i x[..., h * W + i] w[h, i, j].
result<ag::var> block_diag_linear(const ag::var& x, const ag::var& w, const ag::var& b);

// x + c elementwise (a constant shift; the gradient passes through).
result<ag::var> add_constant(const ag::var& x, double c);

}  // namespace lrnn::train::arch
