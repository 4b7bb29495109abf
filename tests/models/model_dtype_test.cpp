// Half-precision checkpoints: every fixture's weights rewritten as bf16 and as f16 safetensors
// (with the repository's writer) load, are converted to f32, and give logits close to the fp32
// reference. Rounding a weight to a p-bit significand changes it by at most u = 2^-p relative
// (bf16: p = 8 -> u = 2^-9 = 1.95e-3; f16: p = 11 -> u = 2^-11 = 4.9e-4); the logits move by
// a few u of their size through the layers (measured: relative RMS 0.8u - 6.7u, max abs up to
// 24u of max|ref|, GLA and RetNet the most sensitive). The bounds: relative RMS <= 16u and
// max abs <= 64u max|ref|, and the error must scale with u — bf16's relative RMS over f16's
// between 2 and 32 (u ratio 8) — which a wrong conversion (bytes read as another dtype, a
// dropped exponent bias, a weight left out) does not do. The logits must differ from fp32
// (the weights really were rounded).
#include "io/npy.h"
#include "io/safetensors.h"
#include "models/model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <unistd.h>

namespace lrnn::models {
namespace {

const std::string data_dir = LRNN_TEST_DATA_DIR;

struct half_stats {
  double rel_rms = 0, max_abs = 0, max_ref = 0;
};

// The fixture's weights converted to `type`, written, loaded, run; logits against logits.npy.
half_stats run_half(const std::string& fixture, dtype type) {
  namespace fs = std::filesystem;
  const std::string src = data_dir + "/" + fixture;
  const fs::path dir = fs::temp_directory_path() /
                       ("lrnn_half_" + fixture + "_" + dtype_name(type) + "_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(src + "/config.json", dir / "config.json", fs::copy_options::overwrite_existing);
  half_stats out;
  {
    auto f = io::safetensors_file::open(src + "/model.safetensors");
    EXPECT_TRUE(f.ok()) << f.error().message();
    if (!f.ok()) return out;
    io::named_tensors ts;
    for (const auto& ti : f->tensors()) {
      tensor t = f->get(ti.name).value();
      EXPECT_EQ(t.type(), dtype::f32) << ti.name;
      ts.emplace_back(ti.name, t.to(type).value());
    }
    EXPECT_TRUE(io::write_safetensors((dir / "model.safetensors").string(), ts).ok());
    auto back = io::safetensors_file::open((dir / "model.safetensors").string());
    EXPECT_TRUE(back.ok());
    for (const auto& ti : back->tensors()) EXPECT_EQ(ti.type, type) << ti.name;
  }
  auto m = load_model(dir.string());
  fs::remove_all(dir);
  EXPECT_TRUE(m.ok()) << m.error().message();
  if (!m.ok()) return out;
  const tensor ids = io::read_npy(src + "/input_ids.npy").value();
  const tensor ref = io::read_npy(src + "/logits.npy").value();
  auto st = (*m)->initial_state(ids.size(0)).value();
  const tensor logits = (*m)->forward(ids, st, compute_form::automatic).value();
  const auto x = logits.to_doubles(), r = ref.to_doubles();
  EXPECT_EQ(x.size(), r.size());
  double ss_d = 0, ss_r = 0;
  for (size_t i = 0; i < std::min(x.size(), r.size()); ++i) {
    ss_d += (x[i] - r[i]) * (x[i] - r[i]);
    ss_r += r[i] * r[i];
    out.max_abs = std::max(out.max_abs, std::abs(x[i] - r[i]));
    out.max_ref = std::max(out.max_ref, std::abs(r[i]));
  }
  out.rel_rms = std::sqrt(ss_d / ss_r);
  return out;
}

class half_checkpoint : public ::testing::TestWithParam<std::string> {};

TEST_P(half_checkpoint, logits_stay_close_to_fp32_and_scale_with_rounding) {
  const std::string& fixture = GetParam();
  double rel[2] = {0, 0};
  int i = 0;
  for (dtype type : {dtype::bf16, dtype::f16}) {
    const double u = type == dtype::bf16 ? std::ldexp(1.0, -9) : std::ldexp(1.0, -11);
    const half_stats s = run_half(fixture, type);
    std::printf("%s %s: relative RMS %.2e = %.1fu, max abs %.2e = %.1fu max|ref|\n", fixture.c_str(), dtype_name(type), s.rel_rms,
                s.rel_rms / u, s.max_abs, s.max_abs / (u * s.max_ref));
    EXPECT_LE(s.rel_rms, 16 * u) << fixture << " " << dtype_name(type);
    EXPECT_LE(s.max_abs, 64 * u * s.max_ref) << fixture << " " << dtype_name(type);
    EXPECT_GT(s.max_abs, 1e-6) << fixture << " " << dtype_name(type) << ": logits equal fp32, the weights were not rounded";
    rel[i++] = s.rel_rms;
  }
  const double ratio = rel[0] / rel[1];
  EXPECT_GE(ratio, 2.0) << fixture << ": bf16 error / f16 error";
  EXPECT_LE(ratio, 32.0) << fixture << ": bf16 error / f16 error";
}

INSTANTIATE_TEST_SUITE_P(models, half_checkpoint,
                         ::testing::Values("fla_gla", "fla_retnet", "hf_xlstm", "hf_rwkv4", "hf_recurrentgemma", "fla_gated_deltanet",
                                           "fla_rwkv7", "fla_rwkv6"));

}  // namespace
}  // namespace lrnn::models
