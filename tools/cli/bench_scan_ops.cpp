// `lrnn bench op wkv4 | linear_scan | conv1d`: the channel-wise, memory-bound ops on f32 inputs
// [B, T, C] with C = H * K of the bench options. Each row counts the bytes the op must read and
// write (inputs, outputs, upstream gradients, input gradients), reported as GB/s against a
// memcpy measured in the same run (bench_command.cpp).
#include "bench.h"

#include "ops/conv1d/conv1d.h"
#include "ops/linear_scan/linear_scan.h"
#include "ops/wkv4/wkv4.h"

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

// Runs f, keeping the first error.
status timed(int repeats, const std::function<status()>& f, double& ms) {
  status first;
  ms = time_ms(repeats, [&] {
    const status s = f();
    if (first.ok() && !s.ok()) first = s;
  });
  return first;
}

std::vector<std::string> forms_or(const options& o, std::vector<std::string> d) { return o.forms.empty() ? d : o.forms; }

status run_wkv4(const options& o, std::vector<row>& rows, std::string& desc) {
  const int64_t B = o.B, T = o.T, C = o.H * o.K;
  const double n = static_cast<double>(B * T * C);
  desc = fmt::format("B={} T={} C={} (H*K) chunk={} f32", B, T, C, o.chunk);
  wkv4_inputs in{random_tensor({B, T, C}, 1, -3, 3), random_tensor({B, T, C}, 2, -1, 1), random_tensor({C}, 3, -3, 1),
                 random_tensor({C}, 4, -1, 1), tensor()};
  const tensor dy = random_tensor({B, T, C}, 5, -1, 1);
  wkv4_options opt;
  opt.chunk_size = o.chunk;
  for (const std::string& f : forms_or(o, {"recurrent", "chunk"})) {
    wkv4_form form;
    if (f == "recurrent") form = wkv4_form::recurrent;
    else if (f == "chunk") form = wkv4_form::chunk;
    else if (f == "reference") form = wkv4_form::reference;
    else return make_error(status_code::invalid_argument, "bench wkv4: unknown form '{}' (recurrent, chunk, reference)", f);
    double ms = 0;
    LRNN_TRY(timed(o.repeats, [&] { return wkv4_forward(in, {}, form, opt).get_status(); }, ms));
    rows.push_back({f + " fwd", ms, 0, 12 * n});  // read k, v; write y
    LRNN_TRY(timed(o.repeats, [&] {
      LRNN_ASSIGN_OR_RETURN(auto out, wkv4_forward(in, {}, form, opt));
      return wkv4_backward(in, {}, dy, {}, form, opt).get_status();
    }, ms));
    rows.push_back({f + " fwd+bwd", ms, 0, (12 + 20) * n});  // + read k, v, dy; write dk, dv
  }
  return {};
}

status run_linear_scan(const options& o, std::vector<row>& rows, std::string& desc) {
  const int64_t B = o.B, T = o.T, C = o.H * o.K;
  const double n = static_cast<double>(B * T * C);
  const std::string var = o.variant.empty() ? "rg_lru" : o.variant;
  linear_scan_spec spec;
  linear_scan_inputs in;
  in.x = random_tensor({B, T, C}, 1, -1, 1);
  double fwd_bytes = 0, bwd_bytes = 0;
  if (var == "rg_lru") {
    in.gate_x = random_tensor({B, T, C}, 2, -3, 3);
    in.gate_a = random_tensor({B, T, C}, 3, -3, 3);
    in.a_param = random_tensor({C}, 4, -2, 4);
    fwd_bytes = 16 * n, bwd_bytes = 28 * n;  // read x, gate_x, gate_a (+ dy); write y (dx, dgate_x, dgate_a)
  } else if (var == "log_a") {
    spec.gate = scan_gate::log_a;
    in.log_a = random_tensor({B, T, C}, 2, -1, 0);
    fwd_bytes = 12 * n, bwd_bytes = 20 * n;
  } else {
    return make_error(status_code::invalid_argument, "bench linear_scan: unknown variant '{}' (rg_lru, log_a)", var);
  }
  desc = fmt::format("variant {} B={} T={} C={} (H*K) chunk={} f32", var, B, T, C, o.chunk);
  const tensor dy = random_tensor({B, T, C}, 5, -1, 1);
  linear_scan_options opt;
  opt.chunk_size = o.chunk;
  for (const std::string& f : forms_or(o, {"recurrent", "scan"})) {
    linear_scan_form form;
    if (f == "recurrent") form = linear_scan_form::recurrent;
    else if (f == "scan") form = linear_scan_form::scan;
    else if (f == "reference") form = linear_scan_form::reference;
    else return make_error(status_code::invalid_argument, "bench linear_scan: unknown form '{}' (recurrent, scan, reference)", f);
    double ms = 0;
    LRNN_TRY(timed(o.repeats, [&] { return linear_scan_forward(spec, in, tensor(), form, opt).get_status(); }, ms));
    rows.push_back({f + " fwd", ms, 0, fwd_bytes});
    LRNN_TRY(timed(o.repeats, [&] {
      LRNN_ASSIGN_OR_RETURN(auto out, linear_scan_forward(spec, in, tensor(), form, opt));
      return linear_scan_backward(spec, in, tensor(), dy, tensor(), form, opt).get_status();
    }, ms));
    rows.push_back({f + " fwd+bwd", ms, 0, fwd_bytes + bwd_bytes});
  }
  return {};
}

status run_conv1d(const options& o, std::vector<row>& rows, std::string& desc) {
  const int64_t B = o.B, T = o.T, C = o.H * o.K, W = 4;
  const double n = static_cast<double>(B * T * C);
  const std::string var = o.variant.empty() ? "none" : o.variant;
  conv1d_spec spec;
  if (var == "silu") spec.activation = conv1d_activation::silu;
  else if (var != "none") return make_error(status_code::invalid_argument, "bench conv1d: unknown variant '{}' (none, silu)", var);
  desc = fmt::format("activation {} B={} T={} C={} (H*K) W={} f32", var, B, T, C, W);
  const conv1d_inputs in{random_tensor({B, T, C}, 1, -1, 1), random_tensor({W, C}, 2, -1, 1), random_tensor({C}, 3, -1, 1),
                         tensor(), tensor()};
  const tensor dy = random_tensor({B, T, C}, 5, -1, 1);
  for (const std::string& f : forms_or(o, {"cpu"})) {
    conv1d_form form;
    if (f == "cpu") form = conv1d_form::cpu;
    else if (f == "reference") form = conv1d_form::reference;
    else return make_error(status_code::invalid_argument, "bench conv1d: unknown form '{}' (cpu, reference)", f);
    double ms = 0;
    LRNN_TRY(timed(o.repeats, [&] { return conv1d_forward(spec, in, tensor(), form).get_status(); }, ms));
    rows.push_back({f + " fwd", ms, 0, 8 * n});  // read x; write y
    LRNN_TRY(timed(o.repeats, [&] {
      LRNN_ASSIGN_OR_RETURN(auto out, conv1d_forward(spec, in, tensor(), form));
      return conv1d_backward(spec, in, tensor(), dy, tensor(), form).get_status();
    }, ms));
    rows.push_back({f + " fwd+bwd", ms, 0, (8 + 12) * n});  // + read x, dy; write dx
  }
  return {};
}

}  // namespace

LRNN_BENCH_OP(wkv4, "wkv4", run_wkv4);
LRNN_BENCH_OP(linear_scan, "linear_scan", run_linear_scan);
LRNN_BENCH_OP(conv1d, "conv1d", run_conv1d);

}  // namespace lrnn::cli::bench
