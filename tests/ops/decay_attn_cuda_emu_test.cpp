// decay_attn's CUDA scan kernels run on the CPU through the CUDA emulation (support/cuda_emu.h), each
// way chunk_aux.cu / chunk_bwd.cu launch them, against the sequential recurrences of decay_attn.cpp:
// * mLSTM's stabiliser (stabiliser.cuh): three launches (block maps, the carry kernel, the blocks'
//   runs), two (the runs find their entry values by looking back over the maps) and one cooperative
//   launch (a grid barrier between the two phases): m, g~, b~, m_T forward; dgs, di, d m0 backward;
// * the scalar gate's gradient scan (gate_scan.cuh: scalar_gate_blocks, two launches; scalar_gate_coop,
//   one cooperative launch that also copies db), with and without an initial state, F, F0 and RWKV-6's
//   bonus order;
// * mLSTM's fused backward tail (stabiliser.cuh, k_tail: that scan and the stabiliser's backward in one
//   cooperative launch).
// Sequences of 0 to 20 blocks of 256 tokens, H = 1 to 257 (segments per head from 256 down to 1, several
// heads per thread past 256), every gate mode, optional m0, dmT, F and dg. Outputs start NaN, so an
// unwritten element fails. Runs in CI (no GPU); the GPU suite runs the same kernels for real
// (decay_attn_cuda.stabiliser_scans).
#include "support/cuda_emu.h"
// (after cuda_emu.h: its shared memory. g++ takes the kernels' loads guarded by the same bound as
// their uses for possibly uninitialised)
#define LRNN_DYN_SMEM(T, x) T* x = reinterpret_cast<T*>(emu_smem)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "ops/decay_attn/cuda/stabiliser.cuh"
#pragma GCC diagnostic pop

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace lrnn::ops::cuda_chunk {
namespace {

struct stab_case {
  int H, K;
  std::vector<int32_t> cu;  // sequence offsets
  int gmode;
  bool m0, dmT, F, dg;
};

struct stab_data {
  std::vector<float> g, in, m0, dmT, F, dg, db, dml;
};

struct stab_result {
  std::vector<float> m, gt, bt, mT, dgs, di, dm0;
};

stab_data make_data(const stab_case& c, uint32_t seed) {
  const int H = c.H, N = static_cast<int>(c.cu.size()) - 1;
  const size_t th = static_cast<size_t>(c.cu.back()) * H;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  auto rnd = [&](size_t n, float mu, float sd) {
    std::vector<float> v(n);
    for (auto& x : v) x = mu + sd * nd(rng);
    return v;
  };
  stab_data d;
  d.g = rnd(c.gmode == g_head ? H : th, 0.f, 0.7f);
  for (auto& x : d.g) x = -std::fabs(x);
  d.in = rnd(th, 0.f, 2.f);  // (both branches of the max taken often)
  d.m0 = rnd(N * H, 0, 1), d.dmT = rnd(N * H, 0, 1), d.F = rnd(static_cast<size_t>(N) * H * c.K, 0, 0.3f);
  d.dg = rnd(th, 0, 1), d.db = rnd(th, 0, 1), d.dml = rnd(th, 0, 1);
  return d;
}

float gate(const stab_case& c, const stab_data& d, int64_t t, int h) {
  return c.gmode == g_head ? d.g[h] : c.gmode == g_scalar ? d.g[t * c.H + h] : 0.f;
}

// decay_attn.cpp's loops, per sequence and head, token by token.
stab_result sequential(const stab_case& c, const stab_data& d) {
  const int H = c.H, N = static_cast<int>(c.cu.size()) - 1;
  const size_t th = static_cast<size_t>(c.cu.back()) * H;
  stab_result r{std::vector<float>(th), std::vector<float>(th), std::vector<float>(th), std::vector<float>(N * H),
                std::vector<float>(th), std::vector<float>(th), std::vector<float>(N * H)};
  for (int n = 0; n < N; ++n)
    for (int h = 0; h < H; ++h) {
      const int64_t sb = c.cu[n], se = c.cu[n + 1];
      const float first = c.m0 ? d.m0[n * H + h] : 0.f;
      float mp = first;
      for (int64_t t = sb; t < se; ++t) {
        const size_t o = t * H + h;
        const float gs = gate(c, d, t, h), mt = std::fmax(gs + mp, d.in[o]);
        r.m[o] = mt, r.gt[o] = std::fmin(0.f, gs + mp - mt), r.bt[o] = std::fmin(0.f, d.in[o] - mt);
        mp = mt;
      }
      r.mT[n * H + h] = mp;
      const float up = c.dmT ? d.dmT[n * H + h] : 0.f;
      float carry = up;
      if (c.F)
        for (int k = 0; k < c.K; ++k) carry -= d.F[static_cast<size_t>(n * H + h) * c.K + k];
      for (int64_t t = se - 1; t >= sb; --t) {
        const size_t o = t * H + h;
        const bool dec = gate(c, d, t, h) + (t > sb ? r.m[o - H] : first) >= d.in[o];
        const float dm = carry + d.dml[o];
        r.dgs[o] = (c.dg ? d.dg[o] : 0.f) + (dec ? dm : 0.f);
        r.di[o] = d.db[o] + (dec ? 0.f : dm);
        carry = dec ? dm : 0.f;
      }
      r.dm0[n * H + h] = se > sb ? (c.dg ? d.dg[sb * H + h] : 0.f) + carry : up;
    }
  return r;
}

enum { way_three = 0, way_look = 1, way_coop = 2 };

// The kernels as chunk_aux.cu's stabiliser_scan / stabiliser_backward launch them for `way` (the
// backward from the sequential m).
stab_result emulated(const stab_case& c, const stab_data& d, const std::vector<float>& m_in, int way) {
  const int H = c.H, K = c.K, N = static_cast<int>(c.cu.size()) - 1;
  const size_t th = static_cast<size_t>(c.cu.back()) * H;
  int64_t max_len = 0;
  for (int n = 0; n < N; ++n) max_len = std::max<int64_t>(max_len, c.cu[n + 1] - c.cu[n]);
  const dim3 grid(static_cast<unsigned>(std::max<int64_t>(1, (max_len + kBL - 1) / kBL)), static_cast<unsigned>(N));
  const int nblk = static_cast<int>(grid.x);
  const size_t sm = stab_smem(H, false), sml = stab_smem(H, true);
  const dim3 carry_grid(static_cast<unsigned>((N * H + 127) / 128));
  stab_result r{std::vector<float>(th, NAN), std::vector<float>(th, NAN), std::vector<float>(th, NAN), std::vector<float>(N * H, NAN),
                std::vector<float>(th, NAN), std::vector<float>(th, NAN), std::vector<float>(N * H, NAN)};
  std::vector<float2> maps(static_cast<size_t>(N) * nblk * H, float2{NAN, NAN});
  std::vector<float> entry(static_cast<size_t>(N) * nblk * H, NAN);
  const int32_t* off = c.cu.data();
  const float* m0 = c.m0 ? d.m0.data() : nullptr;
  const float* dmT = c.dmT ? d.dmT.data() : nullptr;
  const float* F = c.F ? d.F.data() : nullptr;
  const float* dg = c.dg ? d.dg.data() : nullptr;

  const stab_fwd_args a{H, off, d.g.data(), d.in.data(), m0, c.gmode, maps.data(), entry.data(), r.m.data(), r.gt.data(), r.bt.data(),
                        r.mT.data()};
  // (chunk_aux.cu's stab_run: the block kernel's modes per way; carry: phase 2 of three launches)
  const auto run_way = [&](auto&& blocks, auto&& carry) {
    if (way == way_coop) {
      emu_launch(grid, kBT, sml, true, [&] { blocks(std::integral_constant<int, k_coop>()); });
      return;
    }
    emu_launch(grid, kBT, sm, false, [&] { blocks(std::integral_constant<int, k_maps>()); });
    if (way == way_look) {
      emu_launch(grid, kBT, sml, false, [&] { blocks(std::integral_constant<int, k_look>()); });
    } else {
      emu_launch(carry_grid, 128, 0, false, carry);
      emu_launch(grid, kBT, sm, false, [&] { blocks(std::integral_constant<int, k_entry>()); });
    }
  };
  run_way([&](auto mode) { stab_fwd_blocks<decltype(mode)::value>(a); },
          [&] { stab_fwd_carry(N, H, nblk, off, maps.data(), m0, entry.data(), r.mT.data()); });

  std::fill(maps.begin(), maps.end(), float2{NAN, NAN});
  std::fill(entry.begin(), entry.end(), NAN);
  const stab_bwd_args b{H,       K,          off,           d.g.data(),       d.in.data(), m0,           m_in.data(),  dg,
                        d.db.data(), d.dml.data(), c.gmode, r.dgs.data(), r.di.data(),  maps.data(), entry.data(), dmT,
                        F,       r.dm0.data()};
  run_way([&](auto mode) { stab_bwd_blocks<decltype(mode)::value>(b); },
          [&] { stab_bwd_carry(N, H, K, nblk, off, maps.data(), dmT, F, dg, entry.data(), r.dm0.data()); });
  return r;
}

// Max over elements of |x - ref| / (1 + |ref|); infinite where one is NaN and the other not.
double worst(const std::vector<float>& x, const std::vector<float>& ref, size_t& at) {
  double w = 0;
  at = 0;
  for (size_t j = 0; j < ref.size(); ++j) {
    const double e = std::isnan(x[j]) != std::isnan(ref[j]) ? INFINITY
                     : std::isnan(ref[j])                    ? 0.0
                                                             : std::fabs(static_cast<double>(x[j]) - ref[j]) / (1 + std::fabs(ref[j]));
    if (e > w) w = e, at = j;
  }
  return w;
}

void expect_close(const stab_case& c, int way) {
  const stab_data d = make_data(c, static_cast<uint32_t>(c.H * 131 + c.cu.back()));
  const stab_result ref = sequential(c, d);
  const stab_result got = emulated(c, d, ref.m, way);
  const std::pair<const char*, std::pair<const std::vector<float>*, const std::vector<float>*>> parts[] = {
      {"m", {&got.m, &ref.m}},       {"g~", {&got.gt, &ref.gt}}, {"b~", {&got.bt, &ref.bt}},    {"m_T", {&got.mT, &ref.mT}},
      {"dgs", {&got.dgs, &ref.dgs}}, {"di", {&got.di, &ref.di}}, {"d m0", {&got.dm0, &ref.dm0}}};
  for (const auto& [name, xr] : parts) {
    size_t at = 0;
    // (the maps compose the same sums in another order: rounding only)
    const double w = worst(*xr.first, *xr.second, at);
    EXPECT_LE(w, 2e-5) << "way " << way << " H " << c.H << " N " << c.cu.size() - 1 << " T " << c.cu.back() << ": " << name << "["
                       << at << "] = " << (*xr.first)[at] << ", sequential " << (*xr.second)[at];
  }
}

const std::vector<stab_case>& cases() {
  static const std::vector<stab_case> cs = {
      {2, 16, {0, 200, 400}, g_scalar, true, true, true, true},             // one block each
      {3, 16, {0, 256}, g_scalar, false, false, false, false},              // 85 segments per head, a thread idle
      {3, 32, {0, 257}, g_head, true, true, false, true},                   // a one-token second block
      {16, 16, {0, 1000, 2000}, g_scalar, true, true, true, true},          // 4 blocks, 16 segments per head
      {257, 16, {0, 300}, g_scalar, true, true, true, true},                // one segment per head, 2 heads for a thread
      {257, 8, {0, 5000}, g_scalar, true, true, true, false},               // 20 blocks: look-back over 3 batches of maps
      {2, 16, {0, 1, 1, 300, 556, 1600}, g_scalar, true, true, true, true}, // packed: empty and one-token sequences
      {2, 16, {0, 0, 1000, 1001}, g_none, true, true, true, true},          // an empty first sequence
      {5, 4, {0, 0, 0}, g_scalar, true, true, true, true},                  // nothing but empty sequences
      {1, 4, {0, 4100, 4101, 4400}, g_scalar, false, true, false, true},    // H = 1: 256 segments, 17 blocks
  };
  return cs;
}

TEST(decay_attn_cuda_emu, stabiliser_three_launches) {
  for (const auto& c : cases()) expect_close(c, way_three);
}
TEST(decay_attn_cuda_emu, stabiliser_look_back) {
  for (const auto& c : cases()) expect_close(c, way_look);
}
TEST(decay_attn_cuda_emu, stabiliser_cooperative) {
  for (const auto& c : cases()) expect_close(c, way_coop);
}


// ---- the scalar gate's gradient scan and the fused backward tail ----

struct xy_data {
  std::vector<float2> xy;    // (X_t, Y_t) at t H + h
  std::vector<float> F0;     // [N, H, K]
};

xy_data make_xy(const stab_case& c, uint32_t seed) {
  const int N = static_cast<int>(c.cu.size()) - 1;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  xy_data x;
  x.xy.resize(static_cast<size_t>(c.cu.back()) * c.H);
  for (auto& p : x.xy) p = {nd(rng), nd(rng)};
  x.F0.resize(static_cast<size_t>(N) * c.H * c.K);
  for (auto& f : x.F0) f = 0.3f * nd(rng);
  return x;
}

// finish_backward's reverse running sum per sequence and head (chunk_bwd.cu), in double.
std::vector<float> gate_scan_sequential(const stab_case& c, const stab_data& d, const xy_data& x, bool s0, bool bonus) {
  const int H = c.H, N = static_cast<int>(c.cu.size()) - 1;
  std::vector<float> dgs(static_cast<size_t>(c.cu.back()) * H);
  for (int n = 0; n < N; ++n)
    for (int h = 0; h < H; ++h) {
      double acc = 0.0, f0 = 0.0;
      for (int k = 0; k < c.K; ++k) {
        if (c.F) acc += d.F[static_cast<size_t>(n * H + h) * c.K + k];
        f0 += x.F0[static_cast<size_t>(n * H + h) * c.K + k];
      }
      for (int64_t t = c.cu[n + 1] - 1; t >= c.cu[n]; --t) {
        const float2 p = x.xy[t * H + h];
        if (!bonus) acc += p.x;
        acc -= p.y;
        if (t == c.cu[n]) acc = !s0 ? 0.0 : bonus ? acc : f0;
        dgs[t * H + h] = static_cast<float>(acc);
        if (bonus) acc += p.x;
      }
    }
  return dgs;
}

dim3 block_grid(const stab_case& c) {
  int64_t max_len = 0;
  for (size_t n = 0; n + 1 < c.cu.size(); ++n) max_len = std::max<int64_t>(max_len, c.cu[n + 1] - c.cu[n]);
  return dim3(static_cast<unsigned>(std::max<int64_t>(1, (max_len + kBL - 1) / kBL)), static_cast<unsigned>(c.cu.size() - 1));
}

xy_scan_args xy_args(const stab_case& c, const stab_data& d, const xy_data& x, bool s0, bool bonus, float* dgs) {
  return {c.H, c.K, c.cu.data(), x.xy.data(), c.F ? d.F.data() : nullptr, x.F0.data(), s0, bonus, dgs};
}

void expect_same(const char* what, const std::vector<float>& got, const std::vector<float>& ref, const stab_case& c, double tol) {
  size_t at = 0;
  const double w = worst(got, ref, at);
  EXPECT_LE(w, tol) << what << " H " << c.H << " N " << c.cu.size() - 1 << " T " << c.cu.back() << ": [" << at << "] = " << got[at]
                    << ", sequential " << ref[at];
}

TEST(decay_attn_cuda_emu, gate_scan_blocks) {
  for (const auto& c : cases()) {
    if (c.H > kSBT) continue;  // (scalar_scan takes a CTA per sequence and head there)
    const stab_data d = make_data(c, static_cast<uint32_t>(c.H * 7 + c.cu.back()));
    const xy_data x = make_xy(c, static_cast<uint32_t>(c.H * 11 + c.cu.back()));
    const dim3 grid = block_grid(c);
    for (int variant = 0; variant < 3; ++variant) {
      const bool s0 = variant != 0, bonus = variant == 2;
      const std::vector<float> ref = gate_scan_sequential(c, d, x, s0, bonus);
      std::vector<float> dgs(ref.size(), NAN);
      std::vector<double> tot(static_cast<size_t>(grid.x) * grid.y * c.H, NAN);
      const xy_scan_args a = xy_args(c, d, x, s0, bonus, dgs.data());
      const size_t smem = xy_block_smem(c.H);
      emu_launch(grid, kSBT, smem, false, [&] { scalar_gate_blocks(a, tot.data(), true); });
      emu_launch(grid, kSBT, smem, false, [&] { scalar_gate_blocks(a, tot.data(), false); });
      expect_same(s0 ? (bonus ? "dgs (s0, bonus)" : "dgs (s0)") : "dgs", dgs, ref, c, 1e-6);
    }
  }
}

// The same scan as one cooperative launch, db = Y per token with it.
TEST(decay_attn_cuda_emu, gate_scan_cooperative) {
  for (const auto& c : cases()) {
    if (c.H > kSBT) continue;
    const stab_data d = make_data(c, static_cast<uint32_t>(c.H * 5 + c.cu.back()));
    const xy_data x = make_xy(c, static_cast<uint32_t>(c.H * 3 + c.cu.back()));
    const dim3 grid = block_grid(c);
    std::vector<float> ydb(x.xy.size());
    for (size_t j = 0; j < x.xy.size(); ++j) ydb[j] = x.xy[j].y;
    for (int variant = 0; variant < 3; ++variant) {
      const bool s0 = variant != 0, bonus = variant == 2;
      const std::vector<float> ref = gate_scan_sequential(c, d, x, s0, bonus);
      std::vector<float> dgs(ref.size(), NAN), db(ref.size(), NAN);
      std::vector<double> tot(static_cast<size_t>(grid.x) * grid.y * c.H, NAN);
      const xy_scan_args a = xy_args(c, d, x, s0, bonus, dgs.data());
      emu_launch(grid, kSBT, xy_block_smem(c.H), true, [&] { scalar_gate_coop(a, tot.data(), db.data()); });
      expect_same(s0 ? (bonus ? "dgs (s0, bonus)" : "dgs (s0)") : "dgs", dgs, ref, c, 1e-6);
      expect_same("db", db, ydb, c, 0.0);
    }
  }
}

TEST(decay_attn_cuda_emu, stabiliser_backward_tail) {
  for (const auto& c : cases()) {
    if (c.H > kSBT) continue;  // (the tail's limit: the host runs the two steps past it)
    const stab_data d = make_data(c, static_cast<uint32_t>(c.H * 131 + c.cu.back()));
    const xy_data x = make_xy(c, static_cast<uint32_t>(c.H * 13 + c.cu.back()));
    const bool s0 = c.m0;
    const std::vector<float> mid = gate_scan_sequential(c, d, x, s0, false);
    stab_case cr = c;
    cr.dg = true;
    stab_data dr = d;
    dr.dg = mid;
    for (size_t j = 0; j < x.xy.size(); ++j) dr.db[j] = x.xy[j].y;
    const stab_result ref = sequential(cr, dr);

    const int H = c.H, N = static_cast<int>(c.cu.size()) - 1;
    const dim3 grid = block_grid(c);
    const size_t th = static_cast<size_t>(c.cu.back()) * H;
    std::vector<float> dgs_mid(th, NAN), dgs(th, NAN), di(th, NAN), dm0(static_cast<size_t>(N) * H, NAN);
    std::vector<float2> maps(static_cast<size_t>(grid.x) * grid.y * H, float2{NAN, NAN});
    std::vector<double> tot(static_cast<size_t>(grid.x) * grid.y * H, NAN);
    stab_bwd_args b{H,          c.K,         c.cu.data(), d.g.data(), d.in.data(), c.m0 ? d.m0.data() : nullptr,
                    ref.m.data(), dgs_mid.data(), reinterpret_cast<const float*>(x.xy.data()) + 1, d.dml.data(), c.gmode,
                    dgs.data(), di.data(), maps.data(), nullptr, c.dmT ? d.dmT.data() : nullptr, c.F ? d.F.data() : nullptr,
                    dm0.data()};
    b.db_stride = 2;
    b.xs = xy_args(c, d, x, s0, false, dgs_mid.data());
    b.tot = tot.data();
    emu_launch(grid, kBT, stab_smem(H, true) + xy_block_smem(H), true, [&] { stab_bwd_blocks<k_tail>(b); });
    expect_same("tail: the gate scan's dgs", dgs_mid, mid, c, 1e-6);
    expect_same("tail: dgs", dgs, ref.dgs, c, 2e-5);
    expect_same("tail: di", di, ref.di, c, 2e-5);
    expect_same("tail: d m0", dm0, ref.dm0, c, 2e-5);
  }
}

}  // namespace
}  // namespace lrnn::ops::cuda_chunk
