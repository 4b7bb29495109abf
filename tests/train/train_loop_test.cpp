// Tests of the training pieces (src/train/{optimizer,schedule,data,loop,train_config,
// checkpoint,log}, src/tokenizer/bpe_trainer): hand-computed AdamW steps, clipping, schedule
// values, gradient accumulation, shards, bit-exact resume, atomic checkpoints, config and
// corpus errors, tokenizer.json round trip, loss going down. Models here are tiny: a bigram
// table registered below as "test_bigram" (logits = table[id]), so the loop is tested apart
// from any architecture.
#include "io/config.h"
#include "io/json.h"
#include "lrnn/autograd.h"
#include "lrnn/threads.h"
#include "ops/dense/autograd.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/tokenizer.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/log.h"
#include "train/loop.h"
#include "train/optimizer.h"
#include "train/schedule.h"
#include "train/train_config.h"
#include "train/trainable.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <sys/wait.h>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace lrnn::train {
namespace {

namespace fs = std::filesystem;

// ---- a tiny trainable model: bigram logits (embedding [V, V]) plus a [V, V] linear mixing ----
class bigram final : public trainable_model {
 public:
  bigram(io::config c, int64_t v) : config_(std::move(c)), vocab_(v) {}
  const std::string& model_type() const override { return type_; }
  int64_t vocab_size() const override { return vocab_; }
  std::vector<parameter>& parameters() override { return params_; }
  result<ag::var> forward(const tensor& ids, models::compute_form) override {
    LRNN_ASSIGN_OR_RETURN(ag::var h, ag::embedding(ids, params_[0].v));
    return ag::linear(h, params_[1].v, params_[2].v);
  }
  const io::config& config() const override { return config_; }
  std::vector<parameter> params_;

 private:
  io::config config_;
  int64_t vocab_;
  std::string type_ = "test_bigram";
};

result<std::unique_ptr<trainable_model>> build_bigram(const io::config& c, param_source& src) {
  LRNN_ASSIGN_OR_RETURN(const int64_t v, c.get_int("vocab_size"));
  LRNN_ASSIGN_OR_RETURN(const int64_t d, c.get_int("hidden_size", 16));
  auto m = std::make_unique<bigram>(c, v);
  const char* names[] = {"embed.weight", "head.weight", "head.bias"};
  const shape_t shapes[] = {{v, d}, {v, d}, {v}};
  for (int i = 0; i < 3; ++i) {
    LRNN_ASSIGN_OR_RETURN(tensor t, src.get(names[i], shapes[i], i == 2 ? param_init::zeros() : param_init::normal(0.5), "test"));
    m->params_.push_back({names[i], ag::var(t, true)});
  }
  return std::unique_ptr<trainable_model>(std::move(m));
}
LRNN_REGISTER_TRAINABLE(test_bigram, "test_bigram", build_bigram);

// ---- helpers ----
// Fixed threads for bit-exact comparisons; the previous count is restored afterwards.
struct threads_scope {
  int saved = num_threads();
  explicit threads_scope(int n) { set_num_threads(n); }
  ~threads_scope() { set_num_threads(saved); }
};

std::string temp_dir(const std::string& name) {
  const std::string d = (fs::temp_directory_path() / fmt::format("lrnn_train_test_{}_{}", name, ::getpid())).string();
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write_text(const std::string& path, const std::string& s) {
  std::ofstream f(path, std::ios::binary);
  f << s;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A corpus with structure a bigram model can learn.
std::string tiny_corpus() {
  std::string s;
  const char* lines[] = {"the cat sat on the mat.\n", "a dog ate the bone.\n", "the sun is hot today.\n", "we like to read books.\n"};
  for (int i = 0; i < 400; ++i) s += lines[(i * 7 + i / 3) % 4];
  return s;
}

io::json tiny_config(const std::string& corpus_path) {
  io::json j = default_train_config_json();
  j["model"] = {{"model_type", "test_bigram"}, {"hidden_size", 8}, {"num_hidden_layers", 1}};
  j["data"]["path"] = corpus_path;
  j["batch"] = {{"sequences", 4}, {"seq_len", 16}, {"accumulation", 1}};
  j["steps"] = 20;
  j["schedule"]["warmup_steps"] = 2;
  j["schedule"]["min_lr"] = 1e-3;
  j["optimizer"]["lr"] = 3e-2;
  j["eval"] = {{"interval", 10}, {"batches", 2}};
  j["checkpoint"] = {{"interval", 0}, {"keep", 0}};
  j["log"] = {{"interval", 1}};
  j["threads"] = 1;
  return j;
}

train_options quiet_options(const io::json& j, const std::string& out) {
  train_options o;
  o.config = parse_train_config(j).value();
  o.out_dir = out;
  o.progress = nullptr;
  o.measure_sgemm = false;
  return o;
}

// ---- optimizer ----
TEST(TrainOptimizer, AdamWMatchesHandComputedSteps) {
  std::vector<parameter> ps;
  ps.push_back({"w", ag::var(tensor::from_vector(std::vector<double>{1.0, -2.0, 0.5, 3.0}, {2, 2}, dtype::f64), true)});
  ps.push_back({"b", ag::var(tensor::from_vector(std::vector<double>{0.25}, {1}, dtype::f64), true)});
  const adamw_options o{0.9, 0.95, 1e-8, 0.1};
  adamw opt(&ps, o);
  const std::vector<std::vector<double>> gw = {{0.1, -0.2, 0.3, 0.0}, {-0.5, 0.4, 0.05, 1.0}};
  const std::vector<double> gb = {2.0, -1.0};
  std::vector<double> w = {1.0, -2.0, 0.5, 3.0}, mw(4, 0), vw(4, 0);
  double b = 0.25, mb = 0, vb = 0;
  const double lrs[] = {0.01, 0.02};
  for (int t = 1; t <= 2; ++t) {
    ps[0].v.impl()->grad = tensor::from_vector(gw[t - 1], {2, 2}, dtype::f64);
    ps[1].v.impl()->grad = tensor::from_vector(std::vector<double>{gb[t - 1]}, {1}, dtype::f64);
    ASSERT_TRUE(opt.step(lrs[t - 1]).ok());
    const double lr = lrs[t - 1], bc1 = 1 - std::pow(0.9, t), bc2 = 1 - std::pow(0.95, t);
    for (int i = 0; i < 4; ++i) {
      w[i] *= 1 - lr * 0.1;  // decoupled decay on the matrix only
      mw[i] = 0.9 * mw[i] + 0.1 * gw[t - 1][i];
      vw[i] = 0.95 * vw[i] + 0.05 * gw[t - 1][i] * gw[t - 1][i];
      w[i] -= lr * (mw[i] / bc1) / (std::sqrt(vw[i] / bc2) + 1e-8);
    }
    mb = 0.9 * mb + 0.1 * gb[t - 1];
    vb = 0.95 * vb + 0.05 * gb[t - 1] * gb[t - 1];
    b -= lr * (mb / bc1) / (std::sqrt(vb / bc2) + 1e-8);
  }
  const auto got = ps[0].v.value().to_doubles();
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(got[i], w[i], 1e-15) << i;
  EXPECT_NEAR(ps[1].v.value().to_doubles()[0], b, 1e-15);
  // First step of an element with gradient g: the update is lr * sign(g) (to eps).
  EXPECT_NEAR(0.25 - 0.01, 0.24, 1e-12);
  EXPECT_EQ(opt.steps_done(), 2);
  // The state round-trips.
  adamw opt2(&ps, o);
  ASSERT_TRUE(opt2.load_state(opt.state()).ok());
  EXPECT_EQ(opt2.steps_done(), 2);
}

TEST(TrainOptimizer, ClipGradNorm) {
  std::vector<parameter> ps;
  ps.push_back({"a", ag::var(tensor::from_vector(std::vector<double>{0, 0}, {2}, dtype::f64), true)});
  ps.push_back({"b", ag::var(tensor::from_vector(std::vector<double>{0}, {1}, dtype::f64), true)});
  ps[0].v.impl()->grad = tensor::from_vector(std::vector<double>{3.0, 0.0}, {2}, dtype::f64);
  ps[1].v.impl()->grad = tensor::from_vector(std::vector<double>{4.0}, {1}, dtype::f64);
  auto n = clip_grad_norm(ps, 10.0);  // below the limit: unchanged
  ASSERT_TRUE(n.ok());
  EXPECT_DOUBLE_EQ(n.value(), 5.0);
  EXPECT_DOUBLE_EQ(ps[1].v.grad().to_doubles()[0], 4.0);
  n = clip_grad_norm(ps, 1.0);
  EXPECT_DOUBLE_EQ(n.value(), 5.0);
  EXPECT_NEAR(ps[0].v.grad().to_doubles()[0], 0.6, 1e-6);
  EXPECT_NEAR(ps[1].v.grad().to_doubles()[0], 0.8, 1e-6);
  auto n2 = clip_grad_norm(ps, 0.0);
  EXPECT_NEAR(n2.value(), 1.0, 1e-6);
}

// ---- schedule ----
TEST(TrainSchedule, WarmupThenCosine) {
  EXPECT_DOUBLE_EQ(cosine_lr(0, 10, 110, 1.0, 0.1), 0.1);
  EXPECT_DOUBLE_EQ(cosine_lr(4, 10, 110, 1.0, 0.1), 0.5);
  EXPECT_DOUBLE_EQ(cosine_lr(9, 10, 110, 1.0, 0.1), 1.0);
  EXPECT_DOUBLE_EQ(cosine_lr(10, 10, 110, 1.0, 0.1), 1.0);
  EXPECT_NEAR(cosine_lr(60, 10, 110, 1.0, 0.1), 0.55, 1e-12);  // halfway: (1 + 0.1) / 2
  EXPECT_NEAR(cosine_lr(35, 10, 110, 1.0, 0.1), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-12);
  EXPECT_DOUBLE_EQ(cosine_lr(110, 10, 110, 1.0, 0.1), 0.1);
  EXPECT_DOUBLE_EQ(cosine_lr(500, 10, 110, 1.0, 0.1), 0.1);
  EXPECT_DOUBLE_EQ(cosine_lr(0, 0, 10, 2.0, 0.0), 2.0);
}

// ---- accumulation: two micro-batches of 1 == one batch of 2, in f64 ----
TEST(TrainLoop, AccumulationEqualsLargerBatchInF64) {
  io::json mc = {{"model_type", "test_bigram"}, {"vocab_size", 11}, {"hidden_size", 4}, {"num_hidden_layers", 1}};
  const io::config cfg = io::config::from_json(mc, "model").value();
  auto m1 = create_trainable(cfg, 7, dtype::f64).value();
  auto m2 = create_trainable(cfg, 7, dtype::f64).value();
  const tensor ids = tensor::from_vector(std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8}, {2, 4}, dtype::i64);
  const tensor tg = tensor::from_vector(std::vector<int64_t>{2, 3, 4, 5, 6, 7, 8, 9}, {2, 4}, dtype::i64);
  {
    auto logits = m1->forward(ids, models::compute_form::chunk).value();
    auto loss = ag::cross_entropy(logits, tg).value();
    ASSERT_TRUE(ag::backward(loss).ok());
  }
  for (int r = 0; r < 2; ++r) {
    const tensor i1 = ids.slice(0, r, r + 1).value().contiguous().value();
    const tensor t1 = tg.slice(0, r, r + 1).value().contiguous().value();
    auto logits = m2->forward(i1, models::compute_form::chunk).value();
    auto loss = ag::cross_entropy(logits, t1).value();
    auto scaled = ag::scale(loss, 0.5).value();
    ASSERT_TRUE(ag::backward(scaled).ok());
  }
  auto& p1 = m1->parameters();
  auto& p2 = m2->parameters();
  for (std::size_t i = 0; i < p1.size(); ++i) {
    const auto a = p1[i].v.grad().to_doubles(), b = p2[i].v.grad().to_doubles();
    ASSERT_EQ(a.size(), b.size());
    double worst = 0, scale = 0;
    for (std::size_t k = 0; k < a.size(); ++k) worst = std::max(worst, std::abs(a[k] - b[k])), scale = std::max(scale, std::abs(a[k]));
    EXPECT_LE(worst, 1e-15 * std::max(1.0, scale)) << p1[i].name;
    EXPECT_GT(scale, 0) << p1[i].name;
  }
}

// ---- data ----
TEST(TrainData, ShardRoundTripAndSplit) {
  const std::string d = temp_dir("shard");
  std::vector<uint32_t> toks(10000);
  for (std::size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<uint32_t>((i * 7919) % 65535);
  ASSERT_TRUE(write_token_file(d + "/a.bin", toks, 2).ok());
  EXPECT_EQ(fs::file_size(d + "/a.bin"), 20000u);
  EXPECT_EQ(read_token_file(d + "/a.bin", 2).value(), toks);
  toks[3] = 70000;
  ASSERT_TRUE(write_token_file(d + "/b.bin", toks, 4).ok());
  EXPECT_EQ(read_token_file(d + "/b.bin", 4).value(), toks);
  EXPECT_FALSE(read_token_file(d + "/b.bin", 3).ok());

  std::vector<uint32_t> all(100000), tr, va;
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint32_t>(i);
  split_train_val(all, 0.1, tr, va);
  EXPECT_EQ(tr.size() + va.size(), all.size());
  EXPECT_NEAR(static_cast<double>(va.size()) / all.size(), 0.1, 0.05);
  EXPECT_LT(va.front(), 50000u);  // spread over the corpus, not only its end
  EXPECT_GT(va.back(), 50000u);

  // Batches: windows of consecutive tokens, targets shifted by one, a pure function of (seed, step, micro).
  tensor x, y, x2, y2;
  ASSERT_TRUE(sample_batch(all, 3, 5, 42, 7, 1, x, y).ok());
  ASSERT_TRUE(sample_batch(all, 3, 5, 42, 7, 1, x2, y2).ok());
  EXPECT_EQ(x.to_doubles(), x2.to_doubles());
  const auto xv = x.to_doubles(), yv = y.to_doubles();
  for (int i = 0; i < 15; ++i) EXPECT_EQ(yv[i], xv[i] + 1);
  ASSERT_TRUE(sample_batch(all, 3, 5, 42, 8, 1, x2, y2).ok());
  EXPECT_NE(x.to_doubles(), x2.to_doubles());
  fs::remove_all(d);
}

TEST(TrainData, BadCorpusErrors) {
  const std::string d = temp_dir("badcorpus");
  auto missing = read_corpus(d + "/nope.txt");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.get_status().code(), status_code::not_found);
  EXPECT_NE(missing.get_status().message().find("nope.txt"), std::string::npos);
  write_text(d + "/empty.txt", "");
  auto empty = read_corpus(d + "/empty.txt");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.get_status().message().find("empty"), std::string::npos);
  write_text(d + "/bin.dat", std::string("abc\0def\0", 8));
  auto bin = read_corpus(d + "/bin.dat");
  ASSERT_FALSE(bin.ok());
  EXPECT_NE(bin.get_status().message().find("binary"), std::string::npos) << bin.get_status().message();
  std::string latin(200, '\xE9');
  write_text(d + "/latin1.txt", latin);
  EXPECT_FALSE(read_corpus(d + "/latin1.txt").ok());
  // A folder: binary files are skipped, text is kept; a folder of only binary files is an error.
  fs::create_directories(d + "/only_bin");
  write_text(d + "/only_bin/x.dat", std::string("\0\1\2", 3));
  EXPECT_FALSE(read_corpus(d + "/only_bin").ok());
  fs::create_directories(d + "/mixed");
  write_text(d + "/mixed/a.txt", "hello\n");
  write_text(d + "/mixed/b.dat", std::string("\0\1\2", 3));
  write_text(d + "/mixed/c.txt", "world");
  auto mixed = read_corpus(d + "/mixed");
  ASSERT_TRUE(mixed.ok());
  EXPECT_EQ(mixed.value().text, "hello\nworld");
  EXPECT_EQ(mixed.value().skipped.size(), 1u);
  // Through the loop: the error comes before anything is written.
  io::json j = tiny_config(d + "/bin.dat");
  auto o = quiet_options(j, d + "/out");
  auto r = run_training(o);
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(fs::exists(d + "/out"));
  fs::remove_all(d);
}

// ---- config ----
TEST(TrainConfig, ErrorsNameKeyAndExpectation) {
  io::json base = tiny_config("corpus.txt");
  ASSERT_TRUE(parse_train_config(base).ok());
  auto expect_error = [&](io::json j, const std::string& needle) {
    auto r = parse_train_config(j, "cfg.json");
    ASSERT_FALSE(r.ok()) << needle;
    EXPECT_NE(r.get_status().message().find(needle), std::string::npos) << r.get_status().message();
  };
  io::json j = base;
  j["optimizer"]["lrr"] = 1;
  expect_error(j, "unknown key 'optimizer.lrr'");
  j = base;
  j["bogus"] = 1;
  expect_error(j, "unknown key 'bogus'");
  j = base;
  j["optimizer"]["lr"] = -1;
  expect_error(j, "'optimizer.lr' must be in (0");
  j = base;
  j["optimizer"]["betas"] = {0.9};
  expect_error(j, "optimizer.betas");
  j = base;
  j["batch"]["seq_len"] = "long";
  expect_error(j, "'batch.seq_len' must be an integer");
  j = base;
  j["data"]["tokenizer"] = "word";
  expect_error(j, "'data.tokenizer' must be one of byte, bpe");
  j = base;
  j["model"].erase("model_type");
  expect_error(j, "model.model_type");
  j = base;
  j["steps"] = 0;
  expect_error(j, "'steps'");
  // Overrides.
  j = base;
  ASSERT_TRUE(apply_override(j, "optimizer.lr=0.5").ok());
  ASSERT_TRUE(apply_override(j, "data.tokenizer=bpe").ok());
  ASSERT_TRUE(apply_override(j, "optimizer.betas=[0.8,0.9]").ok());
  auto c = parse_train_config(j).value();
  EXPECT_EQ(c.optimizer.lr, 0.5);
  EXPECT_EQ(c.data.tokenizer, "bpe");
  EXPECT_EQ(c.optimizer.beta1, 0.8);
  EXPECT_FALSE(apply_override(j, "noequals").ok());
  ASSERT_TRUE(apply_override(j, "batch.sequencez=3").ok());
  expect_error(j, "unknown key 'batch.sequencez'");
  // The resolved config parses back to itself.
  EXPECT_EQ(parse_train_config(c.to_json()).value().to_json(), c.to_json());
}

// ---- tokenizer ----
TEST(TrainTokenizer, ByteAndBpeJsonRoundTripThroughReader) {
  const std::string d = temp_dir("tok");
  const std::string text = tiny_corpus() + "Unicode: na\xC3\xAFve caf\xC3\xA9 \xE2\x82\xAC 10 apples!\n";
  write_text(d + "/byte.json", tok::byte_level_tokenizer_json({}));
  auto bt = tok::load_tokenizer(d + "/byte.json");
  ASSERT_TRUE(bt.ok()) << bt.get_status().message();
  EXPECT_EQ(bt.value()->vocab_size(), 256u);
  auto ids = bt.value()->encode(text).value();
  ASSERT_EQ(ids.size(), text.size());
  for (std::size_t i = 0; i < ids.size(); ++i) ASSERT_EQ(ids[i], static_cast<uint8_t>(text[i]));  // id = byte
  EXPECT_EQ(bt.value()->decode(ids).value(), text);

  auto bpe = tok::train_byte_level_bpe(text, 300);
  ASSERT_TRUE(bpe.ok());
  EXPECT_EQ(bpe.value().vocab_size(), 300u);
  write_text(d + "/bpe.json", bpe.value().tokenizer_json);
  auto t = tok::load_tokenizer(d + "/bpe.json");
  ASSERT_TRUE(t.ok()) << t.get_status().message();
  EXPECT_EQ(t.value()->vocab_size(), 300u);
  auto bids = t.value()->encode(text).value();
  EXPECT_LT(bids.size(), text.size() * 6 / 10);  // merges compress the corpus they were learned on
  EXPECT_EQ(t.value()->decode(bids).value(), text);
  const auto& m0 = bpe.value().merges[0];
  EXPECT_EQ(t.value()->token_to_id(m0.first + m0.second).value_or(-1), 256);  // merge k is token 256 + k
  EXPECT_TRUE(t.value()->token_to_id("\xC4\xA0the").has_value());           // " the" became one token
  EXPECT_FALSE(tok::train_byte_level_bpe(text, 100).ok());
  fs::remove_all(d);
}

// A fresh temp folder holding the tiny corpus (d/c.txt) and the tiny config that reads it.
struct tiny_setup {
  std::string d;
  io::json j;
};
tiny_setup tiny_case(const std::string& name) {
  tiny_setup c{temp_dir(name), {}};
  write_text(c.d + "/c.txt", tiny_corpus());
  c.j = tiny_config(c.d + "/c.txt");
  return c;
}

// ---- the loop ----
TEST(TrainLoop, LossDecreasesAndWritesArtifacts) {
  threads_scope one_thread(1);
  auto [d, j] = tiny_case("loss");
  j["steps"] = 60;
  auto r = run_training(quiet_options(j, d + "/out"));
  ASSERT_TRUE(r.ok()) << r.get_status().message();
  const auto& s = r.value();
  ASSERT_EQ(s.step_losses.size(), 60u);
  EXPECT_NEAR(s.step_losses.front(), std::log(256.0), 1.0);
  EXPECT_LT(s.step_losses.back(), s.step_losses.front() - 2.0);
  EXPECT_LT(s.val_loss, 2.0);
  EXPECT_NEAR(s.val_bits_per_byte, s.val_loss / std::log(2.0), 1e-9);  // byte-level: one token per byte
  for (const char* f : {"last/config.json", "last/model.safetensors", "last/optimizer.safetensors", "last/trainer_state.json",
                        "last/tokenizer.json", "log.csv", "log.jsonl", "loss.svg", "data/train.bin", "data/val.bin", "data/data.json"})
    EXPECT_TRUE(fs::exists(d + "/out/" + f)) << f;
  const std::string svg = read_text(d + "/out/loss.svg");
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
  EXPECT_NE(svg.find("validation loss"), std::string::npos);
  const std::string csv = read_text(d + "/out/log.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 61);  // header + a row per step
  // The checkpoint loads back as a model with the same weights.
  auto m = load_trainable(d + "/out/last");
  ASSERT_TRUE(m.ok()) << m.get_status().message();
  // A second fresh run into the same folder is refused (nothing overwritten).
  auto again = run_training(quiet_options(j, d + "/out"));
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.get_status().message().find("--resume"), std::string::npos);
  fs::remove_all(d);
}

TEST(TrainLoop, ResumeIsBitExact) {
  threads_scope one_thread(1);
  auto [d, j] = tiny_case("resume");
  j["steps"] = 24;
  j["batch"]["accumulation"] = 2;
  auto straight = run_training(quiet_options(j, d + "/a"));
  ASSERT_TRUE(straight.ok()) << straight.get_status().message();

  auto first = quiet_options(j, d + "/b");
  first.stop_after_step = 12;
  auto half = run_training(first);
  ASSERT_TRUE(half.ok()) << half.get_status().message();
  ASSERT_EQ(half.value().step_losses.size(), 12u);
  auto second = quiet_options(j, d + "/b");
  second.resume = d + "/b";
  auto rest = run_training(second);
  ASSERT_TRUE(rest.ok()) << rest.get_status().message();
  ASSERT_EQ(rest.value().start_step, 12);
  std::vector<double> joined = half.value().step_losses;
  joined.insert(joined.end(), rest.value().step_losses.begin(), rest.value().step_losses.end());
  ASSERT_EQ(joined.size(), straight.value().step_losses.size());
  for (std::size_t i = 0; i < joined.size(); ++i) EXPECT_EQ(joined[i], straight.value().step_losses[i]) << "step " << i;
  EXPECT_EQ(rest.value().val_loss, straight.value().val_loss);
  EXPECT_EQ(read_text(d + "/a/last/model.safetensors"), read_text(d + "/b/last/model.safetensors"));

  // An incompatible checkpoint: a different model section is refused, nothing written.
  io::json k = j;
  k["model"]["hidden_size"] = 4;
  auto bad = quiet_options(k, d + "/b");
  bad.resume = d + "/b";
  const std::string before = read_text(d + "/b/last/trainer_state.json");
  auto br = run_training(bad);
  ASSERT_FALSE(br.ok());
  EXPECT_NE(br.get_status().message().find("model.hidden_size"), std::string::npos) << br.get_status().message();
  EXPECT_EQ(read_text(d + "/b/last/trainer_state.json"), before);
  // A changed corpus is refused too; the same corpus at another path is accepted.
  write_text(d + "/other.txt", tiny_corpus() + "more text\n");
  io::json o = j;
  o["data"]["path"] = d + "/other.txt";
  auto changed = quiet_options(o, d + "/b");
  changed.resume = d + "/b";
  auto cr = run_training(changed);
  ASSERT_FALSE(cr.ok());
  EXPECT_NE(cr.get_status().message().find("not the one this run was trained on"), std::string::npos) << cr.get_status().message();
  EXPECT_EQ(read_text(d + "/b/last/trainer_state.json"), before);
  fs::rename(d + "/c.txt", d + "/moved.txt");
  o["data"]["path"] = d + "/moved.txt";
  o["steps"] = 26;
  auto moved = quiet_options(o, d + "/b");
  moved.resume = d + "/b";
  auto mr = run_training(moved);
  ASSERT_TRUE(mr.ok()) << mr.get_status().message();
  EXPECT_EQ(mr.value().start_step, 24);
  fs::remove_all(d);
}

TEST(TrainCheckpoint, FailedSaveNeverReplacesThePreviousOne) {
  threads_scope one_thread(1);
  auto [d, j] = tiny_case("atomic");
  j["steps"] = 4;
  ASSERT_TRUE(run_training(quiet_options(j, d + "/out")).ok());
  const std::string target = fs::read_symlink(d + "/out/last").string();
  EXPECT_EQ(target, "checkpoint-4");
  const std::string state_before = read_text(d + "/out/last/trainer_state.json");
  const std::string model_before = read_text(d + "/out/last/model.safetensors");

  // The next save dies after its model file is written (as a kill or a full disk would).
  j["steps"] = 8;
  set_checkpoint_fault_hook([](const std::string& file) -> status {
    if (file == "optimizer.safetensors") return make_error(status_code::io_error, "injected failure after {}", file);
    return {};
  });
  auto o = quiet_options(j, d + "/out");
  o.resume = d + "/out";
  auto r = run_training(o);
  set_checkpoint_fault_hook(nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.get_status().message().find("injected"), std::string::npos);
  EXPECT_EQ(fs::read_symlink(d + "/out/last").string(), "checkpoint-4");
  EXPECT_EQ(read_text(d + "/out/last/trainer_state.json"), state_before);
  EXPECT_EQ(read_text(d + "/out/last/model.safetensors"), model_before);
  EXPECT_FALSE(fs::exists(d + "/out/checkpoint-8"));
  for (const auto& e : fs::directory_iterator(d + "/out"))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  // A leftover temporary directory (a killed save) is ignored by resume and cleaned by the next save.
  fs::create_directories(d + "/out/.checkpoint-6.tmp-1");
  write_text(d + "/out/.checkpoint-6.tmp-1/model.safetensors", "garbage");
  auto o2 = quiet_options(j, d + "/out");
  o2.resume = d + "/out";
  auto r2 = run_training(o2);
  ASSERT_TRUE(r2.ok()) << r2.get_status().message();
  EXPECT_EQ(r2.value().start_step, 4);
  EXPECT_EQ(fs::read_symlink(d + "/out/last").string(), "checkpoint-8");
  EXPECT_FALSE(fs::exists(d + "/out/.checkpoint-6.tmp-1"));
  // write_file_atomic leaves an existing file as it was when the write fails.
  write_text(d + "/keep.txt", "old");
  EXPECT_FALSE(write_file_atomic(d + "/no_such_dir/keep.txt", "new").ok());
  EXPECT_EQ(read_text(d + "/keep.txt"), "old");
  fs::remove_all(d);
}

TEST(TrainLoop, Bf16AutocastKeepsFp32MasterWeights) {
  threads_scope one_thread(1);
  auto [d, j] = tiny_case("bf16");
  j["steps"] = 30;
  j["bf16"] = true;
  auto r = run_training(quiet_options(j, d + "/a"));
  ASSERT_TRUE(r.ok()) << r.get_status().message();
  EXPECT_LT(r.value().step_losses.back(), r.value().step_losses.front() - 1.0);
  // The saved (master) weights are fp32 values, not bf16-rounded ones.
  auto m = load_trainable(d + "/a/last").value();
  int64_t not_bf16 = 0, total = 0;
  for (auto& p : m->parameters())
    for (double v : p.v.value().to_doubles()) {
      ++total;
      if (static_cast<float>(bf16(static_cast<float>(v))) != static_cast<float>(v)) ++not_bf16;
    }
  EXPECT_GT(not_bf16, total / 2);
  // And the run differs from the fp32 one (the forward really used rounded weights).
  j["bf16"] = false;
  auto f = run_training(quiet_options(j, d + "/b"));
  ASSERT_TRUE(f.ok());
  EXPECT_NE(f.value().step_losses.back(), r.value().step_losses.back());
  fs::remove_all(d);
}

TEST(TrainLoop, BpeTokenizerTrainsAndReportsBitsPerByte) {
  threads_scope one_thread(1);
  auto [d, j] = tiny_case("bpe");
  j["data"]["tokenizer"] = "bpe";
  j["data"]["vocab_size"] = 300;
  j["steps"] = 10;
  auto r = run_training(quiet_options(j, d + "/out"));
  ASSERT_TRUE(r.ok()) << r.get_status().message();
  auto t = tok::load_tokenizer(d + "/out/last/tokenizer.json");
  ASSERT_TRUE(t.ok()) << t.get_status().message();
  EXPECT_EQ(t.value()->vocab_size(), 300u);
  auto cfg = io::config::read(d + "/out/last/config.json").value();
  EXPECT_EQ(cfg.get_int("vocab_size").value(), 300);
  // More than one byte per token: bits per byte < bits per token.
  EXPECT_LT(r.value().val_bits_per_byte, r.value().val_loss / std::log(2.0) * 0.8);
  // The shard is uint16 and decodes back to the corpus text it came from.
  const auto meta = io::read_json_file(d + "/out/data/data.json").value();
  EXPECT_EQ(meta["dtype"], "uint16");
  auto toks = read_token_file(d + "/out/data/val.bin", 2).value();
  std::vector<tok::token_id> ids(toks.begin(), toks.end());
  const std::string text = t.value()->decode(ids).value();
  EXPECT_NE(tiny_corpus().find(text.substr(0, 40)), std::string::npos);
  fs::remove_all(d);
}

// The CLI: a config error exits 1 with one line naming the key, and writes nothing.
TEST(TrainCli, ConfigErrorsWriteNothing) {
  auto [d, j] = tiny_case("cli");
  j["optimizer"]["momentum"] = 0.9;
  write_text(d + "/bad.json", j.dump());
  const std::string cmd = std::string(LRNN_CLI_PATH) + " train --config " + d + "/bad.json --out " + d + "/out 2>" + d + "/err.txt";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 1);
  EXPECT_NE(read_text(d + "/err.txt").find("unknown key 'optimizer.momentum'"), std::string::npos) << read_text(d + "/err.txt");
  EXPECT_FALSE(fs::exists(d + "/out"));
  j["optimizer"].erase("momentum");
  write_text(d + "/ok.json", j.dump());
  const std::string cmd2 = std::string(LRNN_CLI_PATH) + " train --config " + d + "/ok.json --set batch.seq_len=0 --out " + d + "/out 2>" + d + "/err.txt";
  EXPECT_EQ(WEXITSTATUS(std::system(cmd2.c_str())), 1);
  EXPECT_NE(read_text(d + "/err.txt").find("'batch.seq_len' must be in [1"), std::string::npos) << read_text(d + "/err.txt");
  EXPECT_FALSE(fs::exists(d + "/out"));
  fs::remove_all(d);
}

TEST(TrainLog, SvgHasAxesAndBothCurves) {
  curve a{"train loss", "#000", {{0, 5}, {10, 3}, {20, 2}}}, b{"validation loss", "#f00", {{10, 3.2}, {20, 2.4}}};
  const std::string s = line_chart_svg({a, b}, "title <x>", "step", "loss");
  EXPECT_EQ(s.rfind("<svg", 0), 0u);
  EXPECT_NE(s.find("title &lt;x&gt;"), std::string::npos);
  EXPECT_EQ(std::count(s.begin(), s.end(), 'p') > 0, true);
  size_t polylines = 0;
  for (size_t p = s.find("<polyline"); p != std::string::npos; p = s.find("<polyline", p + 1)) ++polylines;
  EXPECT_EQ(polylines, 2u);
  EXPECT_NE(s.find(">step<"), std::string::npos);
  EXPECT_NE(s.find(">loss<"), std::string::npos);
  EXPECT_NE(s.find("</svg>"), std::string::npos);
}

}  // namespace
}  // namespace lrnn::train
