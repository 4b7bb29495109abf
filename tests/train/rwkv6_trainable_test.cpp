// Trainable RWKV-6: fixture logits, f64 model-level gradient check, save -> load_model.
#include "train/arch_trainable_util.h"

namespace lrnn {
namespace {

TEST(Rwkv6Trainable, FixtureLogitsMatchReferenceAndInference) {
  for (auto form : {models::compute_form::chunk, models::compute_form::recurrent, models::compute_form::parallel}) {
    testing::expect_fixture_logits("fla_rwkv6", "rwkv6", form);
  }
}

const char* tiny = R"({"model_type": "rwkv6", "vocab_size": 11, "hidden_size": 16, "num_hidden_layers": 2, "num_heads": 2,
  "expand_k": 0.5, "expand_v": 1.0, "proj_low_rank_dim": 3, "gate_low_rank_dim": 4, "intermediate_size": 24,
  "norm_eps": 1e-5, "tie_word_embeddings": false})";

TEST(Rwkv6Trainable, EveryParameterGradientMatchesFiniteDifferences) {
  for (auto form : {models::compute_form::chunk, models::compute_form::recurrent}) {
    testing::expect_model_gradients("rwkv6", tiny, form, 2, 19, 5, 0.2);
  }
}

TEST(Rwkv6Trainable, SaveThenLoadModelGivesTheSameLogits) {
  testing::expect_save_roundtrip("fla_rwkv6", "rwkv6");
}

}  // namespace
}  // namespace lrnn
