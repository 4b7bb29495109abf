// Trainable RecurrentGemma: fixture logits, f64 model-level gradient check, save -> load_model.
#include "train/arch_trainable_util.h"

namespace lrnn {
namespace {

TEST(RecurrentGemmaTrainable, FixtureLogitsMatchReferenceAndInference) {
  for (auto form : {models::compute_form::chunk, models::compute_form::recurrent}) {
    testing::expect_fixture_logits("hf_recurrentgemma", "recurrent_gemma", form);
  }
}

// Both block kinds, GQA (2 query heads per KV head), a window shorter than the sequence, an untied head.
const char* tiny = R"({"model_type": "recurrent_gemma", "vocab_size": 11, "hidden_size": 16, "num_hidden_layers": 3,
  "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 4, "lru_width": 8, "conv1d_width": 3,
  "attention_window_size": 4, "intermediate_size": 24, "block_types": ["recurrent", "attention"],
  "partial_rotary_factor": 0.5, "logits_soft_cap": 5.0, "tie_word_embeddings": false, "attention_bias": true})";

TEST(RecurrentGemmaTrainable, EveryParameterGradientMatchesFiniteDifferences) {
  for (auto form : {models::compute_form::chunk, models::compute_form::recurrent}) {
    testing::expect_model_gradients("recurrent_gemma", tiny, form, 2, 9, 5, 0.2);
  }
}

TEST(RecurrentGemmaTrainable, SaveThenLoadModelGivesTheSameLogits) {
  testing::expect_save_roundtrip("hf_recurrentgemma", "recurrent_gemma");
}

}  // namespace
}  // namespace lrnn
