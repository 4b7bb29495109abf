// Trainable Gated DeltaNet: fixture logits (plain and grouped value heads), f64 model-level
// gradient check, save -> load_model.
#include "train/arch_trainable_util.h"

namespace lrnn {
namespace {

TEST(GatedDeltaNetTrainable, FixtureLogitsMatchReferenceAndInference) {
  for (const char* fx : {"fla_gated_deltanet", "fla_gated_deltanet_gva"})
    for (auto form : {models::compute_form::chunk, models::compute_form::recurrent}) {
      testing::expect_fixture_logits(fx, fx, form);
    }
}

// Grouped value heads (4 value heads over 2 key heads), negative eigenvalues, conv bias, untied head.
const char* tiny = R"({"model_type": "gated_deltanet", "vocab_size": 11, "hidden_size": 16, "num_hidden_layers": 2,
  "num_heads": 2, "num_v_heads": 4, "head_dim": 4, "expand_v": 1.5, "conv_size": 3, "conv_bias": true,
  "allow_neg_eigval": true, "intermediate_size": 24, "norm_eps": 1e-6, "tie_word_embeddings": false})";

TEST(GatedDeltaNetTrainable, EveryParameterGradientMatchesFiniteDifferences) {
  for (auto form : {models::compute_form::chunk, models::compute_form::recurrent}) {
    testing::expect_model_gradients("gated_deltanet", tiny, form, 2, 19, 5, 0.1);
  }
}

TEST(GatedDeltaNetTrainable, SaveThenLoadModelGivesTheSameLogits) {
  for (const char* fx : {"fla_gated_deltanet", "fla_gated_deltanet_gva"}) {
    testing::expect_save_roundtrip(fx, fx);
  }
}

}  // namespace
}  // namespace lrnn
