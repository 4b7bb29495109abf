// Shared checks for the trainable architectures (tests/train/*_trainable_test.cpp):
//  (a) load_trainable on a real-format fixture gives the inference model's logits and the
//      fixture's reference logits.npy;
//  (b) on a tiny f64 config with randomised weights, the gradient of a cross-entropy loss with
//      respect to every parameter matches central finite differences (a random subset of
//      elements per parameter, every parameter covered), error relative to the parameter's
//      largest checked gradient (floor 1e-3);
//  (c) save_trainable then models::load_model gives the trainable model's logits.
#pragma once

#include "io/config.h"
#include "io/npy.h"
#include "models/model.h"
#include "ops/ag_fd_util.h"
#include "ops/dense/autograd.h"
#include "train/trainable.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <unistd.h>

namespace lrnn::testing {

inline const std::string arch_data_dir = LRNN_TEST_DATA_DIR;

struct fixture_numbers {
  double vs_reference = -1;  // max |trainable - logits.npy|
  double vs_inference = -1;  // max |trainable - inference model|
};

inline fixture_numbers check_fixture_logits(const std::string& fixture, models::compute_form form) {
  fixture_numbers n;
  const std::string dir = arch_data_dir + "/" + fixture;
  auto tm = train::load_trainable(dir, dtype::f32);
  EXPECT_TRUE(tm.ok()) << (tm.ok() ? "" : tm.error().message());
  if (!tm.ok()) return n;
  tensor ids = io::read_npy(dir + "/input_ids.npy").value();
  tensor ref = io::read_npy(dir + "/logits.npy").value();
  ag::no_grad_guard ng;
  auto out = (*tm)->forward(ids, form);
  EXPECT_TRUE(out.ok()) << (out.ok() ? "" : out.error().message());
  if (!out.ok()) return n;
  n.vs_reference = max_abs_diff(out->value(), ref);
  auto im = models::load_model(dir);
  EXPECT_TRUE(im.ok());
  if (!im.ok()) return n;
  auto st = (*im)->initial_state(ids.size(0)).value();
  auto il = (*im)->forward(ids, st, models::compute_form::chunk);
  EXPECT_TRUE(il.ok());
  if (il.ok()) n.vs_inference = max_abs_diff(out->value(), *il);
  return n;
}

// Builds `config_json` in f64, adds N(0, noise) to every parameter (so no gradient is zero by
// construction, e.g. behind a zero-initialised LoRA), and checks d(cross entropy)/d(param).
inline fd_report check_model_gradients(const std::string& config_json, models::compute_form form, int64_t B, int64_t T,
                                       int64_t samples_per_param, double noise, std::vector<std::string>* zero_grad_params = nullptr) {
  fd_report bad;
  bad.ok = false;
  auto cfg = io::config::from_json_text(config_json, "tiny config");
  if (!cfg.ok()) {
    bad.error = cfg.error().message();
    return bad;
  }
  auto m = train::create_trainable(*cfg, 1234, dtype::f64);
  if (!m.ok()) {
    bad.error = m.error().message();
    return bad;
  }
  std::mt19937_64 rng(99);
  std::normal_distribution<double> nd(0.0, noise);
  std::vector<std::pair<std::string, ag::var>> leaves;
  for (auto& p : (*m)->parameters()) {
    tensor& t = p.v.mutable_value();
    if (t.type() != dtype::f64) {
      bad.error = p.name + " is not f64";
      return bad;
    }
    for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] += nd(rng);
    leaves.emplace_back(p.name, p.v);
  }
  const int64_t V = (*m)->vocab_size();
  std::vector<int64_t> idv(B * T), tg(B * T);
  std::uniform_int_distribution<int64_t> tok(0, V - 1);
  for (auto& x : idv) x = tok(rng);
  for (auto& x : tg) x = tok(rng);
  const tensor ids = tensor::from_vector(idv, {B, T}, dtype::i64), targets = tensor::from_vector(tg, {B, T}, dtype::i64);
  train::trainable_model* mp = m->get();
  fd_report rep = fd_check(
      leaves,
      [&]() -> result<ag::var> {
        LRNN_ASSIGN_OR_RETURN(ag::var logits, mp->forward(ids, form));
        return ag::cross_entropy(logits, targets);
      },
      samples_per_param, 1e-6, 5, 1e-3);
  if (zero_grad_params)
    for (auto& [name, v] : leaves) {
      bool nz = false;
      if (v.grad().defined())
        for (double g : v.grad().to_doubles()) nz = nz || g != 0.0;
      if (!nz) zero_grad_params->push_back(name);
    }
  return rep;
}

// Saves the fixture's trainable model and reloads it with models::load_model.
inline double check_save_roundtrip(const std::string& fixture) {
  const std::string dir = arch_data_dir + "/" + fixture;
  auto tm = train::load_trainable(dir, dtype::f32);
  EXPECT_TRUE(tm.ok()) << (tm.ok() ? "" : tm.error().message());
  if (!tm.ok()) return -1;
  const std::string out = (std::filesystem::temp_directory_path() / ("lrnn_arch_save_" + fixture + "_" + std::to_string(getpid()))).string();
  std::filesystem::remove_all(out);
  status s = train::save_trainable(**tm, out);
  EXPECT_TRUE(s.ok()) << s.message();
  auto im = models::load_model(out);
  EXPECT_TRUE(im.ok()) << (im.ok() ? "" : im.error().message());
  if (!im.ok()) return -1;
  tensor ids = io::read_npy(dir + "/input_ids.npy").value();
  ag::no_grad_guard ng;
  auto tl = (*tm)->forward(ids, models::compute_form::chunk);
  auto st = (*im)->initial_state(ids.size(0)).value();
  auto il = (*im)->forward(ids, st, models::compute_form::chunk);
  EXPECT_TRUE(tl.ok() && il.ok());
  std::filesystem::remove_all(out);
  if (!tl.ok() || !il.ok()) return -1;
  return max_abs_diff(tl->value(), *il);
}

// check_fixture_logits, printed as "`label` <form>: ...", with both differences expected within `tol`.
inline fixture_numbers expect_fixture_logits(const std::string& fixture, const std::string& label, models::compute_form form,
                                             double tol = 1e-5) {
  fixture_numbers n = check_fixture_logits(fixture, form);
  std::printf("%s %s: max |trainable - logits.npy| = %.3g, max |trainable - inference| = %.3g\n", label.c_str(),
              models::compute_form_name(form), n.vs_reference, n.vs_inference);
  EXPECT_GE(n.vs_reference, 0) << fixture;
  EXPECT_LE(n.vs_reference, tol) << fixture;
  EXPECT_GE(n.vs_inference, 0) << fixture;
  EXPECT_LE(n.vs_inference, tol) << fixture;
  return n;
}

// check_model_gradients, printed as "`label` <form>: ...": worst scaled error below `tol`, no
// parameter with an all-zero gradient.
inline void expect_model_gradients(const std::string& label, const std::string& config_json, models::compute_form form, int64_t B,
                                   int64_t T, int64_t samples_per_param, double noise, double tol = 1e-5) {
  std::vector<std::string> zero;
  auto rep = check_model_gradients(config_json, form, B, T, samples_per_param, noise, &zero);
  ASSERT_TRUE(rep.ok) << rep.error;
  std::printf("%s %s: %lld elements checked, worst scaled error %.3g (%s)\n", label.c_str(), models::compute_form_name(form),
              static_cast<long long>(rep.checked), rep.worst, rep.worst_leaf.c_str());
  EXPECT_LT(rep.worst, tol) << rep.worst_leaf;
  EXPECT_TRUE(zero.empty()) << "parameter with an all-zero gradient: " << zero.front();
}

// check_save_roundtrip, printed as "`label` save -> load_model: ...", expected within `tol`.
inline void expect_save_roundtrip(const std::string& fixture, const std::string& label, double tol = 1e-5) {
  const double d = check_save_roundtrip(fixture);
  std::printf("%s save -> load_model: max |diff| = %.3g\n", label.c_str(), d);
  EXPECT_GE(d, 0) << fixture;
  EXPECT_LE(d, tol) << fixture;
}

}  // namespace lrnn::testing
