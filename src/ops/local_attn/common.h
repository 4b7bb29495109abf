// local_attn internals shared by the forms: the per-sequence key list (cached keys, then the new
// tokens' keys, all after RoPE), the visible key range of every query, RoPE and its transpose.
// The attention math itself lives in reference.cpp and cpu/parallel.cpp (README.md).
#pragma once

#include "ops/local_attn/local_attn.h"

#include <cmath>
#include <cstdint>
#include <vector>

namespace lrnn::ops::local_detail {

template <typename A>
struct problem {
  int64_t N = 0, Hq = 0, Hkv = 0, D = 0, Dv = 0, W = 0, R = 0, tokens = 0;
  A scale = 1;
  rope_kind rope = rope_kind::none;
  std::vector<int64_t> offsets;             // [N + 1] token offsets
  std::vector<int64_t> count, ncache, key0;  // per sequence: tokens seen before, cached keys used, first key row
  std::vector<int64_t> seg_final;            // per sequence: document start after the call
  std::vector<int64_t> lo;                   // [tokens] first visible key row (global row index)
  std::vector<int64_t> self;                 // [tokens] the token's own key row
  std::vector<A> q;                          // [tokens, Hq, D] after RoPE
  std::vector<A> keys;                       // [rows, Hkv, D] after RoPE
  std::vector<A> vals;                       // [rows, Hkv, Dv]
  std::vector<A> cs, sn;                     // [tokens, R / 2] RoPE cos / sin of the tokens
  int64_t rows = 0;
};

// Rotates x (one head, D values) in place by the angles whose cos / sin are given; transpose
// rotates by the negative angles (the gradient).
template <typename A>
void rotate(rope_kind kind, int64_t R, const A* cs, const A* sn, A* x, bool transpose) {
  const int64_t half = R / 2;
  for (int64_t m = 0; m < half; ++m) {
    const int64_t i1 = kind == rope_kind::half ? m : 2 * m, i2 = kind == rope_kind::half ? m + half : 2 * m + 1;
    const A c = cs[m], s = transpose ? -sn[m] : sn[m];
    const A x1 = x[i1], x2 = x[i2];
    x[i1] = x1 * c - x2 * s;
    x[i2] = x2 * c + x1 * s;
  }
}

template <typename A>
status build(const local_attn_spec& spec, const local_attn_inputs& in, const local_attn_state& init, problem<A>& p);

// Forward o [tokens, Hq, Dv]; backward dq (after RoPE) [tokens, Hq, D], dkeys, dvals [rows, ...].
template <typename A> void attend_reference(const problem<A>& p, A* o);
template <typename A> void attend_reference_backward(const problem<A>& p, const A* d_o, A* dq, A* dkeys, A* dvals);
template <typename A> void attend_parallel(const problem<A>& p, A* o);
template <typename A> void attend_parallel_backward(const problem<A>& p, const A* d_o, A* dq, A* dkeys, A* dvals);

}  // namespace lrnn::ops::local_detail
