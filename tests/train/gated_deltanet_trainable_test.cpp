// Trainable Gated DeltaNet: fixture logits (plain and grouped value heads), f64 model-level
// gradient check, save -> load_model.
#include "train/arch_trainable_util.h"

namespace lrnn {
namespace {

TEST(GatedDeltaNetTrainable, FixtureLogitsMatchReferenceAndInference) {
  for (const char* fx : {"fla_gated_deltanet", "fla_gated_deltanet_gva"})
    for (auto form : {models::compute_form::chunk, models::compute_form::recurrent}) {
      auto n = testing::check_fixture_logits(fx, form);
      std::printf("%s %s: max |trainable - logits.npy| = %.3g, max |trainable - inference| = %.3g\n", fx,
                  models::compute_form_name(form), n.vs_reference, n.vs_inference);
      EXPECT_GE(n.vs_reference, 0);
      EXPECT_LE(n.vs_reference, 1e-5) << fx;
      EXPECT_GE(n.vs_inference, 0);
      EXPECT_LE(n.vs_inference, 1e-5) << fx;
    }
}

// Grouped value heads (4 value heads over 2 key heads), negative eigenvalues, conv bias, untied head.
const char* tiny = R"({"model_type": "gated_deltanet", "vocab_size": 11, "hidden_size": 16, "num_hidden_layers": 2,
  "num_heads": 2, "num_v_heads": 4, "head_dim": 4, "expand_v": 1.5, "conv_size": 3, "conv_bias": true,
  "allow_neg_eigval": true, "intermediate_size": 24, "norm_eps": 1e-6, "tie_word_embeddings": false})";

TEST(GatedDeltaNetTrainable, EveryParameterGradientMatchesFiniteDifferences) {
  for (auto form : {models::compute_form::chunk, models::compute_form::recurrent}) {
    std::vector<std::string> zero;
    auto rep = testing::check_model_gradients(tiny, form, 2, 19, 5, 0.1, &zero);
    ASSERT_TRUE(rep.ok) << rep.error;
    std::printf("gated_deltanet %s: %lld elements checked, worst scaled error %.3g (%s)\n", models::compute_form_name(form),
                static_cast<long long>(rep.checked), rep.worst, rep.worst_leaf.c_str());
    EXPECT_LT(rep.worst, 1e-5) << rep.worst_leaf;
    EXPECT_TRUE(zero.empty()) << "parameter with an all-zero gradient: " << zero.front();
  }
}

TEST(GatedDeltaNetTrainable, SaveThenLoadModelGivesTheSameLogits) {
  for (const char* fx : {"fla_gated_deltanet", "fla_gated_deltanet_gva"}) {
    const double d = testing::check_save_roundtrip(fx);
    std::printf("%s save -> load_model: max |diff| = %.3g\n", fx, d);
    EXPECT_GE(d, 0);
    EXPECT_LE(d, 1e-5);
  }
}

}  // namespace
}  // namespace lrnn
