// delta_rule, recurrent form on CPU: every kind as one diagonal-plus-low-rank step
//   S_t = Diag(d_t) S_{t-1} + b_t (a_t^T S_{t-1}) + kk_t v_t^T,  o_t = scale * S_t^T q_t
// (delta / gated: d = e^g, a = -e^g k, b = kk = beta k; README.md), parallel over sequences x
// heads. Backward keeps a state every 64 tokens and recomputes the states inside each segment.
#include "ops/delta_rule/delta_rule.h"

#include "lrnn/threads.h"

#include <cmath>

namespace lrnn::ops::detail {

namespace {

constexpr int64_t segment = 64;

// The per-token vectors of the DPLR step for (t, h).
template <typename A>
struct token_vectors {
  std::vector<A> d, a, b, kk;
  A e = 1;  // e^g for delta / gated
  explicit token_vectors(int64_t K) : d(K), a(K), b(K), kk(K) {}
  void load(const delta_problem<A>& p, int64_t t, int64_t h) {
    const int64_t K = p.K, row = t * p.H + h;
    const A* k = p.k + row * K;
    if (p.kind == delta_kind::dplr) {
      const A* w = p.w + row * K;
      for (int64_t i = 0; i < K; ++i) d[i] = std::exp(w[i]);
      std::copy(p.a + row * K, p.a + row * K + K, a.begin());
      std::copy(p.b + row * K, p.b + row * K + K, b.begin());
      std::copy(k, k + K, kk.begin());
      return;
    }
    e = p.kind == delta_kind::gated ? std::exp(p.g[row]) : A(1);
    const A beta = p.beta[row];
    for (int64_t i = 0; i < K; ++i) {
      d[i] = e;
      a[i] = -e * k[i];
      b[i] = beta * k[i];
      kk[i] = beta * k[i];
    }
  }
};

template <typename A>
void step(const delta_problem<A>& p, const token_vectors<A>& tv, const A* v, A* S, A* z) {
  const int64_t K = p.K, V = p.V;
  std::fill(z, z + V, A(0));
  for (int64_t i = 0; i < K; ++i) {
    const A ai = tv.a[i];
    const A* row = S + i * V;
    for (int64_t j = 0; j < V; ++j) z[j] += ai * row[j];
  }
  for (int64_t i = 0; i < K; ++i) {
    const A di = tv.d[i], bi = tv.b[i], ki = tv.kk[i];
    A* row = S + i * V;
    for (int64_t j = 0; j < V; ++j) row[j] = di * row[j] + bi * z[j] + ki * v[j];
  }
}

template <typename A>
void read_out(const delta_problem<A>& p, const A* q, const A* S, A* o) {
  const int64_t K = p.K, V = p.V;
  std::fill(o, o + V, A(0));
  for (int64_t i = 0; i < K; ++i) {
    const A qi = p.scale * q[i];
    const A* row = S + i * V;
    for (int64_t j = 0; j < V; ++j) o[j] += qi * row[j];
  }
}

template <typename A>
void init_state(const delta_problem<A>& p, int64_t n, int64_t h, A* S) {
  const int64_t KV = p.K * p.V;
  if (p.s0) std::copy(p.s0 + (n * p.H + h) * KV, p.s0 + (n * p.H + h + 1) * KV, S);
  else std::fill(S, S + KV, A(0));
}

}  // namespace

template <typename A>
void delta_forward_recurrent(const delta_problem<A>& p, A* o, A* s_final) {
  const int64_t H = p.H, K = p.K, V = p.V;
  parallel_for(p.N * H, [&](int64_t nh) {
    const int64_t n = nh / H, h = nh % H;
    std::vector<A> S(K * V), z(V);
    token_vectors<A> tv(K);
    init_state(p, n, h, S.data());
    for (int64_t t = p.offsets[n]; t < p.offsets[n + 1]; ++t) {
      tv.load(p, t, h);
      step(p, tv, p.v + (t * H + h) * V, S.data(), z.data());
      read_out(p, p.q + (t * H + h) * K, S.data(), o + (t * H + h) * V);
    }
    if (s_final) std::copy(S.begin(), S.end(), s_final + nh * K * V);
  });
}

template <typename A>
void delta_backward_recurrent(const delta_problem<A>& p, const delta_grads_io<A>& io) {
  const int64_t H = p.H, K = p.K, V = p.V, KV = K * V;
  const bool dplr = p.kind == delta_kind::dplr;
  parallel_for(p.N * H, [&](int64_t nh) {
    const int64_t n = nh / H, h = nh % H;
    const int64_t t0 = p.offsets[n], len = p.offsets[n + 1] - t0;
    const int64_t nseg = (len + segment - 1) / segment;
    std::vector<A> checkpoints(std::max<int64_t>(nseg, 1) * KV), states((segment + 1) * KV), z(V), dz(V), dkk(K), dbv(K), dav(K), dwv(K);
    std::vector<A> dS(KV, A(0));
    token_vectors<A> tv(K);
    // Forward: the state at the start of every segment.
    init_state(p, n, h, states.data());
    for (int64_t s = 0; s < nseg; ++s) {
      std::copy(states.begin(), states.begin() + KV, checkpoints.begin() + s * KV);
      for (int64_t t = t0 + s * segment; t < std::min(t0 + len, t0 + (s + 1) * segment); ++t) {
        tv.load(p, t, h);
        step(p, tv, p.v + (t * H + h) * V, states.data(), z.data());
      }
    }
    if (io.d_s_final) std::copy(io.d_s_final + nh * KV, io.d_s_final + (nh + 1) * KV, dS.begin());
    for (int64_t s = nseg - 1; s >= 0; --s) {
      const int64_t ts = t0 + s * segment, te = std::min(t0 + len, ts + segment);
      std::copy(checkpoints.begin() + s * KV, checkpoints.begin() + (s + 1) * KV, states.begin());
      for (int64_t t = ts; t < te; ++t) {
        std::copy(states.begin() + (t - ts) * KV, states.begin() + (t - ts + 1) * KV, states.begin() + (t - ts + 1) * KV);
        tv.load(p, t, h);
        step(p, tv, p.v + (t * H + h) * V, states.data() + (t - ts + 1) * KV, z.data());
      }
      for (int64_t t = te - 1; t >= ts; --t) {
        const int64_t row = t * H + h;
        const A* St = states.data() + (t - ts + 1) * KV;
        const A* Sp = states.data() + (t - ts) * KV;
        const A* q = p.q + row * K;
        const A* v = p.v + row * V;
        const A* go = io.d_o + row * V;
        tv.load(p, t, h);
        A* dq = io.dq + row * K;
        for (int64_t i = 0; i < K; ++i) {
          A acc = 0;
          const A* srow = St + i * V;
          for (int64_t j = 0; j < V; ++j) acc += srow[j] * go[j];
          dq[i] = p.scale * acc;
          const A qi = p.scale * q[i];
          A* drow = dS.data() + i * V;
          for (int64_t j = 0; j < V; ++j) drow[j] += qi * go[j];
        }
        std::fill(z.begin(), z.end(), A(0));
        std::fill(dz.begin(), dz.end(), A(0));
        A* dv = io.dv + row * V;
        std::fill(dv, dv + V, A(0));
        for (int64_t i = 0; i < K; ++i) {
          const A ai = tv.a[i], bi = tv.b[i], ki = tv.kk[i];
          const A* srow = Sp + i * V;
          const A* drow = dS.data() + i * V;
          for (int64_t j = 0; j < V; ++j) {
            z[j] += ai * srow[j];
            dz[j] += bi * drow[j];
            dv[j] += ki * drow[j];
          }
        }
        for (int64_t i = 0; i < K; ++i) {
          const A* srow = Sp + i * V;
          A* drow = dS.data() + i * V;
          A dk = 0, db = 0, da = 0, dw = 0;
          for (int64_t j = 0; j < V; ++j) {
            dk += drow[j] * v[j];
            db += drow[j] * z[j];
            da += srow[j] * dz[j];
            dw += srow[j] * drow[j];
          }
          dkk[i] = dk, dbv[i] = db, dav[i] = da, dwv[i] = tv.d[i] * dw;
          const A di = tv.d[i], ai = tv.a[i];
          for (int64_t j = 0; j < V; ++j) drow[j] = di * drow[j] + ai * dz[j];
        }
        if (dplr) {
          std::copy(dkk.begin(), dkk.end(), io.dk + row * K);
          std::copy(dbv.begin(), dbv.end(), io.db + row * K);
          std::copy(dav.begin(), dav.end(), io.da + row * K);
          std::copy(dwv.begin(), dwv.end(), io.dw + row * K);
          continue;
        }
        // a = -e k, b = kk = beta k, d = e (README.md, "gradients of the recurrent form").
        const A beta = p.beta[row];
        const A* k = p.k + row * K;
        A dbeta = 0, dg = 0;
        for (int64_t i = 0; i < K; ++i) {
          io.dk[row * K + i] = -tv.e * dav[i] + beta * (dbv[i] + dkk[i]);
          dbeta += k[i] * (dbv[i] + dkk[i]);
          dg += dwv[i] + dav[i] * tv.a[i];
        }
        io.dbeta[row] = dbeta;
        if (io.dg) io.dg[row] = dg;
      }
    }
    if (io.ds0) std::copy(dS.begin(), dS.end(), io.ds0 + nh * KV);
  });
}

template void delta_forward_recurrent<float>(const delta_problem<float>&, float*, float*);
template void delta_forward_recurrent<double>(const delta_problem<double>&, double*, double*);
template void delta_backward_recurrent<float>(const delta_problem<float>&, const delta_grads_io<float>&);
template void delta_backward_recurrent<double>(const delta_problem<double>&, const delta_grads_io<double>&);

}  // namespace lrnn::ops::detail
