// Trainable xLSTM: fixture logits (qk_dim_factor 1.0 and 0.5), f64 model-level gradient check in
// both weight modes, save -> load_model.
#include "train/arch_trainable_util.h"

namespace lrnn {
namespace {

TEST(XlstmTrainable, FixtureLogitsMatchReferenceAndInference) {
  for (const char* fx : {"hf_xlstm", "hf_xlstm_qk05"})
    for (auto form : {models::compute_form::chunk, models::compute_form::recurrent, models::compute_form::parallel}) {
      testing::expect_fixture_logits(fx, fx, form);
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
      testing::expect_model_gradients(std::string("xlstm ") + mode + " bias=" + (bias ? "1" : "0"), tiny(mode, bias), form, 2, 19, 5, 0.2);
    }
}

TEST(XlstmTrainable, SaveThenLoadModelGivesTheSameLogits) {
  for (const char* fx : {"hf_xlstm", "hf_xlstm_qk05"}) {
    testing::expect_save_roundtrip(fx, fx);
  }
}

}  // namespace
}  // namespace lrnn
