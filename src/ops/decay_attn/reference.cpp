// decay_attn reference: the definition (OPS.md section 1, README.md) as plain token loops, in
// double for f64 inputs and float otherwise (outputs rounded to the input dtype: the harness's
// naive low-precision baseline). Backward is backpropagation through time over stored states.
#include "ops/decay_attn/decay_attn.h"

#include <algorithm>
#include <cmath>

namespace lrnn::ops::detail {

namespace {

template <typename R>
struct ref_problem {
  int64_t N, H, K, V, Vp;
  std::vector<int64_t> offsets;
  std::vector<R> q, k, v, g, i, u, s0, n0, m0;  // flattened, as given
  R scale, eps;
  decay_kind decay;
  input_gate_kind gate;
  bool bonus, normalizer, has_init;
};

template <typename R>
std::vector<R> values(const tensor& t) {
  std::vector<R> out;
  if (!t.defined()) return out;
  const auto d = t.to_doubles();
  out.reserve(d.size());
  for (double x : d) out.push_back(static_cast<R>(x));
  return out;
}

template <typename R>
ref_problem<R> make_problem(const decay_attn_spec& spec, const decay_attn_inputs& in, const decay_attn_state& init) {
  ref_problem<R> p;
  const int64_t B = in.q.size(0), T = in.q.size(1);
  p.H = in.q.size(2), p.K = in.q.size(3), p.V = in.v.size(3);
  p.Vp = p.V + (spec.normalizer ? 1 : 0);
  if (in.cu_seqlens.defined()) {
    for (double x : in.cu_seqlens.to_doubles()) p.offsets.push_back(static_cast<int64_t>(x));
  } else {
    for (int64_t b = 0; b <= B; ++b) p.offsets.push_back(b * T);
  }
  p.N = static_cast<int64_t>(p.offsets.size()) - 1;
  p.q = values<R>(in.q), p.k = values<R>(in.k), p.v = values<R>(in.v);
  p.g = values<R>(in.g), p.i = values<R>(in.i), p.u = values<R>(in.u);
  p.s0 = values<R>(init.s), p.n0 = values<R>(init.n), p.m0 = values<R>(init.m);
  p.has_init = init.s.defined();
  p.scale = static_cast<R>(spec.scale > 0 ? spec.scale : 1.0 / std::sqrt(static_cast<double>(p.K)));
  p.eps = static_cast<R>(spec.eps);
  p.decay = spec.decay, p.gate = spec.input_gate, p.bonus = spec.bonus, p.normalizer = spec.normalizer;
  return p;
}

// Per-token gates of (t, h): alpha (log) per key, beta (log), and the stabiliser update.
template <typename R>
struct token_gates {
  std::vector<R> log_alpha;  // [K]
  R log_beta = 0, m = 0, gs = 0;
};

template <typename R>
void gates_at(const ref_problem<R>& p, int64_t t, int64_t h, R m_prev, token_gates<R>& tg) {
  const int64_t H = p.H, K = p.K;
  tg.log_alpha.assign(K, R(0));
  R gs = 0;
  switch (p.decay) {
    case decay_kind::none: break;
    case decay_kind::per_head_const: gs = p.g[h]; break;
    case decay_kind::per_token_scalar: gs = p.g[t * H + h]; break;
    case decay_kind::per_token_key:
      for (int64_t d = 0; d < K; ++d) tg.log_alpha[d] = p.g[(t * H + h) * K + d];
      break;
  }
  if (p.decay != decay_kind::per_token_key) std::fill(tg.log_alpha.begin(), tg.log_alpha.end(), gs);
  tg.gs = gs;
  tg.m = 0;
  switch (p.gate) {
    case input_gate_kind::none: tg.log_beta = 0; break;
    case input_gate_kind::sigmoid: tg.log_beta = p.i[t * H + h]; break;
    case input_gate_kind::exponential: {
      const R it = p.i[t * H + h];
      tg.m = std::max(gs + m_prev, it);
      std::fill(tg.log_alpha.begin(), tg.log_alpha.end(), gs + m_prev - tg.m);
      tg.log_beta = it - tg.m;
      break;
    }
  }
}

// The state after a token: S = Diag(alpha) S + beta k v'^T (v' = [v, 1] with the normaliser).
template <typename R>
void update(const ref_problem<R>& p, int64_t t, int64_t h, const token_gates<R>& tg, std::vector<R>& S) {
  const int64_t H = p.H, K = p.K, V = p.V, Vp = p.Vp;
  const R beta = std::exp(tg.log_beta);
  for (int64_t d = 0; d < K; ++d) {
    const R a = std::exp(tg.log_alpha[d]);
    const R kd = beta * p.k[(t * H + h) * K + d];
    for (int64_t j = 0; j < Vp; ++j) {
      const R vj = j < V ? p.v[(t * H + h) * V + j] : R(1);
      S[d * Vp + j] = a * S[d * Vp + j] + kd * vj;
    }
  }
}

// Raw readout [Vp] (numerator and normaliser) of token t from `S` (S_t, or S_{t-1} with the bonus).
template <typename R>
void readout(const ref_problem<R>& p, int64_t t, int64_t h, const std::vector<R>& S, std::vector<R>& raw) {
  const int64_t H = p.H, K = p.K, V = p.V, Vp = p.Vp;
  raw.assign(Vp, R(0));
  for (int64_t d = 0; d < K; ++d) {
    const R qd = p.scale * p.q[(t * H + h) * K + d];
    for (int64_t j = 0; j < Vp; ++j) raw[j] += qd * S[d * Vp + j];
  }
  if (p.bonus) {
    R c = 0;
    for (int64_t d = 0; d < K; ++d) c += p.scale * p.q[(t * H + h) * K + d] * p.u[h * K + d] * p.k[(t * H + h) * K + d];
    for (int64_t j = 0; j < V; ++j) raw[j] += c * p.v[(t * H + h) * V + j];
  }
}

template <typename R>
R floor_of(const ref_problem<R>& p, R m) {
  return p.gate == input_gate_kind::exponential ? std::exp(-m) : R(1);
}

template <typename R>
void init_state(const ref_problem<R>& p, int64_t n, int64_t h, std::vector<R>& S, R& m) {
  const int64_t K = p.K, V = p.V, Vp = p.Vp, H = p.H;
  S.assign(K * Vp, R(0));
  m = 0;
  if (!p.has_init) return;
  for (int64_t d = 0; d < K; ++d) {
    for (int64_t j = 0; j < V; ++j) S[d * Vp + j] = p.s0[((n * H + h) * K + d) * V + j];
    if (p.normalizer) S[d * Vp + V] = p.n0[(n * H + h) * K + d];
  }
  if (p.gate == input_gate_kind::exponential) m = p.m0[n * H + h];
}

template <typename R>
tensor make(const std::vector<R>& v, const shape_t& shape, dtype t) {
  std::vector<double> d(v.begin(), v.end());
  return tensor::from_doubles(d, shape, t);
}

template <typename R>
decay_attn_output forward(const ref_problem<R>& p, const decay_attn_inputs& in, bool final_state) {
  const int64_t H = p.H, K = p.K, V = p.V, Vp = p.Vp, N = p.N;
  std::vector<R> o(p.v.size()), sT(N * H * K * V), nT(N * H * K), mT(N * H);
  std::vector<R> S, raw;
  token_gates<R> tg;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h) {
      R m;
      init_state(p, n, h, S, m);
      for (int64_t t = p.offsets[n]; t < p.offsets[n + 1]; ++t) {
        gates_at(p, t, h, m, tg);
        if (p.bonus) readout(p, t, h, S, raw);
        update(p, t, h, tg, S);
        if (!p.bonus) readout(p, t, h, S, raw);
        m = tg.m;
        const R den = p.normalizer ? std::max(std::fabs(raw[V]), floor_of(p, m)) + p.eps : R(1);
        for (int64_t j = 0; j < V; ++j) o[(t * H + h) * V + j] = raw[j] / den;
      }
      for (int64_t d = 0; d < K; ++d) {
        for (int64_t j = 0; j < V; ++j) sT[((n * H + h) * K + d) * V + j] = S[d * Vp + j];
        if (p.normalizer) nT[(n * H + h) * K + d] = S[d * Vp + V];
      }
      mT[n * H + h] = m;
    }
  decay_attn_output out;
  out.o = make(o, in.v.shape(), in.q.type());
  if (final_state) {
    const dtype st = in.q.type() == dtype::f64 ? dtype::f64 : dtype::f32;
    out.final_state.s = make(sT, {N, H, K, V}, st);
    if (p.normalizer) out.final_state.n = make(nT, {N, H, K}, st);
    if (p.gate == input_gate_kind::exponential) out.final_state.m = make(mT, {N, H}, st);
  }
  return out;
}

template <typename R>
decay_attn_grads backward(const ref_problem<R>& p, const decay_attn_inputs& in, const tensor& d_o,
                          const decay_attn_state& d_final) {
  const int64_t H = p.H, K = p.K, V = p.V, Vp = p.Vp, N = p.N;
  const std::vector<R> dO = values<R>(d_o), dsT = values<R>(d_final.s), dnT = values<R>(d_final.n),
                       dmT = values<R>(d_final.m);
  std::vector<R> dq(p.q.size(), R(0)), dk(p.k.size(), R(0)), dv(p.v.size(), R(0));
  std::vector<R> dg(p.g.size(), R(0)), di(p.i.size(), R(0)), du(p.u.size(), R(0));
  std::vector<R> ds0(p.s0.size(), R(0)), dn0(p.n0.size(), R(0)), dm0(p.m0.size(), R(0));
  std::vector<R> raw, draw(Vp), dS(K * Vp), dlog_alpha(K);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t t0 = p.offsets[n], L = p.offsets[n + 1] - t0;
      // Forward, keeping every state S_0 .. S_L and the gates.
      std::vector<std::vector<R>> states(L + 1);
      std::vector<token_gates<R>> gates(L);
      std::vector<R> ms(L + 1);
      init_state(p, n, h, states[0], ms[0]);
      for (int64_t s = 0; s < L; ++s) {
        gates_at(p, t0 + s, h, ms[s], gates[s]);
        states[s + 1] = states[s];
        update(p, t0 + s, h, gates[s], states[s + 1]);
        ms[s + 1] = p.gate == input_gate_kind::exponential ? gates[s].m : ms[s];
      }
      std::fill(dS.begin(), dS.end(), R(0));
      for (int64_t d = 0; d < K; ++d) {
        for (int64_t j = 0; j < V && !dsT.empty(); ++j) dS[d * Vp + j] = dsT[((n * H + h) * K + d) * V + j];
        if (p.normalizer && !dnT.empty()) dS[d * Vp + V] = dnT[(n * H + h) * K + d];
      }
      R carry = dmT.empty() ? R(0) : dmT[n * H + h];
      for (int64_t s = L - 1; s >= 0; --s) {
        const int64_t t = t0 + s;
        const std::vector<R>& Sprev = states[s];
        const std::vector<R>& Scur = states[s + 1];
        const token_gates<R>& tg = gates[s];
        readout(p, t, h, p.bonus ? Sprev : Scur, raw);
        // Gradient of the raw readout (through the normalised division).
        R dm_local = 0;
        if (p.normalizer) {
          const R fl = floor_of(p, ms[s + 1]);
          const R den = std::max(std::fabs(raw[V]), fl) + p.eps;
          R hd = 0;
          for (int64_t j = 0; j < V; ++j) {
            draw[j] = dO[(t * H + h) * V + j] / den;
            hd += raw[j] / den * dO[(t * H + h) * V + j];
          }
          if (std::fabs(raw[V]) > fl) {
            draw[V] = (raw[V] > 0 ? -hd : hd) / den;
          } else {
            draw[V] = 0;
            if (p.gate == input_gate_kind::exponential) dm_local = hd / den * fl;
          }
        } else {
          for (int64_t j = 0; j < V; ++j) draw[j] = dO[(t * H + h) * V + j];
        }
        const R* qt = p.q.data() + (t * H + h) * K;
        const R* kt = p.k.data() + (t * H + h) * K;
        const R* vt = p.v.data() + (t * H + h) * V;
        const std::vector<R>& Sread = p.bonus ? Sprev : Scur;
        for (int64_t d = 0; d < K; ++d) {
          R s2 = 0;
          for (int64_t j = 0; j < Vp; ++j) s2 += Sread[d * Vp + j] * draw[j];
          dq[(t * H + h) * K + d] += p.scale * s2;
        }
        if (p.bonus) {
          R c = 0, rho = 0;
          for (int64_t d = 0; d < K; ++d) c += p.scale * qt[d] * p.u[h * K + d] * kt[d];
          for (int64_t j = 0; j < V; ++j) rho += vt[j] * draw[j];
          for (int64_t d = 0; d < K; ++d) {
            dq[(t * H + h) * K + d] += p.scale * p.u[h * K + d] * kt[d] * rho;
            dk[(t * H + h) * K + d] += p.scale * p.u[h * K + d] * qt[d] * rho;
            du[h * K + d] += p.scale * qt[d] * kt[d] * rho;
          }
          for (int64_t j = 0; j < V; ++j) dv[(t * H + h) * V + j] += c * draw[j];
        } else {
          for (int64_t d = 0; d < K; ++d)
            for (int64_t j = 0; j < Vp; ++j) dS[d * Vp + j] += p.scale * qt[d] * draw[j];
        }
        // Through S_t = Diag(alpha) S_{t-1} + beta k v'^T.
        const R beta = std::exp(tg.log_beta);
        R dlog_beta = 0;
        for (int64_t d = 0; d < K; ++d) {
          R s2 = 0, sa = 0;
          for (int64_t j = 0; j < Vp; ++j) {
            const R vj = j < V ? vt[j] : R(1);
            s2 += dS[d * Vp + j] * vj;
            if (j < V) dv[(t * H + h) * V + j] += beta * kt[d] * dS[d * Vp + j];
            sa += dS[d * Vp + j] * Sprev[d * Vp + j];
          }
          dk[(t * H + h) * K + d] += beta * s2;
          dlog_beta += beta * s2 * kt[d];
          const R a = std::exp(tg.log_alpha[d]);
          dlog_alpha[d] = a * sa;
          for (int64_t j = 0; j < Vp; ++j) dS[d * Vp + j] *= a;
        }
        if (p.bonus)
          for (int64_t d = 0; d < K; ++d)
            for (int64_t j = 0; j < V; ++j) dS[d * Vp + j] += p.scale * qt[d] * draw[j];
        R dla = 0;
        for (int64_t d = 0; d < K; ++d) dla += dlog_alpha[d];
        R dgs = dla, dit = dlog_beta;
        if (p.gate == input_gate_kind::exponential) {
          const R dm = carry + dm_local - dla - dlog_beta;
          carry = dla;
          if (tg.gs + ms[s] >= p.i[t * H + h]) {
            dgs += dm;
            carry += dm;
          } else {
            dit += dm;
          }
        }
        switch (p.decay) {
          case decay_kind::none: break;
          case decay_kind::per_head_const: dg[h] += dgs; break;
          case decay_kind::per_token_scalar: dg[t * H + h] += dgs; break;
          case decay_kind::per_token_key:
            for (int64_t d = 0; d < K; ++d) dg[(t * H + h) * K + d] += dlog_alpha[d];
            break;
        }
        if (p.gate != input_gate_kind::none) di[t * H + h] += dit;
      }
      if (p.has_init) {
        for (int64_t d = 0; d < K; ++d) {
          for (int64_t j = 0; j < V; ++j) ds0[((n * H + h) * K + d) * V + j] = dS[d * Vp + j];
          if (p.normalizer) dn0[(n * H + h) * K + d] = dS[d * Vp + V];
        }
        if (p.gate == input_gate_kind::exponential) dm0[n * H + h] = carry;
      }
    }
  decay_attn_grads gr;
  const dtype st = in.q.type() == dtype::f64 ? dtype::f64 : dtype::f32;
  gr.dq = make(dq, in.q.shape(), in.q.type());
  gr.dk = make(dk, in.k.shape(), in.k.type());
  gr.dv = make(dv, in.v.shape(), in.v.type());
  if (p.decay != decay_kind::none) gr.dg = make(dg, in.g.shape(), st);
  if (p.gate != input_gate_kind::none) gr.di = make(di, in.i.shape(), st);
  if (p.bonus) gr.du = make(du, in.u.shape(), st);
  if (p.has_init) {
    gr.d_initial_state.s = make(ds0, {N, H, K, V}, st);
    if (p.normalizer) gr.d_initial_state.n = make(dn0, {N, H, K}, st);
    if (p.gate == input_gate_kind::exponential) gr.d_initial_state.m = make(dm0, {N, H}, st);
  }
  return gr;
}

}  // namespace

result<decay_attn_output> decay_attn_forward_reference(const decay_attn_spec& spec, const decay_attn_inputs& in,
                                                       const decay_attn_state& init, bool output_final_state) {
  if (in.q.type() == dtype::f64) return forward(make_problem<double>(spec, in, init), in, output_final_state);
  return forward(make_problem<float>(spec, in, init), in, output_final_state);
}

result<decay_attn_grads> decay_attn_backward_reference(const decay_attn_spec& spec, const decay_attn_inputs& in,
                                                       const decay_attn_state& init, const tensor& d_o,
                                                       const decay_attn_state& d_final) {
  if (in.q.type() == dtype::f64) return backward(make_problem<double>(spec, in, init), in, d_o, d_final);
  return backward(make_problem<float>(spec, in, init), in, d_o, d_final);
}

}  // namespace lrnn::ops::detail
