// The HF-format trainable models' gradients against PyTorch autograd through transformers' own
// modeling code (tools/make_grad_fixtures.py --hf: transformers 5.17.0, CPU, float64, training
// mode; loss = mean next-token cross-entropy over the fixture ids): every parameter within 1e-4
// relative, in each compute form the architecture has. hf_xlstm's reference ran transformers'
// chunkwise native-autograd kernel (chunk 16), hf_xlstm_qk05's its native recurrent sequence
// kernel (mode "inference"; the chunkwise kernel needs qk dim == v dim).
#include "train/reference_grads.h"

namespace lrnn {
namespace {

using models::compute_form;

struct reference_case {
  const char* fixture;
  std::vector<compute_form> forms;
};

class hf_reference_gradients : public ::testing::TestWithParam<reference_case> {};

TEST_P(hf_reference_gradients, match_pytorch_autograd_through_transformers) {
  const reference_case& c = GetParam();
  for (compute_form f : c.forms) {
    const auto r = testing::check_reference_gradients(std::string(LRNN_TEST_DATA_DIR) + "/" + c.fixture, f);
    std::printf("[ pytorch ] %s %s: loss %.10f (reference %.10f), %zu parameters, worst relative gradient difference %.3g (%s)\n",
                c.fixture, models::compute_form_name(f), r.loss, r.ref_loss, r.parameters, r.worst, r.worst_name.c_str());
    EXPECT_GT(r.parameters, 0u) << c.fixture << " " << models::compute_form_name(f);
    EXPECT_LE(r.worst, 1e-4) << c.fixture << " " << models::compute_form_name(f) << ": " << r.worst_name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    hf, hf_reference_gradients,
    ::testing::Values(reference_case{"hf_rwkv4", {compute_form::chunk, compute_form::recurrent}},
                      reference_case{"hf_recurrentgemma", {compute_form::chunk, compute_form::recurrent}},
                      reference_case{"hf_xlstm", {compute_form::chunk, compute_form::recurrent, compute_form::parallel}},
                      reference_case{"hf_xlstm_qk05", {compute_form::chunk, compute_form::recurrent, compute_form::parallel}}),
    [](const ::testing::TestParamInfo<reference_case>& i) { return std::string(i.param.fixture); });

}  // namespace
}  // namespace lrnn
