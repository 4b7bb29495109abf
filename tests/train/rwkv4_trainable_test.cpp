// Trainable RWKV-4 (HF "rwkv"): fixture logits, f64 model-level gradient check, save -> load_model.
#include "train/arch_trainable_util.h"

namespace lrnn {
namespace {

TEST(Rwkv4Trainable, FixtureLogitsMatchReferenceAndInference) {
  for (auto form : {models::compute_form::chunk, models::compute_form::recurrent}) {
    auto n = testing::check_fixture_logits("hf_rwkv4", form);
    std::printf("rwkv4 %s: max |trainable - logits.npy| = %.3g, max |trainable - inference| = %.3g\n",
                models::compute_form_name(form), n.vs_reference, n.vs_inference);
    EXPECT_GE(n.vs_reference, 0);
    EXPECT_LE(n.vs_reference, 1e-5);
    EXPECT_GE(n.vs_inference, 0);
    EXPECT_LE(n.vs_inference, 1e-5);
  }
}

const char* tiny = R"({"model_type": "rwkv", "vocab_size": 11, "hidden_size": 16, "attention_hidden_size": 12,
  "intermediate_size": 24, "num_hidden_layers": 2, "layer_norm_epsilon": 1e-5, "rescale_every": 0, "tie_word_embeddings": false})";

TEST(Rwkv4Trainable, EveryParameterGradientMatchesFiniteDifferences) {
  for (auto form : {models::compute_form::chunk, models::compute_form::recurrent}) {
    std::vector<std::string> zero;
    auto rep = testing::check_model_gradients(tiny, form, 2, 19, 5, 0.2, &zero);
    ASSERT_TRUE(rep.ok) << rep.error;
    std::printf("rwkv4 %s: %lld elements checked, worst scaled error %.3g (%s)\n", models::compute_form_name(form),
                static_cast<long long>(rep.checked), rep.worst, rep.worst_leaf.c_str());
    EXPECT_LT(rep.worst, 1e-5) << rep.worst_leaf;
    EXPECT_TRUE(zero.empty()) << "parameter with an all-zero gradient: " << zero.front();
  }
}

TEST(Rwkv4Trainable, SaveThenLoadModelGivesTheSameLogits) {
  const double d = testing::check_save_roundtrip("hf_rwkv4");
  std::printf("rwkv4 save -> load_model: max |diff| = %.3g\n", d);
  EXPECT_GE(d, 0);
  EXPECT_LE(d, 1e-5);
}

}  // namespace
}  // namespace lrnn
