// The inference engine (see generate.h).
#include "generate/generate.h"

#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>

namespace lrnn::gen {

uint64_t peak_rss_bytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;
}

namespace {
using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// Decoding whose work per step (weight bytes times the batch: each weight is used once per
// sequence) is under this runs on one thread: such a step takes tens of microseconds on one
// core, less than the fork/join of its dozens of small parallel regions, and on a machine
// shared with other work a region waits for a descheduled thread (the tiny GLA fixture decoded
// 4.8k tokens/s on one thread and 55 on two under load; bench/models_decode.md).
constexpr uint64_t one_thread_below_bytes = uint64_t{4} << 20;

// Sets this thread's OpenMP team size for the scope (omp_set_num_threads is per thread).
class omp_threads_scope {
 public:
  explicit omp_threads_scope(int n) : saved_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~omp_threads_scope() { omp_set_num_threads(saved_); }
  omp_threads_scope(const omp_threads_scope&) = delete;
  omp_threads_scope& operator=(const omp_threads_scope&) = delete;

 private:
  int saved_;
};

// Keeps the logits of the last position of `logits` [B, T, V] in the state.
status store_last_logits(const tensor& logits, models::model_state& st) {
  const int64_t T = logits.size(1);
  LRNN_ASSIGN_OR_RETURN(tensor last, logits.select(1, T - 1));
  LRNN_ASSIGN_OR_RETURN(tensor c, last.clone());
  st.tensors[last_logits_key] = std::move(c);
  return {};
}
}  // namespace

status prefill(models::model& m, const std::vector<int64_t>& ids, models::model_state& state, models::compute_form form,
               int64_t* tokens_done) {
  if (ids.empty()) return {};
  for (int64_t id : ids)
    if (id < 0 || id >= m.vocab_size())
      return make_error(status_code::invalid_argument, "token id {} is outside the vocabulary [0, {})", id, m.vocab_size());
  const tensor t = tensor::from_vector(ids, {1, static_cast<int64_t>(ids.size())}, dtype::i64);
  LRNN_ASSIGN_OR_RETURN(tensor logits, m.forward(t, state, form));
  if (tokens_done) *tokens_done += static_cast<int64_t>(ids.size());
  return store_last_logits(logits, state);
}

result<generate_result> generate(models::model& m, const std::vector<std::vector<int64_t>>& prompts,
                                 const generate_options& o, const models::model_state* start,
                                 models::model_state* after_prefill) {
  LRNN_TRY(validate(o.sampling));
  if (prompts.empty()) return make_error(status_code::invalid_argument, "generate: no prompts");
  if (o.max_new_tokens < 0) return make_error(status_code::invalid_argument, "--max-new-tokens must be >= 0");
  const int64_t B = static_cast<int64_t>(prompts.size());
  if (start && start->batch != 1 && start->batch != B)
    return make_error(status_code::invalid_argument, "a state of batch {} cannot start {} prompts", start->batch, B);
  generate_result res;
  res.ids.resize(B);

  // Prefill each prompt on its own (prompts differ in length), then stack for decoding.
  const auto t0 = clock_type::now();
  std::vector<models::model_state> states;
  for (int64_t b = 0; b < B; ++b) {
    models::model_state st;
    if (start) {
      if (start->batch == 1) {
        st = *start;
        for (auto& [k, t] : st.tensors) {
          LRNN_ASSIGN_OR_RETURN(tensor c, t.clone());
          t = std::move(c);
        }
      } else {
        LRNN_ASSIGN_OR_RETURN(st, start->select(b));
      }
    } else {
      LRNN_ASSIGN_OR_RETURN(st, m.initial_state(1));
    }
    if (prompts[b].empty() && !st.tensors.count(last_logits_key))
      return make_error(status_code::invalid_argument, "prompt {} is empty (give token ids, or --load-state to continue a state)", b);
    LRNN_TRY(prefill(m, prompts[b], st, o.prefill_form, &res.stats.prefill_tokens));
    states.push_back(std::move(st));
  }
  res.stats.prefill_seconds = seconds_since(t0);
  LRNN_ASSIGN_OR_RETURN(models::model_state state, models::model_state::stack(states));
  states.clear();
  if (after_prefill) *after_prefill = state;

  // Decode: sample from the last logits, feed the batch of new tokens, repeat.
  const auto t1 = clock_type::now();
  const int64_t V = m.vocab_size();
  std::vector<sampler> samplers;
  for (int64_t b = 0; b < B; ++b) {
    sampling_options so = o.sampling;
    so.seed = o.sampling.seed + static_cast<uint64_t>(b);
    samplers.emplace_back(so);
  }
  std::vector<std::vector<int64_t>> history = prompts;
  std::vector<bool> done(B, false);
  const int decode_threads = m.weight_bytes() * static_cast<uint64_t>(B) < one_thread_below_bytes ? 1 : omp_get_max_threads();
  omp_threads_scope threads(decode_threads);
  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    const tensor& last = state.tensors.at(last_logits_key);  // [B, V]
    std::vector<int64_t> next(B, 0);
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      next[b] = samplers[b].sample(last.data<float>() + b * V, V, history[b]);
      res.ids[b].push_back(next[b]);
      history[b].push_back(next[b]);
      if (o.on_token) o.on_token(b, next[b]);
      if (std::find(o.stop_ids.begin(), o.stop_ids.end(), next[b]) != o.stop_ids.end()) done[b] = true;
    }
    ++res.stats.decode_tokens;
    const bool finished = std::all_of(done.begin(), done.end(), [](bool d) { return d; }) || step + 1 == o.max_new_tokens;
    if (const int64_t n = step + 1; finished || (n >= 16 && (n & (n - 1)) == 0))
      res.stats.peak_rss_at_tokens.emplace_back(n, peak_rss_bytes());
    if (finished) break;
    const tensor ids = tensor::from_vector(next, {B, 1}, dtype::i64);
    LRNN_ASSIGN_OR_RETURN(tensor logits, m.forward(ids, state, models::compute_form::recurrent));
    LRNN_TRY(store_last_logits(logits, state));
  }
  res.stats.decode_seconds = seconds_since(t1);
  res.stats.decode_tokens = 0;
  for (const auto& v : res.ids) res.stats.decode_tokens += static_cast<int64_t>(v.size());
  res.stats.peak_rss_bytes = peak_rss_bytes();
  res.stats.state_bytes = state.nbytes();
  return res;
}

}  // namespace lrnn::gen
