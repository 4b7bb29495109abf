// Trainable RWKV-7: fixture logits, f64 model-level gradient check, save -> load_model.
#include "train/arch_trainable_util.h"

namespace lrnn {
namespace {

TEST(Rwkv7Trainable, FixtureLogitsMatchReferenceAndInference) {
  for (auto form : {models::compute_form::chunk, models::compute_form::recurrent}) {
    auto n = testing::expect_fixture_logits("fla_rwkv7", "rwkv7", form);
    RecordProperty(std::string("vs_reference_") + models::compute_form_name(form), std::to_string(n.vs_reference));
  }
}

const char* tiny = R"({"model_type": "rwkv7", "vocab_size": 13, "hidden_size": 16, "head_dim": 8, "num_hidden_layers": 2,
  "value_dim": 16, "decay_low_rank_dim": 4, "a_low_rank_dim": 4, "v_low_rank_dim": 3, "gate_low_rank_dim": 5,
  "intermediate_size": 24, "norm_eps": 1e-5, "tie_word_embeddings": false})";

TEST(Rwkv7Trainable, EveryParameterGradientMatchesFiniteDifferences) {
  for (auto form : {models::compute_form::chunk, models::compute_form::recurrent}) {
    testing::expect_model_gradients("rwkv7", tiny, form, 2, 19, 5, 0.1);
  }
}

TEST(Rwkv7Trainable, SaveThenLoadModelGivesTheSameLogits) {
  testing::expect_save_roundtrip("fla_rwkv7", "rwkv7");
}

}  // namespace
}  // namespace lrnn
