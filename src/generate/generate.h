// The inference engine: prefill each prompt with a chunkwise (or parallel) forward, then decode
// the batch token by token with the recurrent form, all state in one model_state whose size
// does not grow with the generated length. Reports tokens/s and peak memory.
#pragma once

#include "generate/sampler.h"
#include "models/model.h"

#include <functional>
#include <optional>
#include <vector>

namespace lrnn::gen {

// Key of the engine's own entry in a model_state: the logits after the last processed token,
// [B, vocab], so a saved state can continue without reprocessing its prompt.
inline constexpr const char* last_logits_key = "engine.last_logits";

struct generate_options {
  int64_t max_new_tokens = 32;
  sampling_options sampling;
  std::vector<int64_t> stop_ids;
  models::compute_form prefill_form = models::compute_form::automatic;
  // Called for each generated token as it is produced: (prompt index, token).
  std::function<void(int64_t, int64_t)> on_token;
};

struct generate_stats {
  int64_t prefill_tokens = 0, decode_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  uint64_t peak_rss_bytes = 0;  // of the whole process, as the OS counts it
  // Peak RSS after 16, 32, 64, ... generated tokens (and the last), in one run: memory growth
  // with generated length, free of the run-to-run noise of comparing two processes.
  std::vector<std::pair<int64_t, uint64_t>> peak_rss_at_tokens;
  uint64_t state_bytes = 0;
};

struct generate_result {
  std::vector<std::vector<int64_t>> ids;  // generated tokens per prompt (stop token included)
  generate_stats stats;
};

// Runs the prompts (each may be empty only when `start` supplies a state) through the model.
// `start`: a state to continue from (batch = number of prompts, or 1 to share it).
// `after_prefill`: receives the state after the prompts (for --save-state).
result<generate_result> generate(models::model& m, const std::vector<std::vector<int64_t>>& prompts,
                                 const generate_options& options, const models::model_state* start = nullptr,
                                 models::model_state* after_prefill = nullptr);

// Prefill only: processes `ids` (one prompt) from `state` and stores the last logits in it.
status prefill(models::model& m, const std::vector<int64_t>& ids, models::model_state& state,
               models::compute_form form, int64_t* tokens_done = nullptr);

uint64_t peak_rss_bytes();

}  // namespace lrnn::gen
