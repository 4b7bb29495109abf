// Trainable GLA and RetNet: logits equal to the inference models on the real-format fixtures,
// the gradient of the cross-entropy loss w.r.t. every parameter against f64 central finite
// differences on tiny configs, equal gradients in every compute form, save -> load_model round
// trip, and seeded creation.
#include "io/npy.h"
#include "models/model.h"
#include "ops/dense/autograd.h"
#include "support/ag_gradcheck.h"
#include "train/reference_grads.h"
#include "train/trainable.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <unistd.h>

namespace lrnn::train {
namespace {

using models::compute_form;
const std::string data_dir = LRNN_TEST_DATA_DIR;

class trainable_fixture : public ::testing::TestWithParam<std::string> {};

TEST_P(trainable_fixture, logits_equal_the_inference_model) {
  const std::string dir = data_dir + "/" + GetParam();
  auto tm = load_trainable(dir);
  ASSERT_TRUE(tm.ok()) << tm.error().message();
  auto im = models::load_model(dir);
  ASSERT_TRUE(im.ok()) << im.error().message();
  const tensor ids = io::read_npy(dir + "/input_ids.npy").value();
  const tensor ref = io::read_npy(dir + "/logits.npy").value();
  for (compute_form f : {compute_form::chunk, compute_form::recurrent, compute_form::parallel}) {
    auto st = (*im)->initial_state(ids.size(0)).value();
    auto inf = (*im)->forward(ids, st, f);
    ASSERT_TRUE(inf.ok()) << inf.error().message();
    auto tr = (*tm)->forward(ids, f);
    ASSERT_TRUE(tr.ok()) << tr.error().message();
    const double d_inf = max_abs_diff(tr->value(), *inf), d_ref = max_abs_diff(tr->value(), ref);
    EXPECT_LE(d_inf, 1e-5) << GetParam() << " " << models::compute_form_name(f);
    EXPECT_LE(d_ref, 1e-4) << GetParam() << " " << models::compute_form_name(f);
    std::printf("[ trainable ] %s %s: max|train - inference| = %.3g, max|train - reference logits| = %.3g\n", GetParam().c_str(),
                models::compute_form_name(f), d_inf, d_ref);
  }
}

INSTANTIATE_TEST_SUITE_P(fla, trainable_fixture, ::testing::Values("fla_gla", "fla_gla_conv", "fla_retnet"));

// Against PyTorch autograd through fla (tools/make_grad_fixtures.py, fp32 on an H100, TF32 off):
// mean next-token cross-entropy over the fixture ids; every parameter's gradient within 1e-4
// relative (max abs difference over the reference's max abs value), computed here in f64.
class reference_gradients : public ::testing::TestWithParam<std::string> {};

TEST_P(reference_gradients, match_pytorch_autograd_through_fla) {
  const auto r = testing::check_reference_gradients(data_dir + "/" + GetParam(), compute_form::chunk);
  EXPECT_GT(r.parameters, 0u);
  EXPECT_LE(r.worst, 1e-4) << r.worst_name;
  std::printf("[ pytorch ] %s: loss %.8f (reference %.8f), %zu parameters, worst relative gradient difference %.3g (%s)\n",
              GetParam().c_str(), r.loss, r.ref_loss, r.parameters, r.worst, r.worst_name.c_str());
}

INSTANTIATE_TEST_SUITE_P(fla, reference_gradients, ::testing::Values("fla_gla", "fla_retnet", "fla_gla_conv", "fla_rwkv6", "fla_rwkv7", "fla_gated_deltanet"));

// Tiny configs: 2 layers, D = 16, vocab 32; a larger init range so the check sees nonlinearity.
io::config tiny_config(const std::string& variant) {
  io::json j = {{"model_type", "gla"},       {"vocab_size", 32},         {"hidden_size", 16},   {"num_hidden_layers", 2},
                {"num_heads", 2},            {"intermediate_size", 24},  {"norm_eps", 1e-6},    {"gate_low_rank_dim", 4},
                {"initializer_range", 0.3},  {"tie_word_embeddings", false}};
  if (variant == "gla_conv") {
    j["use_short_conv"] = true;
    j["conv_bias"] = true;
    j["conv_size"] = 3;
    j["clamp_min"] = -0.045;
    j["use_output_gate"] = false;
  } else if (variant == "gla_tied") {
    j["tie_word_embeddings"] = true;
    j["elementwise_affine"] = false;
  } else if (variant == "retnet") {
    j["model_type"] = "retnet";
    j["expand_k"] = 0.5;
    j["expand_v"] = 1.0;
  }
  return io::config::from_json(j, "tiny " + variant).value();
}

struct tiny_batch {
  tensor ids, targets;
};
tiny_batch make_batch(int64_t B, int64_t T, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> all(static_cast<size_t>(B * (T + 1)));
  for (auto& v : all) v = static_cast<int64_t>(rng() % static_cast<uint64_t>(vocab));
  std::vector<int64_t> ids, tg;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      ids.push_back(all[b * (T + 1) + t]);
      tg.push_back(all[b * (T + 1) + t + 1]);
    }
  tg[1] = -100;  // one ignored position
  return {tensor::from_vector(ids, {B, T}, dtype::i64), tensor::from_vector(tg, {B, T}, dtype::i64)};
}

result<ag::var> loss_of(trainable_model& m, const tiny_batch& b, compute_form f) {
  LRNN_ASSIGN_OR_RETURN(ag::var logits, m.forward(b.ids, f));
  ag::cross_entropy_options o;
  o.z_loss = 1e-3;
  return ag::cross_entropy(logits, b.targets, o);
}

class tiny_model : public ::testing::TestWithParam<std::string> {};

TEST_P(tiny_model, every_parameter_gradient_matches_finite_differences) {
  auto m = create_trainable(tiny_config(GetParam()), 11, dtype::f64);
  ASSERT_TRUE(m.ok()) << m.error().message();
  const tiny_batch batch = make_batch(2, 9, 32, 5);
  std::vector<std::pair<std::string, ag::var>> leaves;
  for (auto& p : (*m)->parameters()) leaves.emplace_back(p.name, p.v);
  testing::ag_gradcheck_options o;
  o.samples = 6;
  o.eps = 1e-4;
  o.richardson = true;
  o.rtol = 1e-6;
  o.atol = 1e-10;
  const auto rep = testing::ag_gradcheck_leaves([&]() { return loss_of(**m, batch, compute_form::chunk); }, leaves, o);
  EXPECT_TRUE(rep.pass) << rep.summary;
  EXPECT_EQ(rep.checked, static_cast<int64_t>(leaves.size()) * 6);
  std::printf("[ gradcheck ] %s: %zu parameters, %lld elements, max rel err %.3g\n", GetParam().c_str(), leaves.size(),
              static_cast<long long>(rep.checked), rep.max_rel_err);
}

TEST_P(tiny_model, every_form_gives_the_same_gradients) {
  auto m = create_trainable(tiny_config(GetParam()), 12, dtype::f64).value();
  const tiny_batch batch = make_batch(2, 21, 32, 6);
  std::vector<std::vector<tensor>> grads;
  std::vector<double> losses;
  for (compute_form f : {compute_form::chunk, compute_form::recurrent, compute_form::parallel}) {
    for (auto& p : m->parameters()) p.v.zero_grad();
    auto l = loss_of(*m, batch, f);
    ASSERT_TRUE(l.ok()) << l.error().message();
    losses.push_back(l->value().to_doubles()[0]);
    ASSERT_TRUE(ag::backward(*l).ok());
    std::vector<tensor> g;
    for (auto& p : m->parameters()) {
      ASSERT_TRUE(p.v.grad().defined()) << p.name;
      g.push_back(p.v.grad().clone().value());
    }
    grads.push_back(g);
  }
  double worst = 0;
  for (size_t f = 1; f < grads.size(); ++f) {
    EXPECT_NEAR(losses[f], losses[0], 1e-12);
    for (size_t i = 0; i < grads[0].size(); ++i) {
      double scale = 1e-12;
      for (double v : grads[0][i].to_doubles()) scale = std::max(scale, std::fabs(v));
      const double d = max_abs_diff(grads[f][i], grads[0][i]) / scale;
      worst = std::max(worst, d);
      EXPECT_LE(d, 1e-9) << m->parameters()[i].name << " form " << f;
    }
  }
  std::printf("[ forms ] %s: max relative gradient difference chunk vs recurrent/parallel %.3g\n", GetParam().c_str(), worst);
}

TEST_P(tiny_model, save_then_load_model_gives_the_same_logits) {
  auto m = create_trainable(tiny_config(GetParam()), 13).value();
  const std::string dir = ::testing::TempDir() + "/lrnn_trainable_" + GetParam() + "_" + std::to_string(::getpid());
  ASSERT_TRUE(save_trainable(*m, dir).ok());
  auto im = models::load_model(dir);
  ASSERT_TRUE(im.ok()) << im.error().message();
  const tiny_batch batch = make_batch(2, 20, 32, 7);
  auto st = (*im)->initial_state(2).value();
  const tensor a = (*im)->forward(batch.ids, st, compute_form::chunk).value();
  const tensor b = m->forward(batch.ids, compute_form::chunk).value().value();
  EXPECT_LE(max_abs_diff(a, b), 1e-6);
  // And load_trainable reads it back bit for bit.
  auto back = load_trainable(dir);
  ASSERT_TRUE(back.ok()) << back.error().message();
  ASSERT_EQ((*back)->parameters().size(), m->parameters().size());
  for (size_t i = 0; i < m->parameters().size(); ++i) {
    EXPECT_EQ((*back)->parameters()[i].name, m->parameters()[i].name);
    EXPECT_EQ(max_abs_diff((*back)->parameters()[i].v.value(), m->parameters()[i].v.value()), 0.0);
  }
  // Nothing but the two files (no temporaries left behind).
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"config.json", "model.safetensors"}));
  std::filesystem::remove_all(dir);
}

TEST_P(tiny_model, same_seed_same_weights) {
  auto a = create_trainable(tiny_config(GetParam()), 21).value();
  auto b = create_trainable(tiny_config(GetParam()), 21).value();
  auto c = create_trainable(tiny_config(GetParam()), 22).value();
  ASSERT_EQ(a->parameters().size(), b->parameters().size());
  double diff_other = 0;
  for (size_t i = 0; i < a->parameters().size(); ++i) {
    EXPECT_EQ(max_abs_diff(a->parameters()[i].v.value(), b->parameters()[i].v.value()), 0.0);
    diff_other = std::max(diff_other, max_abs_diff(a->parameters()[i].v.value(), c->parameters()[i].v.value()));
  }
  EXPECT_GT(diff_other, 0.0);
}

INSTANTIATE_TEST_SUITE_P(fla, tiny_model, ::testing::Values("gla", "gla_conv", "gla_tied", "retnet"));

TEST(trainable_init, follows_fla_init_weights) {
  io::config c = tiny_config("gla_conv");
  auto m = create_trainable(c, 3).value();
  for (auto& p : m->parameters()) {
    const auto v = p.v.value().to_doubles();
    const bool is_norm = p.name.find("norm") != std::string::npos, is_bias = p.name.find("bias") != std::string::npos;
    if (is_norm || is_bias) {
      for (double x : v) EXPECT_EQ(x, is_norm ? 1.0 : 0.0) << p.name;
    } else {
      double s = 0, s2 = 0;
      for (double x : v) s += x, s2 += x * x;
      const double n = static_cast<double>(v.size()), sd = std::sqrt(s2 / n - (s / n) * (s / n));
      EXPECT_NEAR(sd, 0.3, 0.3 * (0.5 + 3.0 / std::sqrt(n))) << p.name;  // initializer_range 0.3
    }
  }
  // The generator is std::mt19937_64 (the same stream on every platform) with our own transforms
  // (uniform from the top 53 bits, Box-Muller), not std::normal_distribution (which differs
  // between standard libraries): the first embedding value is the first pair's normal.
  std::mt19937_64 g(3);
  const double u1 = static_cast<double>(g() >> 11) * 0x1.0p-53, u2 = static_cast<double>(g() >> 11) * 0x1.0p-53;
  const double first = 0.3 * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  EXPECT_EQ(m->parameters()[0].name, "model.embeddings.weight");
  EXPECT_EQ(m->parameters()[0].v.value().to_doubles()[0], static_cast<double>(static_cast<float>(first)));
  EXPECT_FALSE(create_trainable(io::config::from_json({{"model_type", "nope"}, {"vocab_size", 4}, {"hidden_size", 4}, {"num_hidden_layers", 1}}, "x").value(), 1).ok());
  EXPECT_FALSE(create_trainable(c, 1, dtype::bf16).ok());
  EXPECT_FALSE(load_trainable(data_dir + "/does_not_exist").ok());
  // A config that does not match the weights: the error names the tensor and the expectation.
  const std::string dir = ::testing::TempDir() + "/lrnn_trainable_bad_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(data_dir + "/fla_gla/model.safetensors", dir + "/model.safetensors",
                             std::filesystem::copy_options::overwrite_existing);
  io::json j = io::config::read(data_dir + "/fla_gla/config.json").value().raw();
  j["expand_k"] = 1.0;
  { std::ofstream(dir + "/config.json") << j.dump(); }
  auto wrong = load_trainable(dir);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message().find("q_proj.weight"), std::string::npos) << wrong.error().message();
  EXPECT_NE(wrong.error().message().find("expand_k"), std::string::npos) << wrong.error().message();
  std::filesystem::remove_all(dir);
  auto types = trainable_model_types();
  EXPECT_NE(std::find(types.begin(), types.end(), "gla"), types.end());
  EXPECT_NE(std::find(types.begin(), types.end(), "retnet"), types.end());
}

}  // namespace
}  // namespace lrnn::train
