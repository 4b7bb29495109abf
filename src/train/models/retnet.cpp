// Trainable RetNet (fla's MultiScaleRetention, model_type "retnet"): the mixer of
// models/retnet.cpp over autograd vars — rotary q/k (half split, base 10000, positions from 0),
// fixed per-head decay gamma_h = 1 - 2^(-5-h) — with the same config reader and fla's init.
#include "models/fla_common.h"
#include "models/fla_configs.h"
#include "ops/decay_attn/autograd.h"
#include "train/models/fla_common.h"

#include <cmath>

namespace lrnn::train {
namespace {

// Rotates x [B, T, H, D] by angle t * base^(-2i/D) on the pairs (i, i + D/2); sign -1 undoes it
// (the backward: a rotation's transpose is the opposite rotation).
template <typename T>
void rotate(const T* x, T* y, int64_t B, int64_t Tn, int64_t H, int64_t D, double base, double sign) {
  const int64_t half = D / 2;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < Tn; ++t)
      for (int64_t i = 0; i < half; ++i) {
        const double a = static_cast<double>(t) / std::pow(base, static_cast<double>(2 * i) / static_cast<double>(D));
        const T c = static_cast<T>(std::cos(a)), s = static_cast<T>(sign * std::sin(a));
        for (int64_t h = 0; h < H; ++h) {
          const int64_t r = ((b * Tn + t) * H + h) * D;
          const T x1 = x[r + i], x2 = x[r + i + half];
          y[r + i] = x1 * c - x2 * s;
          y[r + i + half] = x2 * c + x1 * s;
        }
      }
}

result<tensor> rotated(const tensor& in, double base, double sign) {
  LRNN_ASSIGN_OR_RETURN(tensor x, in.contiguous());
  LRNN_ASSIGN_OR_RETURN(tensor y, tensor::empty(x.shape(), x.type()));  // [B, T, H, D]
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), D = x.size(3);
  if (x.type() == dtype::f64) rotate(x.data<double>(), y.data<double>(), B, T, H, D, base, sign);
  else rotate(x.data<float>(), y.data<float>(), B, T, H, D, base, sign);
  return y;
}

result<ag::var> rotary(const ag::var& x, double base) {
  if (x.dim() != 4 || x.size(3) % 2 || (x.type() != dtype::f32 && x.type() != dtype::f64))
    return make_error(status_code::invalid_argument, "rotary: x {} must be f32/f64 [B, T, H, D] with D even", x.value().describe());
  LRNN_ASSIGN_OR_RETURN(tensor y, rotated(x.value(), base, 1.0));
  const dtype dt = x.type();
  return ag::make_result(y, {x}, [base, dt](const tensor& g) -> result<std::vector<tensor>> {
    LRNN_ASSIGN_OR_RETURN(tensor gg, g.to(dt));
    LRNN_ASSIGN_OR_RETURN(tensor d, rotated(gg, base, -1.0));
    return std::vector<tensor>{d};
  }, "rotary");
}

class retnet_mixer final : public fla::mixer {
 public:
  models::retnet_config c;
  fla::qkv_projection qkv;
  ag::var g, o, g_norm, log_gamma;

  result<ag::var> forward(const ag::var& x, models::compute_form form) const override {
    const int64_t T = x.size(1);
    LRNN_ASSIGN_OR_RETURN(auto qkv_out, qkv.forward(x));
    LRNN_TRY(fla::split_heads(qkv_out, c.H, c.Kh, c.Vh));
    auto& [qx, kx, vx] = qkv_out;
    LRNN_ASSIGN_OR_RETURN(qx, rotary(qx, 10000.0));
    LRNN_ASSIGN_OR_RETURN(kx, rotary(kx, 10000.0));
    ops::decay_attn_spec spec;
    spec.decay = ops::decay_kind::per_head_const;
    ag::var lg = log_gamma;
    if (lg.type() != x.type()) lg = ag::var(lg.value().to(x.type()).value());
    LRNN_ASSIGN_OR_RETURN(ag::var ov, ag::decay_attn(spec, qx, kx, vx, lg, ag::var(), ag::var(), models::fla::decay_form(form, T)));
    return fla::gated_head_output(ov, c.H, g_norm, c.eps, x, g, o);
  }
};

result<std::unique_ptr<trainable_model>> build_retnet(const io::config& config, param_source& src) {
  LRNN_ASSIGN_OR_RETURN(models::retnet_config c, models::read_retnet_config(config));
  return fla::build_lm<retnet_mixer>(config, src, "retnet", c,
                                     [](retnet_mixer& m, const param_init& normal, param_source& s, std::vector<parameter>& P, const std::string& p) -> status {
    const models::retnet_config& c = m.c;
    const std::string dims = fmt::format("hidden_size={}, expand_k={}, expand_v={}", c.D, c.expand_k, c.expand_v);
    LRNN_TRY(m.qkv.add_projections(s, P, p, c.D, c.key_dim, c.value_dim, normal, dims, dims, c.output_gate ? &m.g : nullptr));
    LRNN_TRY(fla::add_head_output(s, P, p, "g_norm.weight", c.affine, c.Vh, "head value dim", c.D, c.value_dim, normal, dims, m.g_norm,
                                  m.o));
    std::vector<double> lg(static_cast<size_t>(c.H));
    for (int64_t h = 0; h < c.H; ++h) lg[h] = std::log(1.0 - std::pow(2.0, -5.0 - static_cast<double>(h)));
    m.log_gamma = ag::var(tensor::from_doubles(lg, {c.H}, dtype::f32));  // a constant, not a parameter
    return {};
  });
}

}  // namespace

LRNN_REGISTER_TRAINABLE(retnet, "retnet", build_retnet)

}  // namespace lrnn::train
