// delta_rule reference: the recurrences of OPS.md section 3 written out token by token, one
// (sequence, head) at a time, and their gradients by reverse-mode over stored states. Arithmetic
// in double for f64 inputs, float otherwise (the harness's naive low-precision baseline).
#include "ops/common/seq_util.h"
#include "ops/delta_rule/delta_rule.h"

#include <cmath>
#include <tuple>

namespace lrnn::ops::detail {

namespace {

using seq_util::load_as;
using seq_util::tensor_from;

template <typename A>
struct loaded {
  int64_t B = 0, T = 0, H = 0, K = 0, V = 0, N = 0, tokens = 0;
  std::vector<int64_t> offsets;
  std::vector<A> qb, kb, vb, betab, gb, wb, ab, bb, s0b;
  const A *q = nullptr, *k = nullptr, *v = nullptr, *beta = nullptr, *g = nullptr, *w = nullptr, *a = nullptr, *b = nullptr,
          *s0 = nullptr;
  std::vector<A> qn, kn, qr, kr;  // L2-normalised q, k and their 1 / norms (qk_l2norm)
  A scale = 1;
};

template <typename A>
void l2norm_rows(const A* x, int64_t rows, int64_t K, A eps, std::vector<A>& y, std::vector<A>& r) {
  y.resize(rows * K);
  r.resize(rows);
  for (int64_t i = 0; i < rows; ++i) {
    A ss = 0;
    for (int64_t d = 0; d < K; ++d) ss += x[i * K + d] * x[i * K + d];
    r[i] = A(1) / std::sqrt(ss + eps);
    for (int64_t d = 0; d < K; ++d) y[i * K + d] = x[i * K + d] * r[i];
  }
}

template <typename A>
result<loaded<A>> load(const delta_rule_spec& spec, const delta_rule_inputs& in, const delta_rule_state& init) {
  loaded<A> L;
  L.B = in.q.size(0), L.T = in.q.size(1), L.H = in.q.size(2), L.K = in.q.size(3), L.V = in.v.size(3);
  LRNN_ASSIGN_OR_RETURN(L.offsets, seq_util::sequence_offsets("delta_rule", in.cu_seqlens, L.B, L.T));
  L.N = static_cast<int64_t>(L.offsets.size()) - 1;
  L.tokens = L.B * L.T;
  L.q = load_as<A>(in.q, L.qb), L.k = load_as<A>(in.k, L.kb), L.v = load_as<A>(in.v, L.vb);
  L.beta = load_as<A>(in.beta, L.betab), L.g = load_as<A>(in.g, L.gb), L.w = load_as<A>(in.w, L.wb);
  L.a = load_as<A>(in.a, L.ab), L.b = load_as<A>(in.b, L.bb), L.s0 = load_as<A>(init.s, L.s0b);
  if (spec.qk_l2norm) {
    l2norm_rows(L.q, L.tokens * L.H, L.K, static_cast<A>(spec.l2norm_eps), L.qn, L.qr);
    l2norm_rows(L.k, L.tokens * L.H, L.K, static_cast<A>(spec.l2norm_eps), L.kn, L.kr);
    L.q = L.qn.data(), L.k = L.kn.data();
  }
  L.scale = static_cast<A>(spec.scale > 0 ? spec.scale : 1.0 / std::sqrt(static_cast<double>(L.K)));
  return L;
}

// One token: S (K x V) from S_{t-1} to S_t.
template <typename A>
void step(delta_kind kind, const loaded<A>& L, int64_t t, int64_t h, std::vector<A>& S) {
  const int64_t K = L.K, V = L.V;
  const A* k = L.k + (t * L.H + h) * K;
  const A* v = L.v + (t * L.H + h) * V;
  if (kind == delta_kind::dplr) {
    const A* a = L.a + (t * L.H + h) * K;
    const A* b = L.b + (t * L.H + h) * K;
    const A* w = L.w + (t * L.H + h) * K;
    std::vector<A> z(V, A(0));
    for (int64_t i = 0; i < K; ++i)
      for (int64_t j = 0; j < V; ++j) z[j] += a[i] * S[i * V + j];
    for (int64_t i = 0; i < K; ++i) {
      const A e = std::exp(w[i]);
      for (int64_t j = 0; j < V; ++j) S[i * V + j] = e * S[i * V + j] + b[i] * z[j] + k[i] * v[j];
    }
    return;
  }
  if (kind == delta_kind::gated) {
    const A e = std::exp(L.g[t * L.H + h]);
    for (auto& x : S) x *= e;
  }
  const A beta = L.beta[t * L.H + h];
  std::vector<A> u(V);
  for (int64_t j = 0; j < V; ++j) {
    A kv = 0;
    for (int64_t i = 0; i < K; ++i) kv += k[i] * S[i * V + j];
    u[j] = beta * (v[j] - kv);
  }
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < V; ++j) S[i * V + j] += k[i] * u[j];
}

template <typename A>
result<delta_rule_output> forward_impl(const delta_rule_spec& spec, const delta_rule_inputs& in, const delta_rule_state& init,
                                       bool output_final_state) {
  LRNN_ASSIGN_OR_RETURN(loaded<A> L, load<A>(spec, in, init));
  const int64_t H = L.H, K = L.K, V = L.V;
  std::vector<A> o(L.tokens * H * V), sf(L.N * H * K * V);
  for (int64_t n = 0; n < L.N; ++n)
    for (int64_t h = 0; h < H; ++h) {
      std::vector<A> S(K * V, A(0));
      if (L.s0) std::copy(L.s0 + (n * H + h) * K * V, L.s0 + (n * H + h + 1) * K * V, S.begin());
      for (int64_t t = L.offsets[n]; t < L.offsets[n + 1]; ++t) {
        step(spec.kind, L, t, h, S);
        const A* q = L.q + (t * H + h) * K;
        for (int64_t j = 0; j < V; ++j) {
          A acc = 0;
          for (int64_t i = 0; i < K; ++i) acc += q[i] * S[i * V + j];
          o[(t * H + h) * V + j] = L.scale * acc;
        }
      }
      std::copy(S.begin(), S.end(), sf.begin() + (n * H + h) * K * V);
    }
  delta_rule_output out;
  LRNN_ASSIGN_OR_RETURN(out.o, tensor_from(o.data(), in.v.shape(), in.q.type()));
  if (output_final_state) {
    LRNN_ASSIGN_OR_RETURN(out.final_state.s, tensor_from(sf.data(), {L.N, H, K, V}, seq_util::acc_dtype(in.q.type())));
  }
  return out;
}

template <typename A>
result<delta_rule_grads> backward_impl(const delta_rule_spec& spec, const delta_rule_inputs& in, const delta_rule_state& init,
                                       const tensor& d_o_in, const delta_rule_state& d_final) {
  LRNN_ASSIGN_OR_RETURN(loaded<A> L, load<A>(spec, in, init));
  const int64_t H = L.H, K = L.K, V = L.V, KV = K * V;
  std::vector<A> dob, dsfb;
  const A* d_o = load_as<A>(d_o_in, dob);
  const A* dsf = load_as<A>(d_final.s, dsfb);
  const bool dplr = spec.kind == delta_kind::dplr, gated = spec.kind == delta_kind::gated;
  std::vector<A> dq(L.tokens * H * K, A(0)), dk(L.tokens * H * K, A(0)), dv(L.tokens * H * V, A(0));
  std::vector<A> dbeta(L.tokens * H, A(0)), dg(L.tokens * H, A(0));
  std::vector<A> dw, da, db, ds0(L.N * H * KV, A(0));
  if (dplr) dw.assign(L.tokens * H * K, A(0)), da.assign(L.tokens * H * K, A(0)), db.assign(L.tokens * H * K, A(0));
  for (int64_t n = 0; n < L.N; ++n)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t t0 = L.offsets[n], len = L.offsets[n + 1] - t0;
      std::vector<A> states((len + 1) * KV, A(0));  // S_{t0-1} .. S_{t0+len-1}
      if (L.s0) std::copy(L.s0 + (n * H + h) * KV, L.s0 + (n * H + h + 1) * KV, states.begin());
      std::vector<A> S(states.begin(), states.begin() + KV);
      for (int64_t i = 0; i < len; ++i) {
        step(spec.kind, L, t0 + i, h, S);
        std::copy(S.begin(), S.end(), states.begin() + (i + 1) * KV);
      }
      std::vector<A> dS(KV, A(0)), Sp(KV), z(V), dz(V), u(V), r(V), du(V);
      if (dsf) std::copy(dsf + (n * H + h) * KV, dsf + (n * H + h + 1) * KV, dS.begin());
      for (int64_t i = len - 1; i >= 0; --i) {
        const int64_t t = t0 + i, row = t * H + h;
        const A* St = states.data() + (i + 1) * KV;
        const A* Sprev = states.data() + i * KV;
        const A* q = L.q + row * K;
        const A* k = L.k + row * K;
        const A* v = L.v + row * V;
        const A* go = d_o + row * V;
        for (int64_t a = 0; a < K; ++a) {
          A acc = 0;
          for (int64_t j = 0; j < V; ++j) acc += St[a * V + j] * go[j];
          dq[row * K + a] = L.scale * acc;
          for (int64_t j = 0; j < V; ++j) dS[a * V + j] += L.scale * q[a] * go[j];
        }
        if (dplr) {
          const A* av = L.a + row * K;
          const A* bv = L.b + row * K;
          const A* wv = L.w + row * K;
          std::fill(z.begin(), z.end(), A(0));
          std::fill(dz.begin(), dz.end(), A(0));
          for (int64_t a = 0; a < K; ++a)
            for (int64_t j = 0; j < V; ++j) {
              z[j] += av[a] * Sprev[a * V + j];
              dz[j] += bv[a] * dS[a * V + j];
              dv[row * V + j] += k[a] * dS[a * V + j];
            }
          for (int64_t a = 0; a < K; ++a) {
            A dka = 0, dba = 0, daa = 0, dwa = 0;
            for (int64_t j = 0; j < V; ++j) {
              dka += dS[a * V + j] * v[j];
              dba += dS[a * V + j] * z[j];
              daa += Sprev[a * V + j] * dz[j];
              dwa += Sprev[a * V + j] * dS[a * V + j];
            }
            const A e = std::exp(wv[a]);
            dk[row * K + a] = dka, db[row * K + a] = dba, da[row * K + a] = daa, dw[row * K + a] = e * dwa;
            for (int64_t j = 0; j < V; ++j) dS[a * V + j] = e * dS[a * V + j] + av[a] * dz[j];
          }
          continue;
        }
        const A e = gated ? std::exp(L.g[row]) : A(1);
        for (int64_t x = 0; x < KV; ++x) Sp[x] = e * Sprev[x];
        const A beta = L.beta[row];
        for (int64_t j = 0; j < V; ++j) {
          A kv = 0, dd = 0;
          for (int64_t a = 0; a < K; ++a) kv += k[a] * Sp[a * V + j], dd += k[a] * dS[a * V + j];
          r[j] = v[j] - kv;
          u[j] = beta * r[j];
          du[j] = dd;
        }
        A dbt = 0;
        for (int64_t j = 0; j < V; ++j) {
          dbt += du[j] * r[j];
          dv[row * V + j] = beta * du[j];
        }
        dbeta[row] = dbt;
        for (int64_t a = 0; a < K; ++a) {
          A dka = 0;
          for (int64_t j = 0; j < V; ++j) {
            dka += dS[a * V + j] * u[j] - beta * du[j] * Sp[a * V + j];
            dS[a * V + j] -= k[a] * beta * du[j];  // dS' = dS + k dkv^T, dkv = -beta du
          }
          dk[row * K + a] = dka;
        }
        if (gated) {
          A acc = 0;
          for (int64_t x = 0; x < KV; ++x) acc += Sp[x] * dS[x];
          dg[row] = acc;
          for (auto& x : dS) x *= e;
        }
      }
      std::copy(dS.begin(), dS.end(), ds0.begin() + (n * H + h) * KV);
    }
  if (spec.qk_l2norm) {
    for (int64_t row = 0; row < L.tokens * H; ++row)
      for (auto [y, rr, d] : {std::tuple{L.qn.data(), L.qr.data(), dq.data()}, std::tuple{L.kn.data(), L.kr.data(), dk.data()}}) {
        A dot = 0;
        for (int64_t a = 0; a < K; ++a) dot += y[row * K + a] * d[row * K + a];
        for (int64_t a = 0; a < K; ++a) d[row * K + a] = rr[row] * (d[row * K + a] - y[row * K + a] * dot);
      }
  }
  delta_rule_grads gr;
  LRNN_ASSIGN_OR_RETURN(gr.dq, tensor_from(dq.data(), in.q.shape(), in.q.type()));
  LRNN_ASSIGN_OR_RETURN(gr.dk, tensor_from(dk.data(), in.k.shape(), in.k.type()));
  LRNN_ASSIGN_OR_RETURN(gr.dv, tensor_from(dv.data(), in.v.shape(), in.v.type()));
  if (dplr) {
    LRNN_ASSIGN_OR_RETURN(gr.dw, tensor_from(dw.data(), in.w.shape(), in.w.type()));
    LRNN_ASSIGN_OR_RETURN(gr.da, tensor_from(da.data(), in.a.shape(), in.a.type()));
    LRNN_ASSIGN_OR_RETURN(gr.db, tensor_from(db.data(), in.b.shape(), in.b.type()));
  } else {
    LRNN_ASSIGN_OR_RETURN(gr.dbeta, tensor_from(dbeta.data(), in.beta.shape(), in.beta.type()));
    if (gated) {
      LRNN_ASSIGN_OR_RETURN(gr.dg, tensor_from(dg.data(), in.g.shape(), in.g.type()));
    }
  }
  if (init.s.defined()) {
    LRNN_ASSIGN_OR_RETURN(gr.d_initial_state.s, tensor_from(ds0.data(), init.s.shape(), init.s.type()));
  }
  return gr;
}

}  // namespace

result<delta_rule_output> delta_rule_forward_reference(const delta_rule_spec& spec, const delta_rule_inputs& in,
                                                       const delta_rule_state& init, bool output_final_state) {
  if (in.q.type() == dtype::f64) return forward_impl<double>(spec, in, init, output_final_state);
  return forward_impl<float>(spec, in, init, output_final_state);
}

result<delta_rule_grads> delta_rule_backward_reference(const delta_rule_spec& spec, const delta_rule_inputs& in,
                                                       const delta_rule_state& init, const tensor& d_o,
                                                       const delta_rule_state& d_final) {
  if (in.q.type() == dtype::f64) return backward_impl<double>(spec, in, init, d_o, d_final);
  return backward_impl<float>(spec, in, init, d_o, d_final);
}

}  // namespace lrnn::ops::detail
