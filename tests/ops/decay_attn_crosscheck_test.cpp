// decay_attn against the public references, ported to NumPy float64 by tools/decay_attn_crosscheck.py
// (fla naive_retention, naive_recurrent_simple_gla, naive_recurrent_gla, naive_recurrent_rwkv6;
// mlstm_kernels recurrent step, parallel native and native_siging): every form in f64, chunk sizes
// 16, 32 and 64, outputs and final states within 1e-9. Fixtures in tests/data/decay_attn/.
#include "io/npy.h"
#include "ops/decay_attn_test_util.h"

#include <filesystem>

namespace lrnn::testing {
namespace {

using namespace lrnn::ops;

class decay_attn_crosscheck : public ::testing::Test {
 protected:
  std::string dir = std::string(LRNN_TEST_DATA_DIR) + "/decay_attn/";
  tensor load(const std::string& name) {
    auto t = io::read_npy(dir + name + ".npy");
    EXPECT_TRUE(t.ok()) << name << ": " << t.error().to_string();
    return t.ok() ? *t : tensor();
  }
  decay_attn_state s0_only() {
    decay_attn_state st;
    st.s = load("s0");
    return st;
  }
  decay_attn_inputs base() {
    decay_attn_inputs in;
    in.q = load("q"), in.k = load("k"), in.v = load("v");
    return in;
  }
  // Every form and chunk size against the saved output and (where given) final state parts.
  void check(const char* what, const decay_attn_spec& spec, const decay_attn_inputs& in, const decay_attn_state& init,
             const std::string& prefix, bool has_s, bool has_n, bool has_m, double tol = 1e-9) {
    const tensor o = load(prefix + "_o");
    const tensor s = has_s ? load(prefix + "_s") : tensor();
    const tensor n = has_n ? load(prefix + "_n") : tensor();
    const tensor m = has_m ? load(prefix + "_m") : tensor();
    double worst = 0;  // over forms, chunk sizes, outputs and states; written to the test's XML record
    for (auto form : {decay_attn_form::reference, decay_attn_form::recurrent, decay_attn_form::parallel, decay_attn_form::chunk})
      for (int64_t chunk : {16, 32, 64}) {
        if (form != decay_attn_form::chunk && chunk != 16) continue;
        decay_attn_options opt;
        opt.chunk_size = chunk;
        auto out = decay_attn_forward(spec, in, init, form, opt);
        ASSERT_TRUE(out.ok()) << what << ": " << out.error().message();
        const std::string where = fmt::format("{} {} chunk {}", what, decay_attn_form_name(form), chunk);
        ASSERT_EQ(out->o.type(), dtype::f64) << where;
        const double eo = max_abs_diff(out->o, o);
        EXPECT_LE(eo, tol) << where << " o";
        worst = std::max(worst, eo);
        if (has_s) {
          const double e = max_abs_diff(out->final_state.s, s);
          EXPECT_LE(e, tol) << where << " s";
          worst = std::max(worst, e);
        }
        if (has_n) {
          const double e = max_abs_diff(out->final_state.n, n);
          EXPECT_LE(e, tol) << where << " n";
          worst = std::max(worst, e);
        }
        if (has_m) {
          const double e = max_abs_diff(out->final_state.m, m);
          EXPECT_LE(e, tol) << where << " m";
          worst = std::max(worst, e);
        }
      }
    RecordProperty("max_abs_err", fmt::format("{:.3e}", worst));
  }
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(dir + "q.npy")) << "missing fixture " << dir << " (tools/decay_attn_crosscheck.py)";
  }
};

TEST_F(decay_attn_crosscheck, retnet_matches_fla_naive_retention) {
  decay_attn_inputs in = base();
  in.g = load("retnet_g");
  check("retnet", da::spec_of(da::variant::retnet), in, {}, "retnet", false, false, false);
}

TEST_F(decay_attn_crosscheck, simple_gla_matches_fla_naive_recurrent) {
  decay_attn_inputs in = base();
  in.g = load("simple_gla_g");
  check("simple_gla", da::spec_of(da::variant::simple_gla), in, s0_only(), "simple_gla", true, false, false);
}

TEST_F(decay_attn_crosscheck, gla_matches_fla_naive_recurrent) {
  decay_attn_inputs in = base();
  in.g = load("gla_g");
  check("gla", da::spec_of(da::variant::gla), in, s0_only(), "gla", true, false, false);
}

TEST_F(decay_attn_crosscheck, rwkv6_matches_fla_recurrent_naive) {
  decay_attn_inputs in = base();
  in.g = load("rwkv6_g"), in.u = load("rwkv6_u");
  check("rwkv6", da::spec_of(da::variant::rwkv6), in, s0_only(), "rwkv6", true, false, false);
}

TEST_F(decay_attn_crosscheck, mlstm_matches_mlstm_kernels_recurrent_step) {
  decay_attn_inputs in = base();
  in.g = load("mlstm_g"), in.i = load("mlstm_i");
  check("mlstm", da::spec_of(da::variant::mlstm), in, {load("s0"), load("n0"), load("m0")}, "mlstm", true, true, true);
}

// The parallel form has no state and m_t = max_s log D_ts; the same function here is the
// recurrence started from S = 0, n = 0, m0 = -1e4 (so m_1 = i_1). README.md, "Disagreements".
TEST_F(decay_attn_crosscheck, mlstm_matches_mlstm_kernels_parallel) {
  decay_attn_inputs in = base();
  in.g = load("mlstm_g"), in.i = load("mlstm_i");
  const tensor s0 = load("s0"), n0 = load("n0"), m0 = load("m0");
  decay_attn_state init{tensor::zeros(s0.shape(), dtype::f64).value(), tensor::zeros(n0.shape(), dtype::f64).value(),
                        tensor::full(m0.shape(), -1e4, dtype::f64).value()};
  check("mlstm_par", da::spec_of(da::variant::mlstm), in, init, "mlstm_par", false, false, true);
}

TEST_F(decay_attn_crosscheck, mlstm_sig_matches_mlstm_kernels_siging_parallel) {
  decay_attn_inputs in = base();
  in.g = load("mlstm_sig_g"), in.i = load("mlstm_sig_i");
  check("mlstm_sig", da::spec_of(da::variant::mlstm_sig), in, {}, "mlstm_sig", false, false, false);
}

}  // namespace
}  // namespace lrnn::testing
