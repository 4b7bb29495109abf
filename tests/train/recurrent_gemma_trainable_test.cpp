// Trainable RecurrentGemma: fixture logits, f64 model-level gradient check, save -> load_model.
#include "train/arch_trainable_util.h"

namespace lrnn {
namespace {

TEST(RecurrentGemmaTrainable, FixtureLogitsMatchReferenceAndInference) {
  for (auto form : {models::compute_form::chunk, models::compute_form::recurrent}) {
    auto n = testing::check_fixture_logits("hf_recurrentgemma", form);
    std::printf("recurrent_gemma %s: max |trainable - logits.npy| = %.3g, max |trainable - inference| = %.3g\n",
                models::compute_form_name(form), n.vs_reference, n.vs_inference);
    EXPECT_GE(n.vs_reference, 0);
    EXPECT_LE(n.vs_reference, 1e-5);
    EXPECT_GE(n.vs_inference, 0);
    EXPECT_LE(n.vs_inference, 1e-5);
  }
}

// Both block kinds, GQA (2 query heads per KV head), a window shorter than the sequence, an untied head.
const char* tiny = R"({"model_type": "recurrent_gemma", "vocab_size": 11, "hidden_size": 16, "num_hidden_layers": 3,
  "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 4, "lru_width": 8, "conv1d_width": 3,
  "attention_window_size": 4, "intermediate_size": 24, "block_types": ["recurrent", "attention"],
  "partial_rotary_factor": 0.5, "logits_soft_cap": 5.0, "tie_word_embeddings": false, "attention_bias": true})";

TEST(RecurrentGemmaTrainable, EveryParameterGradientMatchesFiniteDifferences) {
  for (auto form : {models::compute_form::chunk, models::compute_form::recurrent}) {
    std::vector<std::string> zero;
    auto rep = testing::check_model_gradients(tiny, form, 2, 9, 5, 0.2, &zero);
    ASSERT_TRUE(rep.ok) << rep.error;
    std::printf("recurrent_gemma %s: %lld elements checked, worst scaled error %.3g (%s)\n", models::compute_form_name(form),
                static_cast<long long>(rep.checked), rep.worst, rep.worst_leaf.c_str());
    EXPECT_LT(rep.worst, 1e-5) << rep.worst_leaf;
    EXPECT_TRUE(zero.empty()) << "parameter with an all-zero gradient: " << zero.front();
  }
}

TEST(RecurrentGemmaTrainable, SaveThenLoadModelGivesTheSameLogits) {
  const double d = testing::check_save_roundtrip("hf_recurrentgemma");
  std::printf("recurrent_gemma save -> load_model: max |diff| = %.3g\n", d);
  EXPECT_GE(d, 0);
  EXPECT_LE(d, 1e-5);
}

}  // namespace
}  // namespace lrnn
