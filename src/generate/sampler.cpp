// Sampling (see sampler.h). Filters apply in the order penalty -> temperature -> top-k ->
// top-p -> min-p, as in llama.cpp / transformers.
#include "generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

namespace lrnn::gen {

status validate(const sampling_options& o) {
  if (!(o.temperature >= 0) || !std::isfinite(o.temperature))
    return make_error(status_code::invalid_argument, "--temperature must be >= 0, got {}", o.temperature);
  if (o.top_k < 0) return make_error(status_code::invalid_argument, "--top-k must be >= 0, got {}", o.top_k);
  if (!(o.top_p > 0 && o.top_p <= 1)) return make_error(status_code::invalid_argument, "--top-p must be in (0, 1], got {}", o.top_p);
  if (!(o.min_p >= 0 && o.min_p <= 1)) return make_error(status_code::invalid_argument, "--min-p must be in [0, 1], got {}", o.min_p);
  if (!(o.repetition_penalty > 0) || !std::isfinite(o.repetition_penalty))
    return make_error(status_code::invalid_argument, "--repetition-penalty must be > 0, got {}", o.repetition_penalty);
  return {};
}

int64_t sampler::sample(const float* logits, int64_t vocab, const std::vector<int64_t>& history) {
  buf_.resize(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) buf_[i] = {logits[i], i};
  if (o_.repetition_penalty != 1.0) {
    std::unordered_set<int64_t> seen(history.begin(), history.end());
    const float pen = static_cast<float>(o_.repetition_penalty);
    for (int64_t t : seen)
      if (t >= 0 && t < vocab) buf_[t].first = buf_[t].first > 0 ? buf_[t].first / pen : buf_[t].first * pen;
  }
  if (o_.greedy || o_.temperature <= 0) {
    int64_t best = 0;
    for (int64_t i = 1; i < vocab; ++i)
      if (buf_[i].first > buf_[best].first) best = i;  // first maximum, as torch.argmax
    return best;
  }
  const float inv_t = static_cast<float>(1.0 / o_.temperature);
  for (auto& p : buf_) p.first *= inv_t;
  std::sort(buf_.begin(), buf_.end(), [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  size_t n = buf_.size();
  if (o_.top_k > 0) n = std::min(n, static_cast<size_t>(o_.top_k));
  const float mx = buf_[0].first;
  std::vector<double> p(n);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += (p[i] = std::exp(static_cast<double>(buf_[i].first - mx)));
  for (auto& x : p) x /= sum;
  if (o_.top_p < 1.0) {
    double c = 0;
    size_t keep = n;
    for (size_t i = 0; i < n; ++i) {
      c += p[i];
      if (c >= o_.top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
  }
  if (o_.min_p > 0) {
    size_t keep = 1;
    while (keep < n && p[keep] >= o_.min_p * p[0]) ++keep;
    n = keep;
  }
  double total = 0;
  for (size_t i = 0; i < n; ++i) total += p[i];
  std::uniform_real_distribution<double> u(0.0, total);
  double r = u(rng_), c = 0;
  for (size_t i = 0; i < n; ++i) {
    c += p[i];
    if (r < c) return buf_[i].second;
  }
  return buf_[n - 1].second;
}

}  // namespace lrnn::gen
