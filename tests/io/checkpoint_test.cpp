// Checkpoints: single-file fixtures, a two-shard checkpoint built with the writer plus an
// index, and indexes that must be rejected (missing shard, tensor not in its shard, shard
// names outside the directory, tensors listed twice or held by two shards).
#include "io/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

namespace lrnn::io {
namespace {

namespace fs = std::filesystem;

std::string fixture_dir(const std::string& model) { return std::string(LRNN_TEST_DATA_DIR) + "/" + model; }

class temp_dir {
 public:
  temp_dir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() / fmt::format("lrnn_checkpoint_test_{}_{}", ::getpid(), counter++);
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string path() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  void write(const std::string& name, const std::string& text) const { std::ofstream(file(name), std::ios::binary) << text; }

 private:
  fs::path path_;
};

bool same_bytes(const tensor& a, const tensor& b) {
  return a.type() == b.type() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

void expect_error(const status& s, status_code code, const std::string& prefix, const std::string& needle) {
  ASSERT_FALSE(s.ok()) << "expected an error mentioning: " << needle;
  EXPECT_EQ(s.code(), code) << s.to_string();
  EXPECT_EQ(s.message().rfind(prefix, 0), 0u) << s.message();
  EXPECT_NE(s.message().find(needle), std::string::npos) << "'" << needle << "' not in: " << s.message();
}

// Splits the hf_rwkv4 fixture into two shards in `dir` and returns the index's weight_map
// entries ("name": "shard") in the order written.
struct sharded {
  std::vector<std::pair<std::string, std::string>> weight_map;
  uint64_t total = 0;
};

sharded write_two_shards(const temp_dir& dir) {
  const safetensors_file src = safetensors_file::open(fixture_dir("hf_rwkv4") + "/model.safetensors").value();
  named_tensors a, b;
  sharded out;
  for (size_t i = 0; i < src.tensors().size(); ++i) {
    const tensor_info& ti = src.tensors()[i];
    const bool first = i % 2 == 0;
    (first ? a : b).emplace_back(ti.name, src.get(ti.name).value());
    out.weight_map.emplace_back(ti.name, first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors");
    out.total += ti.nbytes();
  }
  EXPECT_TRUE(write_safetensors(dir.file("model-00001-of-00002.safetensors"), a, {{"format", "pt"}}).ok());
  EXPECT_TRUE(write_safetensors(dir.file("model-00002-of-00002.safetensors"), b, {{"format", "pt"}}).ok());
  return out;
}

std::string index_json(const std::vector<std::pair<std::string, std::string>>& weight_map, uint64_t total) {
  std::string s = fmt::format("{{\"metadata\": {{\"total_size\": {}, \"format\": \"pt\"}}, \"weight_map\": {{", total);
  for (size_t i = 0; i < weight_map.size(); ++i)
    s += fmt::format("{}\n  \"{}\": \"{}\"", i ? "," : "", weight_map[i].first, weight_map[i].second);
  return s + "}}";
}

TEST(checkpoint, opens_every_single_file_fixture) {
  for (const char* model : {"fla_gated_deltanet", "fla_gla", "fla_retnet", "fla_rwkv7", "hf_recurrentgemma",
                            "hf_rwkv4", "hf_xlstm"}) {
    SCOPED_TRACE(model);
    auto ck = checkpoint::open(fixture_dir(model));
    ASSERT_TRUE(ck.ok()) << ck.error().to_string();
    ASSERT_EQ(ck->files().size(), 1u);
    const std::vector<std::string> names = ck->names();
    EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
    EXPECT_EQ(names.size(), ck->files()[0].tensors().size());
    EXPECT_EQ(ck->total_bytes(), ck->files()[0].data_bytes());
    EXPECT_EQ(ck->metadata().at("format"), "pt");
    for (const std::string& name : names) {
      ASSERT_TRUE(ck->contains(name));
      ASSERT_NE(ck->info(name), nullptr);
      EXPECT_EQ(ck->file_of(name), &ck->files()[0]);
      auto t = ck->get(name);
      ASSERT_TRUE(t.ok()) << t.error().to_string();
      EXPECT_EQ(t->shape(), ck->info(name)->shape);
    }
  }
}

TEST(checkpoint, missing_names_and_missing_directories) {
  auto ck = checkpoint::open(fixture_dir("hf_rwkv4"));
  ASSERT_TRUE(ck.ok());
  EXPECT_FALSE(ck->contains("nope"));
  EXPECT_EQ(ck->info("nope"), nullptr);
  EXPECT_EQ(ck->file_of("nope"), nullptr);
  EXPECT_EQ(ck->get("nope").error().code(), status_code::not_found);
  temp_dir empty;
  expect_error(checkpoint::open(empty.path()).get_status(), status_code::not_found, empty.path(),
               empty.path() + ": no model.safetensors or model.safetensors.index.json");
  expect_error(checkpoint::open(empty.file("absent")).get_status(), status_code::not_found, empty.file("absent"),
               "no such directory");
}

TEST(checkpoint, a_single_file_path_also_opens) {
  auto ck = checkpoint::open(fixture_dir("hf_xlstm") + "/model.safetensors");
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  EXPECT_FALSE(ck->names().empty());
}

TEST(checkpoint, opens_two_shards_through_the_index) {
  temp_dir dir;
  const sharded s = write_two_shards(dir);
  dir.write("model.safetensors.index.json", index_json(s.weight_map, s.total));
  auto ck = checkpoint::open(dir.path());
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  EXPECT_EQ(ck->files().size(), 2u);
  EXPECT_EQ(ck->total_bytes(), s.total);
  EXPECT_EQ(ck->metadata().at("total_size"), std::to_string(s.total));
  EXPECT_EQ(ck->metadata().at("format"), "pt");
  const safetensors_file src = safetensors_file::open(fixture_dir("hf_rwkv4") + "/model.safetensors").value();
  std::vector<std::string> want;
  for (const tensor_info& ti : src.tensors()) want.push_back(ti.name);
  std::sort(want.begin(), want.end());
  EXPECT_EQ(ck->names(), want);
  for (const auto& [name, shard] : s.weight_map) {
    SCOPED_TRACE(name);
    ASSERT_NE(ck->file_of(name), nullptr);
    EXPECT_EQ(fs::path(ck->file_of(name)->path()).filename().string(), shard);
    auto t = ck->get(name);
    ASSERT_TRUE(t.ok()) << t.error().to_string();
    EXPECT_TRUE(same_bytes(*t, src.get(name).value()));
  }
}

TEST(checkpoint, prefers_model_safetensors_over_the_index) {
  temp_dir dir;
  ASSERT_TRUE(write_safetensors(dir.file("model.safetensors"), {{"x", tensor::from_vector(std::vector<float>{1}, {1})}}).ok());
  dir.write("model.safetensors.index.json", "not even json");
  auto ck = checkpoint::open(dir.path());
  ASSERT_TRUE(ck.ok()) << ck.error().to_string();
  EXPECT_EQ(ck->names(), std::vector<std::string>{"x"});
}

TEST(checkpoint, bad_indexes) {
  temp_dir dir;
  const sharded s = write_two_shards(dir);
  const std::string index = dir.file("model.safetensors.index.json");
  const std::string first = s.weight_map[0].first, second = s.weight_map[1].first;
  auto open_with = [&](const std::string& text) {
    dir.write("model.safetensors.index.json", text);
    return checkpoint::open(dir.path()).get_status();
  };
  auto with_entry = [&](size_t i, const std::string& shard) {
    auto wm = s.weight_map;
    wm[i].second = shard;
    return index_json(wm, s.total);
  };

  expect_error(open_with(with_entry(0, "model-00003-of-00002.safetensors")), status_code::not_found, index,
               "shard 'model-00003-of-00002.safetensors' (listed for tensor '" + first + "') does not exist");
  expect_error(open_with(with_entry(0, "model-00002-of-00002.safetensors")), status_code::parse_error, index,
               "tensor '" + first + "' is listed in shard 'model-00002-of-00002.safetensors', but that file does not hold it");
  for (const std::string bad : {"../model-00001-of-00002.safetensors", "sub/x.safetensors", "/etc/passwd", "..", ".", ""})
    expect_error(open_with(with_entry(0, bad)), status_code::parse_error, index,
                 "tensor '" + first + "' maps to '" + bad + "', which is not a plain file name in the directory");

  // The same tensor listed twice (nlohmann would keep only the last).
  auto twice = s.weight_map;
  twice.emplace_back(first, "model-00002-of-00002.safetensors");
  expect_error(open_with(index_json(twice, s.total)), status_code::parse_error, index,
               "tensor '" + first + "' is listed twice in weight_map");

  // A tensor held by both shards.
  {
    const safetensors_file src = safetensors_file::open(fixture_dir("hf_rwkv4") + "/model.safetensors").value();
    named_tensors b;
    for (size_t i = 1; i < s.weight_map.size(); i += 2) b.emplace_back(s.weight_map[i].first, src.get(s.weight_map[i].first).value());
    b.emplace_back(first, src.get(first).value());
    ASSERT_TRUE(write_safetensors(dir.file("model-00002-of-00002.safetensors"), b).ok());
    expect_error(open_with(index_json(s.weight_map, s.total)), status_code::parse_error, index,
                 "tensor '" + first + "' is in both shard 'model-00001-of-00002.safetensors' and shard "
                 "'model-00002-of-00002.safetensors'");
  }
  // A shard tensor that the index does not list.
  {
    auto partial = s.weight_map;
    partial.erase(partial.begin() + 1);
    write_two_shards(dir);
    expect_error(open_with(index_json(partial, s.total)), status_code::parse_error, index,
                 "shard 'model-00002-of-00002.safetensors' holds tensor '" + second + "', which weight_map does not list");
  }
  expect_error(open_with("[1]"), status_code::parse_error, index, "expected a JSON object, got a JSON array");
  expect_error(open_with("{\"weight_map\": "), status_code::parse_error, index, "invalid JSON");
  expect_error(open_with("{\"metadata\": {}}"), status_code::parse_error, index, "missing \"weight_map\"");
  expect_error(open_with("{\"weight_map\": []}"), status_code::parse_error, index, "weight_map is a JSON array");
  expect_error(open_with("{\"weight_map\": {}}"), status_code::parse_error, index, "weight_map lists no tensors");
  expect_error(open_with("{\"weight_map\": {\"a\": 3}}"), status_code::parse_error, index,
               "weight_map entry for tensor 'a' is a JSON integer");
  expect_error(open_with("{\"metadata\": 3, \"weight_map\": {\"a\": \"b\"}}"), status_code::parse_error, index,
               "metadata is a JSON integer");
  expect_error(open_with(std::string(100000, '[')), status_code::parse_error, index, "nested deeper");

  // A corrupt shard: the shard's own error, naming its path.
  {
    std::ofstream(dir.file("model-00002-of-00002.safetensors"), std::ios::binary) << "short";
    const std::string shard = dir.file("model-00002-of-00002.safetensors");
    expect_error(open_with(index_json(s.weight_map, s.total)), status_code::parse_error, shard, "too short");
  }
}

}  // namespace
}  // namespace lrnn::io
