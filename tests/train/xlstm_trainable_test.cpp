// Trainable xLSTM: fixture logits (qk_dim_factor 1.0 and 0.5), f64 model-level gradient check in
// both weight modes, save -> load_model.
#include "train/arch_trainable_util.h"

namespace lrnn {
namespace {

TEST(XlstmTrainable, FixtureLogitsMatchReferenceAndInference) {
  for (const char* fx : {"hf_xlstm", "hf_xlstm_qk05"})
    for (auto form : {models::compute_form::chunk, models::compute_form::recurrent, models::compute_form::parallel}) {
      auto n = testing::check_fixture_logits(fx, form);
      std::printf("%s %s: max |trainable - logits.npy| = %.3g, max |trainable - inference| = %.3g\n", fx,
                  models::compute_form_name(form), n.vs_reference, n.vs_inference);
      EXPECT_GE(n.vs_reference, 0);
      EXPECT_LE(n.vs_reference, 1e-5) << fx;
      EXPECT_GE(n.vs_inference, 0);
      EXPECT_LE(n.vs_inference, 1e-5) << fx;
    }
}

std::string tiny(const char* mode, bool bias) {
  return std::string(R"({"model_type": "xlstm", "vocab_size": 11, "hidden_size": 16, "num_blocks": 2, "num_hidden_layers": 2,
    "num_heads": 2, "qk_dim_factor": 0.5, "v_dim_factor": 1.0, "ffn_proj_factor": 1.5, "ffn_round_up_to_multiple_of": 8,
    "gate_soft_cap": 15.0, "output_logit_soft_cap": 30.0, "norm_eps": 1e-6, "eps": 1e-6, "tie_word_embeddings": false,
    "weight_mode": ")") + mode + R"(", "use_bias": )" + (bias ? "true" : "false") + "}";
}

TEST(XlstmTrainable, EveryParameterGradientMatchesFiniteDifferences) {
  for (auto [mode, bias] : {std::pair{"single", false}, std::pair{"fused", true}})
    for (auto form : {models::compute_form::chunk, models::compute_form::recurrent}) {
      std::vector<std::string> zero;
      auto rep = testing::check_model_gradients(tiny(mode, bias), form, 2, 19, 5, 0.2, &zero);
      ASSERT_TRUE(rep.ok) << rep.error;
      std::printf("xlstm %s bias=%d %s: %lld elements checked, worst scaled error %.3g (%s)\n", mode, bias,
                  models::compute_form_name(form), static_cast<long long>(rep.checked), rep.worst, rep.worst_leaf.c_str());
      EXPECT_LT(rep.worst, 1e-5) << rep.worst_leaf;
      EXPECT_TRUE(zero.empty()) << "parameter with an all-zero gradient: " << zero.front();
    }
}

TEST(XlstmTrainable, SaveThenLoadModelGivesTheSameLogits) {
  for (const char* fx : {"hf_xlstm", "hf_xlstm_qk05"}) {
    const double d = testing::check_save_roundtrip(fx);
    std::printf("%s save -> load_model: max |diff| = %.3g\n", fx, d);
    EXPECT_GE(d, 0);
    EXPECT_LE(d, 1e-5);
  }
}

}  // namespace
}  // namespace lrnn
