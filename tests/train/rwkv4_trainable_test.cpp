// Trainable RWKV-4 (HF "rwkv"): fixture logits, f64 model-level gradient check, save -> load_model.
#include "train/arch_trainable_util.h"

namespace lrnn {
namespace {

TEST(Rwkv4Trainable, FixtureLogitsMatchReferenceAndInference) {
  for (auto form : {models::compute_form::chunk, models::compute_form::recurrent}) {
    testing::expect_fixture_logits("hf_rwkv4", "rwkv4", form);
  }
}

const char* tiny = R"({"model_type": "rwkv", "vocab_size": 11, "hidden_size": 16, "attention_hidden_size": 12,
  "intermediate_size": 24, "num_hidden_layers": 2, "layer_norm_epsilon": 1e-5, "rescale_every": 0, "tie_word_embeddings": false})";

TEST(Rwkv4Trainable, EveryParameterGradientMatchesFiniteDifferences) {
  for (auto form : {models::compute_form::chunk, models::compute_form::recurrent}) {
    testing::expect_model_gradients("rwkv4", tiny, form, 2, 19, 5, 0.2);
  }
}

TEST(Rwkv4Trainable, SaveThenLoadModelGivesTheSameLogits) {
  testing::expect_save_roundtrip("hf_rwkv4", "rwkv4");
}

}  // namespace
}  // namespace lrnn
