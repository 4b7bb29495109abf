// Token sampling from logits: greedy, temperature, top-k, top-p, min-p and repetition
// penalty, with a seeded generator so runs repeat exactly.
#pragma once

#include "lrnn/status.h"

#include <cstdint>
#include <random>
#include <vector>

namespace lrnn::gen {

struct sampling_options {
  bool greedy = false;         // argmax (also when temperature <= 0)
  double temperature = 1.0;
  int64_t top_k = 0;           // 0: off
  double top_p = 1.0;          // 1: off
  double min_p = 0.0;          // 0: off; keep tokens with p >= min_p * p_max
  double repetition_penalty = 1.0;  // 1: off; CTRL-style: logit / pen if > 0 else logit * pen
  uint64_t seed = 0;
};

status validate(const sampling_options& o);

class sampler {
 public:
  explicit sampler(sampling_options o) : o_(o), rng_(o.seed) {}
  // logits [vocab]; `history` are the tokens seen so far (for the repetition penalty).
  int64_t sample(const float* logits, int64_t vocab, const std::vector<int64_t>& history);

 private:
  sampling_options o_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int64_t>> buf_;
};

}  // namespace lrnn::gen
