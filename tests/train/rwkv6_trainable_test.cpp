// Trainable RWKV-6: fixture logits, f64 model-level gradient check, save -> load_model.
#include "train/arch_trainable_util.h"

namespace lrnn {
namespace {

TEST(Rwkv6Trainable, FixtureLogitsMatchReferenceAndInference) {
  for (auto form : {models::compute_form::chunk, models::compute_form::recurrent, models::compute_form::parallel}) {
    auto n = testing::check_fixture_logits("fla_rwkv6", form);
    std::printf("rwkv6 %s: max |trainable - logits.npy| = %.3g, max |trainable - inference| = %.3g\n",
                models::compute_form_name(form), n.vs_reference, n.vs_inference);
    EXPECT_GE(n.vs_reference, 0);
    EXPECT_LE(n.vs_reference, 1e-5);
    EXPECT_GE(n.vs_inference, 0);
    EXPECT_LE(n.vs_inference, 1e-5);
  }
}

const char* tiny = R"({"model_type": "rwkv6", "vocab_size": 11, "hidden_size": 16, "num_hidden_layers": 2, "num_heads": 2,
  "expand_k": 0.5, "expand_v": 1.0, "proj_low_rank_dim": 3, "gate_low_rank_dim": 4, "intermediate_size": 24,
  "norm_eps": 1e-5, "tie_word_embeddings": false})";

TEST(Rwkv6Trainable, EveryParameterGradientMatchesFiniteDifferences) {
  for (auto form : {models::compute_form::chunk, models::compute_form::recurrent}) {
    std::vector<std::string> zero;
    auto rep = testing::check_model_gradients(tiny, form, 2, 19, 5, 0.2, &zero);
    ASSERT_TRUE(rep.ok) << rep.error;
    std::printf("rwkv6 %s: %lld elements checked, worst scaled error %.3g (%s)\n", models::compute_form_name(form),
                static_cast<long long>(rep.checked), rep.worst, rep.worst_leaf.c_str());
    EXPECT_LT(rep.worst, 1e-5) << rep.worst_leaf;
    EXPECT_TRUE(zero.empty()) << "parameter with an all-zero gradient: " << zero.front();
  }
}

TEST(Rwkv6Trainable, SaveThenLoadModelGivesTheSameLogits) {
  const double d = testing::check_save_roundtrip("fla_rwkv6");
  std::printf("rwkv6 save -> load_model: max |diff| = %.3g\n", d);
  EXPECT_GE(d, 0);
  EXPECT_LE(d, 1e-5);
}

}  // namespace
}  // namespace lrnn
