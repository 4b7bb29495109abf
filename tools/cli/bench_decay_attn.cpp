// `lrnn bench op decay_attn`: times the recurrent, parallel and chunk forms (forward, and
// forward + backward for chunk) on f32 inputs of one spec variant. FLOPs counted are the chunk
// algorithm's matrix products (README.md of src/ops/decay_attn, "cost").
#include "bench.h"

#include "ops/decay_attn/decay_attn.h"

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

status run(const options& o, std::vector<row>& rows, std::string& desc) {
  const std::string var = o.variant.empty() ? "gla" : o.variant;
  decay_attn_spec spec;
  decay_attn_inputs in;
  const int64_t B = o.B, T = o.T, H = o.H, K = o.K, V = o.V;
  in.q = random_tensor({B, T, H, K}, 1, -1, 1);
  in.k = random_tensor({B, T, H, K}, 2, -1, 1);
  in.v = random_tensor({B, T, H, V}, 3, -1, 1);
  if (var == "retnet") {
    spec.decay = decay_kind::per_head_const;
    in.g = random_tensor({H}, 4, -0.1, -0.001);
  } else if (var == "simple_gla") {
    spec.decay = decay_kind::per_token_scalar;
    in.g = random_tensor({B, T, H}, 4, -1, 0);
  } else if (var == "gla" || var == "rwkv6") {
    spec.decay = decay_kind::per_token_key;
    in.g = random_tensor({B, T, H, K}, 4, -1, 0);
    if (var == "rwkv6") {
      spec.bonus = true, spec.scale = 1.0;
      in.u = random_tensor({H, K}, 5, -0.5, 0.5);
    }
  } else if (var == "mlstm" || var == "mlstm_sig") {
    spec.decay = decay_kind::per_token_scalar;
    spec.normalizer = true;
    spec.input_gate = var == "mlstm" ? input_gate_kind::exponential : input_gate_kind::sigmoid;
    in.g = random_tensor({B, T, H}, 4, -0.5, 0);
    in.i = random_tensor({B, T, H}, 5, var == "mlstm" ? -2 : -1, var == "mlstm" ? 2 : 0);
  } else {
    return make_error(status_code::invalid_argument, "bench decay_attn: unknown variant '{}' (retnet, simple_gla, gla, rwkv6, mlstm, mlstm_sig)", var);
  }
  desc = fmt::format("variant {} B={} T={} H={} K={} V={} chunk={} f32", var, B, T, H, K, V, o.chunk);
  decay_attn_options opt;
  opt.chunk_size = o.chunk;
  const tensor d_o = random_tensor({B, T, H, V}, 6, -1, 1);
  // Nominal FLOPs per (token, head) of the chunk algorithm with chunk C.
  const double C = static_cast<double>(std::min(o.chunk, T)), Kd = static_cast<double>(K), Vd = static_cast<double>(V);
  const double tokens = static_cast<double>(B * T * H);
  const double fwd = tokens * (2 * C * (Kd + Vd) + 4 * Kd * Vd);
  const double bwd = tokens * (2 * C * (3 * Kd + 2 * Vd) + 10 * Kd * Vd);
  const double rec = tokens * 4 * Kd * Vd;
  const std::vector<std::string> forms = o.forms.empty() ? std::vector<std::string>{"chunk", "recurrent"} : o.forms;
  for (const std::string& f : forms) {
    decay_attn_form form;
    if (f == "chunk") form = decay_attn_form::chunk;
    else if (f == "recurrent") form = decay_attn_form::recurrent;
    else if (f == "parallel") form = decay_attn_form::parallel;
    else return make_error(status_code::invalid_argument, "bench decay_attn: unknown form '{}' (chunk, recurrent, parallel)", f);
    status st;
    const int reps = form == decay_attn_form::chunk ? o.repeats : 1;
    const double ms = time_ms(reps, [&] {
      auto r = decay_attn_forward(spec, in, {}, form, opt);
      if (!r.ok()) st = r.error();
    }, form == decay_attn_form::chunk);
    LRNN_TRY(st);
    rows.push_back({f + " fwd", ms, form == decay_attn_form::chunk ? fwd : form == decay_attn_form::recurrent ? rec : 0});
    if (form == decay_attn_form::chunk) {
      const double bms = time_ms(reps, [&] {
        auto r = decay_attn_forward(spec, in, {}, form, opt);
        auto g = decay_attn_backward(spec, in, {}, d_o, {}, form, opt);
        if (!r.ok()) st = r.error();
        if (!g.ok()) st = g.error();
      });
      LRNN_TRY(st);
      rows.push_back({f + " fwd+bwd", bms, fwd + bwd});
    }
  }
  return {};
}
}  // namespace

LRNN_BENCH_OP(decay_attn, "decay_attn", run);

}  // namespace lrnn::cli::bench
