// `lrnn bench decode ARCH --params 100M [--hidden --vocab --prompt --tokens --keep DIR] [--json]`:
// writes a synthetic checkpoint of ARCH (gla, rwkv7, recurrent_gemma) in its real on-disk format
// (config.json + model.safetensors under the loader's parameter names, random weights), loads
// it through load_model, and measures in one run: the machine's read bandwidth (a sum over a
// 1 GiB buffer on the same threads), prefill tokens/s (one prompt) and decode tokens/s (batch 1).
// The decode floor is weight_bytes() / bandwidth per token; the fraction is floor / achieved time.
#include "bench.h"

#include "generate/generate.h"
#include "io/safetensors.h"
#include "lrnn/threads.h"
#include "models/model.h"

#include <nlohmann/json.hpp>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace lrnn::cli::bench {
namespace {

namespace fs = std::filesystem;
using spec_list = std::vector<std::pair<std::string, shape_t>>;

// One synthetic model: its config.json and every tensor the loader asks for.
struct synthetic {
  nlohmann::json config;
  spec_list tensors;
};

int64_t numel(const shape_t& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// fla GLA (defaults of fla's GLAConfig: 4 heads, expand_k 0.5, expand_v 1, hidden_ratio 4).
synthetic make_gla(int64_t D, int64_t V, int64_t L) {
  synthetic s;
  const int64_t H = 4, Dk = D / 2, inter = 256 * ((D * 4 * 2 / 3 + 255) / 256);
  s.config = {{"model_type", "gla"}, {"vocab_size", V}, {"hidden_size", D}, {"num_hidden_layers", L}, {"num_heads", H},
              {"expand_k", 0.5}, {"expand_v", 1.0}, {"hidden_ratio", 4}, {"use_short_conv", false},
              {"tie_word_embeddings", false}, {"norm_eps", 1e-6}, {"gate_low_rank_dim", 16}};
  s.tensors = {{"model.embeddings.weight", {V, D}}, {"model.norm.weight", {D}}, {"lm_head.weight", {V, D}}};
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    spec_list t = {{p + "attn_norm.weight", {D}},       {p + "attn.q_proj.weight", {Dk, D}},  {p + "attn.k_proj.weight", {Dk, D}},
                   {p + "attn.v_proj.weight", {D, D}},  {p + "attn.g_proj.weight", {D, D}},   {p + "attn.gk_proj.0.weight", {16, D}},
                   {p + "attn.gk_proj.1.weight", {Dk, 16}}, {p + "attn.gk_proj.1.bias", {Dk}}, {p + "attn.g_norm.weight", {D / H}},
                   {p + "attn.o_proj.weight", {D, D}},  {p + "mlp_norm.weight", {D}},         {p + "mlp.gate_proj.weight", {inter, D}},
                   {p + "mlp.up_proj.weight", {inter, D}}, {p + "mlp.down_proj.weight", {D, inter}}};
    s.tensors.insert(s.tensors.end(), t.begin(), t.end());
  }
  return s;
}

// fla RWKV-7 (head_dim 64, hidden_ratio 4, fla's default LoRA ranks for hidden_size 768).
synthetic make_rwkv7(int64_t D, int64_t V, int64_t L) {
  synthetic s;
  const int64_t Kh = 64, H = D / Kh, inter = 4 * D, rd = 64, ra = 64, rv = 32, rg = 128;
  s.config = {{"model_type", "rwkv7"}, {"vocab_size", V}, {"hidden_size", D}, {"num_hidden_layers", L}, {"head_dim", Kh},
              {"hidden_ratio", 4}, {"decay_low_rank_dim", rd}, {"a_low_rank_dim", ra}, {"v_low_rank_dim", rv},
              {"gate_low_rank_dim", rg}, {"norm_first", true}, {"norm_bias", true}, {"norm_eps", 1e-5},
              {"tie_word_embeddings", false}, {"hidden_act", "sqrelu"}};
  s.tensors = {{"model.embeddings.weight", {V, D}}, {"model.norm.weight", {D}}, {"model.norm.bias", {D}}, {"lm_head.weight", {V, D}}};
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l), a = p + "attn.";
    spec_list t;
    for (const char* n : {"attn_norm.", "ffn_norm."}) t.push_back({p + n + std::string("weight"), {D}}), t.push_back({p + n + std::string("bias"), {D}});
    if (l == 0) t.push_back({p + "pre_norm.weight", {D}}), t.push_back({p + "pre_norm.bias", {D}});
    for (const char* n : {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"}) t.push_back({a + n, {1, 1, D}});
    spec_list u = {{a + "k_k", {D}}, {a + "k_a", {D}}, {a + "r_k", {H, Kh}}, {a + "r_proj.weight", {D, D}}, {a + "k_proj.weight", {D, D}},
                   {a + "v_proj.weight", {D, D}}, {a + "o_proj.weight", {D, D}},
                   {a + "w_lora.lora.0.weight", {rd, D}}, {a + "w_lora.lora.2.weight", {D, rd}}, {a + "w_lora.lora.2.bias", {D}},
                   {a + "a_lora.lora.0.weight", {ra, D}}, {a + "a_lora.lora.2.weight", {D, ra}}, {a + "a_lora.lora.2.bias", {D}},
                   {a + "g_lora.lora.0.weight", {rg, D}}, {a + "g_lora.lora.2.weight", {D, rg}},
                   {a + "g_norm.weight", {D}}, {a + "g_norm.bias", {D}},
                   {p + "ffn.x_k", {D}}, {p + "ffn.key.weight", {inter, D}}, {p + "ffn.value.weight", {D, inter}}};
    t.insert(t.end(), u.begin(), u.end());
    if (l != 0) {
      spec_list v = {{a + "v_lora.lora.0.weight", {rv, D}}, {a + "v_lora.lora.2.weight", {D, rv}}, {a + "v_lora.lora.2.bias", {D}}};
      t.insert(t.end(), v.begin(), v.end());
    }
    s.tensors.insert(s.tensors.end(), t.begin(), t.end());
  }
  return s;
}

// HF RecurrentGemma (Griffin): blocks recurrent, recurrent, attention; head_dim 64, one KV head,
// lru_width = hidden, MLP width 3 x hidden, window 2048, tied embeddings.
synthetic make_recurrent_gemma(int64_t D, int64_t V, int64_t L) {
  synthetic s;
  const int64_t Hd = 64, H = D / Hd, C = D, bw = C / H, F = 3 * D, Wc = 4;
  s.config = {{"model_type", "recurrent_gemma"}, {"vocab_size", V}, {"hidden_size", D}, {"num_hidden_layers", L},
              {"num_attention_heads", H}, {"num_key_value_heads", 1}, {"head_dim", Hd}, {"lru_width", C},
              {"attention_window_size", 2048}, {"conv1d_width", Wc}, {"intermediate_size", 2 * F}, {"logits_soft_cap", 30.0},
              {"block_types", {"recurrent", "recurrent", "attention"}}, {"partial_rotary_factor", 0.5}, {"rms_norm_eps", 1e-6},
              {"tie_word_embeddings", true}, {"hidden_activation", "gelu_pytorch_tanh"}, {"attention_bias", false}};
  s.tensors = {{"model.embed_tokens.weight", {V, D}}, {"model.final_norm.weight", {D}}};
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l), tb = p + "temporal_block.", mb = p + "mlp_block.";
    spec_list t = {{p + "temporal_pre_norm.weight", {D}}, {p + "channel_pre_norm.weight", {D}}};
    if (l % 3 != 2) {
      spec_list r = {{tb + "linear_y.weight", {C, D}}, {tb + "linear_y.bias", {C}}, {tb + "linear_x.weight", {C, D}},
                     {tb + "linear_x.bias", {C}}, {tb + "linear_out.weight", {D, C}}, {tb + "linear_out.bias", {D}},
                     {tb + "conv_1d.weight", {C, 1, Wc}}, {tb + "conv_1d.bias", {C}},
                     {tb + "rg_lru.input_gate_weight", {H, bw, bw}}, {tb + "rg_lru.input_gate_bias", {H, bw}},
                     {tb + "rg_lru.recurrent_gate_weight", {H, bw, bw}}, {tb + "rg_lru.recurrent_gate_bias", {H, bw}},
                     {tb + "rg_lru.recurrent_param", {C}}};
      t.insert(t.end(), r.begin(), r.end());
    } else {
      spec_list a = {{tb + "q_proj.weight", {H * Hd, D}}, {tb + "k_proj.weight", {Hd, D}}, {tb + "v_proj.weight", {Hd, D}},
                     {tb + "o_proj.weight", {D, H * Hd}}, {tb + "o_proj.bias", {D}}};
      t.insert(t.end(), a.begin(), a.end());
    }
    spec_list m = {{mb + "gate_proj.weight", {F, D}}, {mb + "gate_proj.bias", {F}}, {mb + "up_proj.weight", {F, D}},
                   {mb + "up_proj.bias", {F}}, {mb + "down_proj.weight", {D, F}}, {mb + "down_proj.bias", {D}}};
    t.insert(t.end(), m.begin(), m.end());
    s.tensors.insert(s.tensors.end(), t.begin(), t.end());
  }
  return s;
}

result<synthetic> make_synthetic(const std::string& arch, int64_t D, int64_t V, int64_t L) {
  if (arch == "gla") {
    if (D % 8) return make_error(status_code::invalid_argument, "bench decode gla: --hidden {} must be a multiple of 8", D);
    return make_gla(D, V, L);
  }
  if (arch == "rwkv7") {
    if (D % 64) return make_error(status_code::invalid_argument, "bench decode rwkv7: --hidden {} must be a multiple of 64", D);
    return make_rwkv7(D, V, L);
  }
  if (arch == "recurrent_gemma") {
    if (D % 64) return make_error(status_code::invalid_argument, "bench decode recurrent_gemma: --hidden {} must be a multiple of 64", D);
    return make_recurrent_gemma(D, V, L);
  }
  return make_error(status_code::invalid_argument, "bench decode: unknown architecture '{}' (gla, rwkv7, recurrent_gemma)", arch);
}

int64_t count_params(const synthetic& s) {
  int64_t n = 0;
  for (const auto& [name, shape] : s.tensors) n += numel(shape);
  return n;
}

// "100M", "1.5B", "20000000" -> parameters.
result<int64_t> parse_params(const std::string& text) {
  try {
    size_t pos = 0;
    double v = std::stod(text, &pos);
    const std::string unit = text.substr(pos);
    if (unit == "K" || unit == "k") v *= 1e3;
    else if (unit == "M" || unit == "m") v *= 1e6;
    else if (unit == "B" || unit == "b" || unit == "G") v *= 1e9;
    else if (!unit.empty()) throw std::invalid_argument(unit);
    if (v >= 1) return static_cast<int64_t>(v);
  } catch (...) {
  }
  return make_error(status_code::invalid_argument, "--params '{}': expected a count such as 100M, 1.5B or 20000000", text);
}

// The layer count whose total parameter count is nearest to `target` (at least 1).
result<synthetic> sized_synthetic(const std::string& arch, int64_t D, int64_t V, int64_t target) {
  LRNN_ASSIGN_OR_RETURN(synthetic best, make_synthetic(arch, D, V, 1));
  for (int64_t L = 2; L <= 1024; ++L) {
    LRNN_ASSIGN_OR_RETURN(synthetic s, make_synthetic(arch, D, V, L));
    if (std::llabs(count_params(s) - target) < std::llabs(count_params(best) - target)) best = std::move(s);
    if (count_params(s) > target) break;
  }
  return best;
}

// Random weights: matrices uniform in +-1/sqrt(fan_in); norm weights 1 (RecurrentGemma stores
// scale - 1, so 0); other vectors uniform in +-0.1.
status write_synthetic(const synthetic& s, const std::string& arch, const fs::path& dir) {
  fs::create_directories(dir);
  {
    std::ofstream f(dir / "config.json");
    f << s.config.dump(2);
    if (!f) return make_error(status_code::io_error, "{}: cannot write config.json", dir.string());
  }
  io::named_tensors ts;
  uint64_t rng = 0x9E3779B97F4A7C15ull;
  for (const auto& [name, shape] : s.tensors) {
    LRNN_ASSIGN_OR_RETURN(tensor t, tensor::empty(shape, dtype::f32));
    float* p = t.data<float>();
    const int64_t n = t.numel();
    const bool norm = name.find("norm") != std::string::npos && name.ends_with(".weight") && shape.size() == 1;
    if (norm) {
      std::fill(p, p + n, arch == "recurrent_gemma" ? 0.0f : 1.0f);
    } else {
      const float a = shape.size() >= 2 ? 1.0f / std::sqrt(static_cast<float>(shape.back())) : 0.1f;
      for (int64_t i = 0; i < n; ++i) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        p[i] = a * (static_cast<float>(rng >> 40) * (2.0f / 16777216.0f) - 1.0f);
      }
    }
    ts.emplace_back(name, std::move(t));
  }
  return io::write_safetensors((dir / "model.safetensors").string(), ts, {{"format", "pt"}});
}

// Read bandwidth: sum over a 1 GiB buffer, contiguous slices on the compute threads (median of
// `repeats`), GB/s of bytes read.
#if defined(__x86_64__)
__attribute__((target("avx2"))) float sum_avx2(const float* p, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p + i + 24));
  }
  float out[8];
  _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  float s = 0;
  for (float v : out) s += v;
  for (; i < n; ++i) s += p[i];
  return s;
}
#endif

float sum_plain(const float* p, int64_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += p[i + j];
  float r = 0;
  for (float v : s) r += v;
  for (; i < n; ++i) r += p[i];
  return r;
}

double measure_read_gbs(int repeats) {
  const int64_t n = (int64_t{1} << 30) / 4;
  std::vector<float> buf(static_cast<size_t>(n), 1.0f);
  const int threads = num_threads();
  volatile float sink = 0;
#if defined(__x86_64__)
  const bool avx2 = __builtin_cpu_supports("avx2");
#endif
  const double ms = time_ms(repeats, [&] {
    float total = 0;
#pragma omp parallel for schedule(static) num_threads(threads) reduction(+ : total)
    for (int t = 0; t < threads; ++t) {
      const int64_t lo = n * t / threads, hi = n * (t + 1) / threads;
#if defined(__x86_64__)
      total += avx2 ? sum_avx2(buf.data() + lo, hi - lo) : sum_plain(buf.data() + lo, hi - lo);
#else
      total += sum_plain(buf.data() + lo, hi - lo);
#endif
    }
    sink = total;
  });
  (void)sink;
  return static_cast<double>(n) * 4 / (ms * 1e6);
}

}  // namespace

status run_decode(const std::string& arch, const decode_options& o, bool json) {
  LRNN_ASSIGN_OR_RETURN(int64_t target, parse_params(o.params));
  LRNN_ASSIGN_OR_RETURN(synthetic s, sized_synthetic(arch, o.hidden, o.vocab, target));
  const bool keep = !o.keep.empty();
  const fs::path dir = keep ? fs::path(o.keep)
                            : fs::temp_directory_path() / fmt::format("lrnn_bench_{}_{}", arch, static_cast<long>(::getpid()));
  struct cleanup {
    fs::path d;
    bool on;
    ~cleanup() {
      std::error_code ec;
      if (on) fs::remove_all(d, ec);
    }
  } guard{dir, !keep};
  LRNN_TRY(write_synthetic(s, arch, dir));
  LRNN_ASSIGN_OR_RETURN(auto m, models::load_model(dir.string()));
  const int64_t params = count_params(s);
  const uint64_t wbytes = m->weight_bytes();

  std::vector<int64_t> prompt(static_cast<size_t>(o.prompt));
  uint64_t rng = 12345;
  for (auto& id : prompt) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    id = static_cast<int64_t>((rng >> 33) % static_cast<uint64_t>(o.vocab));
  }
  gen::generate_options go;
  go.sampling.greedy = true;
  go.max_new_tokens = 8;  // warm-up: page in the weights, size the allocator's pools
  LRNN_TRY(gen::generate(*m, {std::vector<int64_t>(prompt.begin(), prompt.begin() + std::min<int64_t>(o.prompt, 32))}, go).get_status());
  go.max_new_tokens = o.tokens + 1;  // the first token comes from the prefill's logits
  LRNN_ASSIGN_OR_RETURN(auto r, gen::generate(*m, {prompt}, go));
  const double gbs = measure_read_gbs(5);

  const double prefill_tps = static_cast<double>(r.stats.prefill_tokens) / r.stats.prefill_seconds;
  // Decode steps: every generated token after the first ran one forward.
  const int64_t steps = r.stats.decode_tokens - 1;
  const double decode_tps = static_cast<double>(steps) / r.stats.decode_seconds;
  const double floor_ms = static_cast<double>(wbytes) / (gbs * 1e6);
  const double token_ms = 1e3 / decode_tps;
  const double fraction = floor_ms / token_ms;
  if (json) {
    nlohmann::json j;
    j["arch"] = arch;
    j["config"] = s.config;
    j["params"] = params;
    j["weight_bytes_per_token"] = wbytes;
    j["threads"] = num_threads();
    j["read_bandwidth_gbs"] = gbs;
    j["prefill_tokens"] = r.stats.prefill_tokens;
    j["prefill_tokens_per_s"] = prefill_tps;
    j["decode_tokens"] = steps;
    j["decode_tokens_per_s"] = decode_tps;
    j["decode_ms_per_token"] = token_ms;
    j["floor_ms_per_token"] = floor_ms;
    j["fraction_of_floor"] = fraction;
    j["peak_rss_bytes"] = r.stats.peak_rss_bytes;
    std::printf("%s\n", j.dump(2).c_str());
    return {};
  }
  std::printf("%s: %.1fM parameters (%lld layers, hidden %lld, vocab %lld), %.1f MB of weights read per token, %d threads\n",
              arch.c_str(), static_cast<double>(params) / 1e6, static_cast<long long>(s.config["num_hidden_layers"].get<int64_t>()),
              static_cast<long long>(o.hidden), static_cast<long long>(o.vocab), static_cast<double>(wbytes) / 1e6, num_threads());
  std::printf("read bandwidth in this run: %.1f GB/s (sum over 1 GiB)\n", gbs);
  std::printf("prefill: %lld tokens, %.1f tokens/s\n", static_cast<long long>(r.stats.prefill_tokens), prefill_tps);
  std::printf("decode:  %lld tokens, %.1f tokens/s, %.2f ms/token; floor %.2f ms/token -> %.0f%% of the bandwidth floor\n",
              static_cast<long long>(steps), decode_tps, token_ms, floor_ms, 100 * fraction);
  std::printf("peak memory %.1f MiB\n", static_cast<double>(r.stats.peak_rss_bytes) / (1 << 20));
  return {};
}

}  // namespace lrnn::cli::bench
