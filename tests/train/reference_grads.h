// Our gradients against PyTorch autograd through the public reference implementation, saved as
// fixtures in tests/data/<fixture>/grads/ by tools/make_grad_fixtures.py (fla on the GPU machine for
// fla_gla / fla_retnet; transformers' own modeling code on the CPU in float64 for the hf_* models).
// Loss: mean next-token cross-entropy over the fixture ids (logits[:, :-1] against ids[:, 1:], no
// z-loss), computed here in f64 from load_trainable(dir, f64). Every parameter's gradient must be
// within `rtol` relative: max abs difference over the reference gradient's max abs value.
#pragma once

#include "io/npy.h"
#include "models/model.h"
#include "ops/dense/autograd.h"
#include "train/trainable.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

namespace lrnn::testing {

struct reference_grads_report {
  double loss = 0, ref_loss = 0;
  size_t parameters = 0;
  double worst = -1;  // worst per-parameter relative difference; -1 if the check could not run
  std::string worst_name;
};

inline reference_grads_report check_reference_gradients(const std::string& dir, models::compute_form form, double rtol = 1e-4) {
  reference_grads_report r;
  auto m = train::load_trainable(dir, dtype::f64);
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message());
  if (!m.ok()) return r;
  const tensor ids = io::read_npy(dir + "/input_ids.npy").value();
  const int64_t T = ids.size(1);
  const tensor targets = ids.slice(1, 1, T).value().contiguous().value();
  auto logits = (*m)->forward(ids, form);
  EXPECT_TRUE(logits.ok()) << (logits.ok() ? "" : logits.error().message());
  if (!logits.ok()) return r;
  auto shifted = ag::slice(*logits, 1, 0, T - 1);
  EXPECT_TRUE(shifted.ok());
  if (!shifted.ok()) return r;
  auto loss = ag::cross_entropy(*shifted, targets);
  EXPECT_TRUE(loss.ok()) << (loss.ok() ? "" : loss.error().message());
  if (!loss.ok()) return r;
  auto ref_loss = io::read_npy(dir + "/grads/loss.npy");
  EXPECT_TRUE(ref_loss.ok()) << dir << "/grads/loss.npy: " << (ref_loss.ok() ? "" : ref_loss.error().message());
  if (!ref_loss.ok()) return r;
  r.ref_loss = ref_loss->to_doubles()[0];
  r.loss = loss->value().to_doubles()[0];
  EXPECT_NEAR(r.loss, r.ref_loss, 1e-5 * std::fabs(r.ref_loss)) << dir;
  auto bw = ag::backward(*loss);
  EXPECT_TRUE(bw.ok());
  if (!bw.ok()) return r;
  r.worst = 0;
  for (auto& p : (*m)->parameters()) {
    ++r.parameters;
    auto ref = io::read_npy(dir + "/grads/" + p.name + ".npy");
    EXPECT_TRUE(ref.ok()) << p.name << ": " << (ref.ok() ? "" : ref.error().message());
    EXPECT_TRUE(p.v.grad().defined()) << p.name;
    if (!ref.ok() || !p.v.grad().defined()) {
      r.worst = std::max(r.worst, 1.0), r.worst_name = p.name;
      continue;
    }
    EXPECT_EQ(ref->shape(), p.v.grad().shape()) << p.name;
    if (ref->shape() != p.v.grad().shape()) {
      r.worst = std::max(r.worst, 1.0), r.worst_name = p.name;
      continue;
    }
    double scale = 0;
    for (double v : ref->to_doubles()) scale = std::max(scale, std::fabs(v));
    const double rel = max_abs_diff(p.v.grad(), *ref) / std::max(scale, 1e-30);
    EXPECT_LE(rel, rtol) << p.name << " (max |ref| " << scale << ")";
    if (rel > r.worst) r.worst = rel, r.worst_name = p.name;
  }
  return r;
}

}  // namespace lrnn::testing
