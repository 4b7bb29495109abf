// local_attn: validation (messages name the tensor and the expected shape), the key list of each
// sequence (ring-buffer cache + new tokens, RoPE applied), the cache update, the mapping of key
// gradients back through RoPE and the cache, and dispatch to the reference or the parallel form.
#include "ops/local_attn/common.h"

#include "ops/common/seq_util.h"

#include <algorithm>

namespace lrnn::ops {

const char* local_attn_form_name(local_attn_form f) {
  switch (f) {
    case local_attn_form::reference: return "reference";
    case local_attn_form::parallel: return "parallel";
  }
  return "?";
}

namespace local_detail {

namespace {
constexpr const char* op = "local_attn";

std::vector<int64_t> int_values(const tensor& t) {
  std::vector<int64_t> r;
  if (!t.defined()) return r;
  for (double x : t.to_doubles()) r.push_back(static_cast<int64_t>(x));
  return r;
}

status expect_int(const char* name, const tensor& t, const shape_t& want, const char* why) {
  if (t.shape() != want || (t.type() != dtype::i32 && t.type() != dtype::i64) || !t.dev().is_cpu())
    return make_error(status_code::invalid_argument, "local_attn: {} is {}, expected int32/int64 {} on the CPU ({})", name, t.describe(),
                      shape_to_string(want), why);
  return {};
}
}  // namespace

template <typename A>
status build(const local_attn_spec& spec, const local_attn_inputs& in, const local_attn_state& init, problem<A>& p) {
  using seq_util::expect_float;
  if (!in.q.defined() || in.q.dim() != 4)
    return make_error(status_code::invalid_argument, "local_attn: q is {}, expected [B, T, Hq, D]", in.q.defined() ? in.q.describe() : "missing");
  const int64_t B = in.q.size(0), T = in.q.size(1);
  p.Hq = in.q.size(2), p.D = in.q.size(3);
  LRNN_TRY(expect_float(op, "q", in.q, in.q.shape(), "[B, T, Hq, D]"));
  if (!in.k.defined() || in.k.dim() != 4 || in.k.size(0) != B || in.k.size(1) != T || in.k.size(3) != p.D)
    return make_error(status_code::invalid_argument, "local_attn: k is {}, expected [{}, {}, Hkv, {}] (B, T, D of q)",
                      in.k.defined() ? in.k.describe() : "missing", B, T, p.D);
  p.Hkv = in.k.size(2);
  LRNN_TRY(expect_float(op, "k", in.k, in.k.shape(), "[B, T, Hkv, D]"));
  if (p.Hkv < 1 || p.Hq % p.Hkv != 0)
    return make_error(status_code::invalid_argument, "local_attn: k has {} heads, expected a divisor of the {} query heads", p.Hkv, p.Hq);
  if (!in.v.defined() || in.v.dim() != 4 || in.v.size(0) != B || in.v.size(1) != T || in.v.size(2) != p.Hkv)
    return make_error(status_code::invalid_argument, "local_attn: v is {}, expected [{}, {}, {}, Dv] (B, T, Hkv of k)",
                      in.v.defined() ? in.v.describe() : "missing", B, T, p.Hkv);
  p.Dv = in.v.size(3);
  LRNN_TRY(expect_float(op, "v", in.v, in.v.shape(), "[B, T, Hkv, Dv]"));
  if (spec.window < 1) return make_error(status_code::invalid_argument, "local_attn: window {} must be >= 1", spec.window);
  if (spec.rope != rope_kind::none && !(spec.rotary_fraction > 0 && spec.rotary_fraction <= 1))
    return make_error(status_code::invalid_argument, "local_attn: rotary_fraction {} must be in (0, 1]", spec.rotary_fraction);
  p.W = spec.window;
  p.rope = spec.rope;
  p.R = spec.rope == rope_kind::none ? 0 : (static_cast<int64_t>(static_cast<double>(p.D) * spec.rotary_fraction) / 2) * 2;
  p.scale = static_cast<A>(spec.scale > 0 ? spec.scale : 1.0 / std::sqrt(static_cast<double>(p.D)));
  LRNN_ASSIGN_OR_RETURN(p.offsets, seq_util::sequence_offsets(op, in.cu_seqlens, B, T));
  p.N = static_cast<int64_t>(p.offsets.size()) - 1;
  p.tokens = B * T;
  if (in.positions.defined()) LRNN_TRY(expect_int("positions", in.positions, {B, T}, "[B, T], the position of each token in its document"));
  const bool cached = init.k_cache.defined();
  if (cached) {
    LRNN_TRY(expect_float(op, "initial state k_cache", init.k_cache, {p.N, p.W, p.Hkv, p.D}, "[N, W, Hkv, D]"));
    LRNN_TRY(expect_float(op, "initial state v_cache", init.v_cache, {p.N, p.W, p.Hkv, p.Dv}, "[N, W, Hkv, Dv]"));
    if (!init.count.defined()) return make_error(status_code::invalid_argument, "local_attn: initial state count is missing, expected int64 [{}]", p.N);
    LRNN_TRY(expect_int("initial state count", init.count, {p.N}, "[N], tokens seen"));
    if (init.start.defined()) LRNN_TRY(expect_int("initial state start", init.start, {p.N}, "[N], document start"));
  } else if (init.v_cache.defined() || init.count.defined()) {
    return make_error(status_code::invalid_argument, "local_attn: initial state v_cache or count given without k_cache");
  }
  const auto count = int_values(init.count), start = int_values(init.start), pos = int_values(in.positions);
  for (int64_t n = 0; n < p.N; ++n)
    if (cached && (count[n] < 0 || (!start.empty() && (start[n] < 0 || start[n] > count[n]))))
      return make_error(status_code::invalid_argument, "local_attn: initial state of sequence {} has count {} and start {}; expected 0 <= start <= count",
                        n, count[n], start.empty() ? 0 : start[n]);
  std::vector<A> qb, kb, vb, kcb, vcb;
  const A* q = seq_util::load_as<A>(in.q, qb);
  const A* k = seq_util::load_as<A>(in.k, kb);
  const A* v = seq_util::load_as<A>(in.v, vb);
  const A* kc = seq_util::load_as<A>(init.k_cache, kcb);
  const A* vc = seq_util::load_as<A>(init.v_cache, vcb);
  const int64_t Hkv = p.Hkv, D = p.D, Dv = p.Dv, W = p.W, half = p.R / 2;
  p.count.resize(p.N), p.ncache.resize(p.N), p.key0.resize(p.N), p.seg_final.resize(p.N);
  p.rows = 0;
  for (int64_t n = 0; n < p.N; ++n) {
    p.count[n] = cached ? count[n] : 0;
    p.ncache[n] = std::min(p.count[n], W);
    p.key0[n] = p.rows;
    p.rows += p.ncache[n] + p.offsets[n + 1] - p.offsets[n];
  }
  p.keys.assign(p.rows * Hkv * D, A(0));
  p.vals.assign(p.rows * Hkv * Dv, A(0));
  p.q.assign(q, q + p.tokens * p.Hq * D);
  p.lo.resize(p.tokens), p.self.resize(p.tokens);
  p.cs.resize(p.tokens * half), p.sn.resize(p.tokens * half);
  std::vector<double> inv_freq(half);
  for (int64_t m = 0; m < half; ++m) inv_freq[m] = std::pow(spec.max_wavelength, -2.0 * static_cast<double>(m) / static_cast<double>(p.R));
  for (int64_t n = 0; n < p.N; ++n) {
    const int64_t c = p.count[n], nc = p.ncache[n], base = c - nc;  // absolute index of key row key0[n]
    for (int64_t e = 0; e < nc; ++e) {
      const int64_t slot = (base + e) % W, row = p.key0[n] + e;
      std::copy(kc + ((n * W + slot) * Hkv) * D, kc + ((n * W + slot + 1) * Hkv) * D, p.keys.begin() + row * Hkv * D);
      std::copy(vc + ((n * W + slot) * Hkv) * Dv, vc + ((n * W + slot + 1) * Hkv) * Dv, p.vals.begin() + row * Hkv * Dv);
    }
    int64_t seg = cached && !start.empty() ? start[n] : 0;
    for (int64_t t = p.offsets[n]; t < p.offsets[n + 1]; ++t) {
      const int64_t abs = c + t - p.offsets[n], row = p.key0[n] + nc + t - p.offsets[n];
      const int64_t ps = pos.empty() ? abs : pos[t];
      if (!pos.empty() && ps == 0) seg = abs;
      p.lo[t] = p.key0[n] + std::max(seg, abs - W) - base;
      p.self[t] = row;
      for (int64_t m = 0; m < half; ++m) {
        const double ang = static_cast<double>(ps) * inv_freq[m];
        p.cs[t * half + m] = static_cast<A>(std::cos(ang));
        p.sn[t * half + m] = static_cast<A>(std::sin(ang));
      }
      std::copy(k + t * Hkv * D, k + (t + 1) * Hkv * D, p.keys.begin() + row * Hkv * D);
      std::copy(v + t * Hkv * Dv, v + (t + 1) * Hkv * Dv, p.vals.begin() + row * Hkv * Dv);
      if (half > 0) {
        for (int64_t h = 0; h < Hkv; ++h) rotate(p.rope, p.R, &p.cs[t * half], &p.sn[t * half], &p.keys[(row * Hkv + h) * D], false);
        for (int64_t h = 0; h < p.Hq; ++h) rotate(p.rope, p.R, &p.cs[t * half], &p.sn[t * half], &p.q[(t * p.Hq + h) * D], false);
      }
    }
    p.seg_final[n] = seg;
  }
  return {};
}

template status build<float>(const local_attn_spec&, const local_attn_inputs&, const local_attn_state&, problem<float>&);
template status build<double>(const local_attn_spec&, const local_attn_inputs&, const local_attn_state&, problem<double>&);

}  // namespace local_detail

namespace {

using local_detail::problem;

// Visits the final cache: f(n, slot, row) for every slot holding a token after the call.
template <typename A, typename F>
void for_final_slots(const problem<A>& p, F&& f) {
  for (int64_t n = 0; n < p.N; ++n) {
    const int64_t c = p.count[n], base = c - p.ncache[n], cf = c + p.offsets[n + 1] - p.offsets[n];
    for (int64_t a = std::max<int64_t>(0, cf - p.W); a < cf; ++a) f(n, a % p.W, p.key0[n] + a - base);
  }
}

template <typename A>
result<local_attn_output> forward_impl(const local_attn_spec& spec, const local_attn_inputs& in, const local_attn_state& init,
                                       local_attn_form form, const local_attn_options& opt) {
  problem<A> p;
  LRNN_TRY(local_detail::build(spec, in, init, p));
  std::vector<A> o(p.tokens * p.Hq * p.Dv);
  if (form == local_attn_form::reference) local_detail::attend_reference(p, o.data());
  else local_detail::attend_parallel(p, o.data());
  local_attn_output out;
  shape_t os = in.q.shape();
  os[3] = p.Dv;
  LRNN_ASSIGN_OR_RETURN(out.o, seq_util::tensor_from(o.data(), os, in.q.type()));
  if (opt.output_final_state) {
    const int64_t Hkv = p.Hkv, D = p.D, Dv = p.Dv, W = p.W;
    std::vector<A> kc(p.N * W * Hkv * D, A(0)), vc(p.N * W * Hkv * Dv, A(0));
    for_final_slots(p, [&](int64_t n, int64_t slot, int64_t row) {
      std::copy(&p.keys[row * Hkv * D], &p.keys[(row + 1) * Hkv * D], &kc[(n * W + slot) * Hkv * D]);
      std::copy(&p.vals[row * Hkv * Dv], &p.vals[(row + 1) * Hkv * Dv], &vc[(n * W + slot) * Hkv * Dv]);
    });
    LRNN_ASSIGN_OR_RETURN(out.final_state.k_cache, seq_util::tensor_from(kc.data(), {p.N, W, Hkv, D}, in.k.type()));
    LRNN_ASSIGN_OR_RETURN(out.final_state.v_cache, seq_util::tensor_from(vc.data(), {p.N, W, Hkv, Dv}, in.v.type()));
    std::vector<int64_t> cnt(p.N);
    for (int64_t n = 0; n < p.N; ++n) cnt[n] = p.count[n] + p.offsets[n + 1] - p.offsets[n];
    out.final_state.count = tensor::from_vector(cnt, {p.N}, dtype::i64);
    out.final_state.start = tensor::from_vector(p.seg_final, {p.N}, dtype::i64);
  }
  return out;
}

template <typename A>
result<local_attn_grads> backward_impl(const local_attn_spec& spec, const local_attn_inputs& in, const local_attn_state& init,
                                       const tensor& d_o_in, const local_attn_state& d_final, local_attn_form form) {
  problem<A> p;
  LRNN_TRY(local_detail::build(spec, in, init, p));
  const int64_t Hq = p.Hq, Hkv = p.Hkv, D = p.D, Dv = p.Dv, W = p.W, half = p.R / 2;
  shape_t os = in.q.shape();
  os[3] = Dv;
  LRNN_TRY(seq_util::expect_float("local_attn", "d_o", d_o_in, os, "the shape of o"));
  if (d_final.k_cache.defined()) LRNN_TRY(seq_util::expect_float("local_attn", "d_final_state k_cache", d_final.k_cache, {p.N, W, Hkv, D}, "[N, W, Hkv, D]"));
  if (d_final.v_cache.defined()) LRNN_TRY(seq_util::expect_float("local_attn", "d_final_state v_cache", d_final.v_cache, {p.N, W, Hkv, Dv}, "[N, W, Hkv, Dv]"));
  std::vector<A> dob, dkcb, dvcb;
  const A* d_o = seq_util::load_as<A>(d_o_in, dob);
  std::vector<A> dq(p.tokens * Hq * D, A(0)), dkeys(p.rows * Hkv * D, A(0)), dvals(p.rows * Hkv * Dv, A(0));
  if (form == local_attn_form::reference) local_detail::attend_reference_backward(p, d_o, dq.data(), dkeys.data(), dvals.data());
  else local_detail::attend_parallel_backward(p, d_o, dq.data(), dkeys.data(), dvals.data());
  const A* dkc = seq_util::load_as<A>(d_final.k_cache, dkcb);
  const A* dvc = seq_util::load_as<A>(d_final.v_cache, dvcb);
  for_final_slots(p, [&](int64_t n, int64_t slot, int64_t row) {
    if (dkc)
      for (int64_t x = 0; x < Hkv * D; ++x) dkeys[row * Hkv * D + x] += dkc[(n * W + slot) * Hkv * D + x];
    if (dvc)
      for (int64_t x = 0; x < Hkv * Dv; ++x) dvals[row * Hkv * Dv + x] += dvc[(n * W + slot) * Hkv * Dv + x];
  });
  std::vector<A> dk(p.tokens * Hkv * D), dv(p.tokens * Hkv * Dv);
  std::vector<A> dkc0(init.k_cache.defined() ? p.N * W * Hkv * D : 0, A(0)), dvc0(init.k_cache.defined() ? p.N * W * Hkv * Dv : 0, A(0));
  for (int64_t n = 0; n < p.N; ++n) {
    const int64_t base = p.count[n] - p.ncache[n];
    for (int64_t e = 0; e < p.ncache[n]; ++e) {
      const int64_t row = p.key0[n] + e, slot = (base + e) % W;
      std::copy(&dkeys[row * Hkv * D], &dkeys[(row + 1) * Hkv * D], &dkc0[(n * W + slot) * Hkv * D]);
      std::copy(&dvals[row * Hkv * Dv], &dvals[(row + 1) * Hkv * Dv], &dvc0[(n * W + slot) * Hkv * Dv]);
    }
  }
  for (int64_t t = 0; t < p.tokens; ++t) {
    const int64_t row = p.self[t];
    std::copy(&dkeys[row * Hkv * D], &dkeys[(row + 1) * Hkv * D], &dk[t * Hkv * D]);
    std::copy(&dvals[row * Hkv * Dv], &dvals[(row + 1) * Hkv * Dv], &dv[t * Hkv * Dv]);
    if (half > 0) {
      for (int64_t h = 0; h < Hkv; ++h) local_detail::rotate(p.rope, p.R, &p.cs[t * half], &p.sn[t * half], &dk[(t * Hkv + h) * D], true);
      for (int64_t h = 0; h < Hq; ++h) local_detail::rotate(p.rope, p.R, &p.cs[t * half], &p.sn[t * half], &dq[(t * Hq + h) * D], true);
    }
  }
  local_attn_grads g;
  LRNN_ASSIGN_OR_RETURN(g.dq, seq_util::tensor_from(dq.data(), in.q.shape(), in.q.type()));
  LRNN_ASSIGN_OR_RETURN(g.dk, seq_util::tensor_from(dk.data(), in.k.shape(), in.k.type()));
  LRNN_ASSIGN_OR_RETURN(g.dv, seq_util::tensor_from(dv.data(), in.v.shape(), in.v.type()));
  if (init.k_cache.defined()) {
    LRNN_ASSIGN_OR_RETURN(g.d_initial_state.k_cache, seq_util::tensor_from(dkc0.data(), init.k_cache.shape(), init.k_cache.type()));
    LRNN_ASSIGN_OR_RETURN(g.d_initial_state.v_cache, seq_util::tensor_from(dvc0.data(), init.v_cache.shape(), init.v_cache.type()));
  }
  return g;
}

}  // namespace

result<local_attn_output> local_attn_forward(const local_attn_spec& spec, const local_attn_inputs& in,
                                             const local_attn_state& init, local_attn_form form,
                                             const local_attn_options& opt) {
  if (in.q.defined() && in.q.type() == dtype::f64) return forward_impl<double>(spec, in, init, form, opt);
  return forward_impl<float>(spec, in, init, form, opt);
}

result<local_attn_grads> local_attn_backward(const local_attn_spec& spec, const local_attn_inputs& in,
                                             const local_attn_state& init, const tensor& d_o,
                                             const local_attn_state& d_final, local_attn_form form,
                                             const local_attn_options&) {
  if (in.q.defined() && in.q.type() == dtype::f64) return backward_impl<double>(spec, in, init, d_o, d_final, form);
  return backward_impl<float>(spec, in, init, d_o, d_final, form);
}

result<tensor> local_attn_step(const local_attn_spec& spec, const local_attn_inputs& token, local_attn_state& state) {
  if (!token.q.defined() || token.q.dim() != 3)
    return make_error(status_code::invalid_argument, "local_attn_step: q is {}, expected [B, Hq, D]", token.q.defined() ? token.q.describe() : "missing");
  const int64_t B = token.q.size(0);
  auto one_token = [B](const tensor& t) -> result<tensor> {
    if (!t.defined()) return t;
    shape_t s = t.shape();
    if (s.empty() || s[0] != B)
      return make_error(status_code::invalid_argument, "local_attn_step: {} expected to start with B = {}", t.describe(), B);
    s.insert(s.begin() + 1, 1);
    return t.reshape(s);
  };
  local_attn_inputs in;
  LRNN_ASSIGN_OR_RETURN(in.q, one_token(token.q));
  LRNN_ASSIGN_OR_RETURN(in.k, one_token(token.k));
  LRNN_ASSIGN_OR_RETURN(in.v, one_token(token.v));
  LRNN_ASSIGN_OR_RETURN(in.positions, one_token(token.positions));
  LRNN_ASSIGN_OR_RETURN(auto out, local_attn_forward(spec, in, state, local_attn_form::parallel));
  state = out.final_state;
  return out.o.reshape({B, out.o.size(2), out.o.size(3)});
}

}  // namespace lrnn::ops
