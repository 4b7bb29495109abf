// `lrnn bench op delta_rule | local_attn`: times the delta rule's chunk and recurrent forms
// (variants delta, gated, dplr) and the local attention's parallel form on f32 inputs. FLOPs are
// the algorithms' matrix products (README.md of src/ops/delta_rule and src/ops/local_attn, "cost").
#include "bench.h"

#include "ops/delta_rule/delta_rule.h"
#include "ops/local_attn/local_attn.h"

#include <cmath>
#include <random>

namespace lrnn::cli::bench {

namespace {
using namespace lrnn::ops;

tensor random_tensor(const shape_t& s, uint64_t seed, double lo, double hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(static_cast<float>(lo), static_cast<float>(hi));
  tensor t = tensor::empty(s, dtype::f32).value();
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = d(rng);
  return t;
}

// Unit rows of the last dimension (keys of a stable delta rule).
tensor unit_rows(tensor t) {
  const int64_t K = t.size(-1);
  float* p = t.data<float>();
  for (int64_t r = 0; r < t.numel() / K; ++r) {
    float s = 0;
    for (int64_t d = 0; d < K; ++d) s += p[r * K + d] * p[r * K + d];
    for (int64_t d = 0; d < K; ++d) p[r * K + d] /= std::sqrt(s);
  }
  return t;
}

status run_delta(const options& o, std::vector<row>& rows, std::string& desc) {
  const std::string var = o.variant.empty() ? "gated" : o.variant;
  const int64_t B = o.B, T = o.T, H = o.H, K = o.K, V = o.V;
  delta_rule_spec spec;
  delta_rule_inputs in;
  in.q = unit_rows(random_tensor({B, T, H, K}, 1, -1, 1));
  in.k = unit_rows(random_tensor({B, T, H, K}, 2, -1, 1));
  in.v = random_tensor({B, T, H, V}, 3, -1, 1);
  if (var == "delta" || var == "gated") {
    spec.kind = var == "delta" ? delta_kind::delta : delta_kind::gated;
    in.beta = random_tensor({B, T, H}, 4, 0, 1);
    if (var == "gated") in.g = random_tensor({B, T, H}, 5, -0.5, 0);
  } else if (var == "dplr") {
    spec.kind = delta_kind::dplr, spec.scale = 1.0;
    const tensor kappa = unit_rows(random_tensor({B, T, H, K}, 6, -1, 1));
    in.w = random_tensor({B, T, H, K}, 5, -0.6, -0.01);
    in.a = kappa.clone().value();
    in.b = kappa.clone().value();
    float* a = in.a.data<float>();
    float* b = in.b.data<float>();
    for (int64_t i = 0; i < in.a.numel(); ++i) a[i] = -a[i], b[i] *= 0.5f;
  } else {
    return make_error(status_code::invalid_argument, "bench delta_rule: unknown variant '{}' (delta, gated, dplr)", var);
  }
  desc = fmt::format("variant {} B={} T={} H={} K={} V={} chunk={} f32", var, B, T, H, K, V, o.chunk);
  delta_rule_options opt;
  opt.chunk_size = o.chunk;
  const tensor d_o = random_tensor({B, T, H, V}, 7, -1, 1);
  const double C = static_cast<double>(std::min(o.chunk, T)), Kd = static_cast<double>(K), Vd = static_cast<double>(V);
  const double tokens = static_cast<double>(B * T * H);
  // dplr (README.md, "DPLR chunk form", cost): four decayed score matrices, two K x V products in and
  // out of the state per chunk; the backward recomputes the forward twice (state sweep, per chunk).
  const bool dplr = spec.kind == delta_kind::dplr;
  const double fwd = dplr ? tokens * (4 * C * Kd + 4 * C * Vd + 8 * Kd * Vd) : tokens * (4 * C * Kd + 3 * C * Vd + 6 * Kd * Vd);
  const double bwd = dplr ? tokens * (16 * C * Kd + 18 * C * Vd + 32 * Kd * Vd) : tokens * (8 * C * Kd + 7 * C * Vd + 12 * Kd * Vd);
  const double rec = tokens * 8 * Kd * Vd;
  const std::vector<std::string> forms = o.forms.empty() ? std::vector<std::string>{"chunk", "recurrent"} : o.forms;
  for (const std::string& f : forms) {
    delta_rule_form form;
    if (f == "chunk") form = delta_rule_form::chunk;
    else if (f == "recurrent") form = delta_rule_form::recurrent;
    else return make_error(status_code::invalid_argument, "bench delta_rule: unknown form '{}' (chunk, recurrent)", f);
    const bool chunk = form == delta_rule_form::chunk;
    status st;
    const int reps = chunk ? o.repeats : 1;
    const double ms = time_ms(reps, [&] {
      auto r = delta_rule_forward(spec, in, {}, form, opt);
      if (!r.ok()) st = r.error();
    }, chunk);
    LRNN_TRY(st);
    rows.push_back({f + " fwd", ms, chunk ? fwd : rec});
    const double bms = time_ms(reps, [&] {
      auto r = delta_rule_forward(spec, in, {}, form, opt);
      auto g = delta_rule_backward(spec, in, {}, d_o, {}, form, opt);
      if (!r.ok()) st = r.error();
      if (!g.ok()) st = g.error();
    }, chunk);
    LRNN_TRY(st);
    rows.push_back({f + " fwd+bwd", bms, chunk ? fwd + bwd : 3 * rec});
  }
  return {};
}

// variant: the window W (default 2048); H query heads sharing one key/value head (MQA), D = K.
status run_local(const options& o, std::vector<row>& rows, std::string& desc) {
  int64_t W = 2048;
  if (!o.variant.empty()) {
    try {
      W = std::stoll(o.variant);
    } catch (...) {
      return make_error(status_code::invalid_argument, "bench local_attn: variant '{}' must be the window size", o.variant);
    }
  }
  const int64_t B = o.B, T = o.T, H = o.H, D = o.K;
  local_attn_spec spec;
  spec.window = W, spec.rotary_fraction = 0.5;
  local_attn_inputs in;
  in.q = random_tensor({B, T, H, D}, 1, -1, 1);
  in.k = random_tensor({B, T, 1, D}, 2, -1, 1);
  in.v = random_tensor({B, T, 1, D}, 3, -1, 1);
  desc = fmt::format("B={} T={} Hq={} Hkv=1 D={} window={} f32", B, T, H, D, W);
  double keys = 0;
  for (int64_t t = 0; t < T; ++t) keys += static_cast<double>(std::min(t, W) + 1);
  const double fwd = static_cast<double>(B * H) * keys * 4 * static_cast<double>(D);
  const tensor d_o = random_tensor({B, T, H, D}, 7, -1, 1);
  status st;
  const double ms = time_ms(o.repeats, [&] {
    auto r = local_attn_forward(spec, in, {}, local_attn_form::parallel);
    if (!r.ok()) st = r.error();
  });
  LRNN_TRY(st);
  rows.push_back({"parallel fwd", ms, fwd});
  const double bms = time_ms(o.repeats, [&] {
    auto r = local_attn_forward(spec, in, {}, local_attn_form::parallel);
    auto g = local_attn_backward(spec, in, {}, d_o, {}, local_attn_form::parallel);
    if (!r.ok()) st = r.error();
    if (!g.ok()) st = g.error();
  });
  LRNN_TRY(st);
  rows.push_back({"parallel fwd+bwd", bms, 3.5 * fwd});
  return {};
}
}  // namespace

LRNN_BENCH_OP(delta_rule, "delta_rule", run_delta);
LRNN_BENCH_OP(local_attn, "local_attn", run_local);

}  // namespace lrnn::cli::bench
