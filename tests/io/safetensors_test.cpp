// safetensors reader and writer: the model fixtures, a reference file written by the Python
// `safetensors` package (tests/data/safetensors/make_reference.py), round trips of every
// dtype, atomic writes, and malformed headers that must give named parse errors.
#include "io/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

namespace lrnn::io {
namespace {

namespace fs = std::filesystem;

const char* const fixture_models[] = {"fla_gated_deltanet", "fla_gla",          "fla_retnet", "fla_rwkv7",
                                      "hf_recurrentgemma",  "hf_rwkv4",         "hf_xlstm"};

std::string data_path(const std::string& rel) { return std::string(LRNN_TEST_DATA_DIR) + "/" + rel; }

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// A file from a header text and `data_bytes` bytes of data (all `fill`).
std::vector<uint8_t> make_file(std::string_view header, size_t data_bytes, uint8_t fill = 0) {
  std::vector<uint8_t> out(8 + header.size() + data_bytes, fill);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(n >> (8 * i));
  if (!header.empty()) std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

status parse_header(std::string_view header, size_t data_bytes) {
  return safetensors_file::from_buffer(make_file(header, data_bytes), "bad.safetensors").get_status();
}

void expect_error(const status& s, std::string_view needle, status_code code = status_code::parse_error) {
  ASSERT_FALSE(s.ok()) << "expected an error mentioning: " << needle;
  EXPECT_EQ(s.code(), code) << s.to_string();
  EXPECT_EQ(s.message().rfind("bad.safetensors: ", 0), 0u) << s.message();
  EXPECT_NE(s.message().find(needle), std::string::npos) << "'" << needle << "' not in: " << s.message();
}

bool same_bytes(const tensor& a, const tensor& b) {
  if (a.type() != b.type() || a.shape() != b.shape()) return false;
  const tensor ca = a.contiguous().value(), cb = b.contiguous().value();
  return ca.nbytes() == 0 || std::memcmp(ca.raw_data(), cb.raw_data(), ca.nbytes()) == 0;
}

class temp_dir {
 public:
  temp_dir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() / fmt::format("lrnn_safetensors_test_{}_{}", ::getpid(), counter++);
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  fs::path path_;
};

// A tensor holding exactly these values (from_vector converts through double, which cannot
// hold every 64-bit integer).
template <typename T>
tensor exact(const std::vector<T>& v, const shape_t& shape, dtype t = dtype_of<T>::value) {
  tensor out = tensor::empty(shape, t).value();
  EXPECT_EQ(out.nbytes(), v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(out.raw_data(), v.data(), out.nbytes());
  return out;
}

// The tensors of reference.safetensors, built in C++.
named_tensors reference_tensors() {
  named_tensors t;
  t.emplace_back("a.f64", tensor::from_vector(std::vector<double>{-1.5, 0.0, 1e-300, 3.25, 1e300, -7.0}, {2, 3}));
  t.emplace_back("b.f32", tensor::from_vector(std::vector<float>{0.5f, -2.0f, 3.140625f, 1e-8f, -0.0f, 65504.0f}, {3, 2}));
  t.emplace_back("c.bf16", tensor::from_vector(std::vector<float>{1.0f, -2.5f, 0.0078125f, 256.0f}, {4}, dtype::bf16));
  t.emplace_back("d.f16", tensor::from_vector(std::vector<float>{1.0f, -0.5f, 65504.0f, 6.103515625e-05f}, {2, 2}, dtype::f16));
  t.emplace_back("e.i64", exact(std::vector<int64_t>{INT64_MIN, 0, INT64_MAX}, {3}));
  t.emplace_back("f.u64", exact(std::vector<uint64_t>{0, UINT64_MAX}, {2}));
  t.emplace_back("g.i32", exact(std::vector<int32_t>{INT32_MIN, -1, 1, INT32_MAX}, {2, 2}));
  t.emplace_back("h.u32", exact(std::vector<uint32_t>{0, 1, UINT32_MAX}, {3}));
  t.emplace_back("i.i16", tensor::from_vector(std::vector<int16_t>{-32768, 0, 32767}, {3}));
  t.emplace_back("j.u16", tensor::from_vector(std::vector<uint16_t>{0, 65535}, {2}));
  t.emplace_back("k.i8", tensor::from_vector(std::vector<int8_t>{-128, -1, 0, 127}, {4}));
  t.emplace_back("l.u8", tensor::from_vector(std::vector<uint8_t>{0, 128, 255}, {3}));
  t.emplace_back("m.bool", exact(std::vector<uint8_t>{1, 0, 0, 1}, {2, 2}, dtype::boolean));
  t.emplace_back("empty", tensor::zeros({0}, dtype::f32).value());
  t.emplace_back("empty2d", tensor::zeros({3, 0}, dtype::i32).value());
  t.emplace_back("scalar", tensor::from_vector(std::vector<double>{2.5}, {}));
  t.emplace_back("naïve \"quoted\"\\name\n", tensor::from_vector(std::vector<float>{42.0f}, {1}));
  t.emplace_back("模型.权重", tensor::from_vector(std::vector<uint8_t>{1, 2}, {2}));
  return t;
}

const std::map<std::string, std::string> reference_metadata = {{"note", "línea\t\"x\""}};

TEST(safetensors, every_fixture_opens_and_every_tensor_reads) {
  for (const char* model : fixture_models) {
    SCOPED_TRACE(model);
    auto f = safetensors_file::open(data_path(std::string(model) + "/model.safetensors"));
    ASSERT_TRUE(f.ok()) << f.error().to_string();
    EXPECT_GT(f->tensors().size(), 5u);
    EXPECT_EQ(f->metadata().at("format"), "pt");
    uint64_t total = 0;
    for (const tensor_info& ti : f->tensors()) {
      SCOPED_TRACE(ti.name);
      EXPECT_TRUE(f->contains(ti.name));
      EXPECT_EQ(f->info(ti.name), &ti);
      EXPECT_EQ(ti.type, dtype::f32);
      EXPECT_GE(ti.shape.size(), 1u);
      EXPECT_LE(ti.shape.size(), 4u);
      auto t = f->get(ti.name);
      ASSERT_TRUE(t.ok()) << t.error().to_string();
      EXPECT_EQ(t->shape(), ti.shape);
      EXPECT_EQ(t->type(), dtype::f32);
      EXPECT_TRUE(t->is_contiguous());
      EXPECT_GT(t->numel(), 0);
      EXPECT_LT(t->numel(), 1 << 20);
      EXPECT_EQ(t->nbytes(), ti.nbytes());
      const float* p = t->data<float>();
      for (int64_t i = 0; i < t->numel(); ++i) ASSERT_TRUE(std::isfinite(p[i])) << "element " << i;
      EXPECT_LT(std::fabs(p[0]), 100.0f);
      total += ti.nbytes();
    }
    EXPECT_EQ(total, f->data_bytes());
    EXPECT_EQ(8 + f->header_bytes() + f->data_bytes(), fs::file_size(f->path()));
  }
}

TEST(safetensors, fixture_values_match_python) {
  auto rwkv = safetensors_file::open(data_path("hf_rwkv4/model.safetensors"));
  ASSERT_TRUE(rwkv.ok()) << rwkv.error().to_string();
  tensor head = rwkv->get("head.weight").value();
  EXPECT_EQ(head.shape(), (shape_t{256, 64}));
  EXPECT_EQ(head.at({0, 0}), 0.040448740124702454);
  EXPECT_EQ(head.at({0, 1}), -0.0026680845767259598);
  EXPECT_EQ(head.at({255, 63}), -0.05226415768265724);
  auto gla = safetensors_file::open(data_path("fla_gla/model.safetensors"));
  ASSERT_TRUE(gla.ok()) << gla.error().to_string();
  tensor emb = gla->get("model.embeddings.weight").value();
  EXPECT_EQ(emb.shape(), (shape_t{256, 128}));
  EXPECT_EQ(emb.at({0, 1}), -0.03197813034057617);
  EXPECT_EQ(emb.at({255, 127}), -0.018767662346363068);
}

TEST(safetensors, views_share_the_mapping_and_keep_it_alive) {
  tensor a, b;
  {
    auto f = safetensors_file::open(data_path("hf_rwkv4/model.safetensors"));
    ASSERT_TRUE(f.ok()) << f.error().to_string();
    a = f->get("head.weight").value();
    b = f->get("head.weight").value();
  }
  // Both are views of the same mapped bytes (no copy), still readable after the file object.
  EXPECT_EQ(a.raw_data(), b.raw_data());
  EXPECT_EQ(a.at({255, 63}), -0.05226415768265724);
}

TEST(safetensors, writing_into_a_view_leaves_the_file_unchanged) {
  temp_dir dir;
  const std::string path = dir.file("w.safetensors");
  ASSERT_TRUE(write_safetensors(path, {{"x", tensor::from_vector(std::vector<float>{1, 2, 3}, {3})}}).ok());
  {
    auto f = safetensors_file::open(path);
    ASSERT_TRUE(f.ok());
    tensor x = f->get("x").value();
    x.set({1}, 99.0);
    EXPECT_EQ(x.at({1}), 99.0);
  }
  auto again = safetensors_file::open(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->get("x").value().at({1}), 2.0);
}

TEST(safetensors, maps_a_file_larger_than_memory_without_reading_it) {
  // A sparse 33 GB file: opening and viewing it touches only the pages that are read.
  temp_dir dir;
  const std::string path = dir.file("big.safetensors");
  const uint64_t n = 33'000'000'000;
  std::string header = fmt::format(R"({{"big":{{"dtype":"U8","shape":[{}],"data_offsets":[0,{}]}}}})", n, n);
  header.resize((header.size() + 7) / 8 * 8, ' ');
  write_bytes(path, make_file(header, 0));
  fs::resize_file(path, 8 + header.size() + n);
  auto f = safetensors_file::open(path);
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  tensor big = f->get("big").value();
  EXPECT_EQ(big.numel(), static_cast<int64_t>(n));
  const uint8_t* p = big.data<uint8_t>();
  EXPECT_EQ(p[0], 0);
  EXPECT_EQ(p[n - 1], 0);
  big.data<uint8_t>()[n / 2] = 7;  // copy-on-write of one page
  EXPECT_EQ(big.at({static_cast<int64_t>(n / 2)}), 7.0);
}

TEST(safetensors, reads_the_python_reference_file) {
  auto f = safetensors_file::open(data_path("safetensors/reference.safetensors"));
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  EXPECT_EQ(f->metadata(), reference_metadata);
  const named_tensors expected = reference_tensors();
  ASSERT_EQ(f->tensors().size(), expected.size());
  for (const auto& [name, want] : expected) {
    SCOPED_TRACE(name);
    auto got = f->get(name);
    ASSERT_TRUE(got.ok()) << got.error().to_string();
    EXPECT_EQ(got->type(), want.type());
    EXPECT_EQ(got->shape(), want.shape());
    EXPECT_TRUE(same_bytes(*got, want));
  }
  // Data order: element size descending, then name.
  EXPECT_EQ(f->tensors().front().name, "f.u64");
  EXPECT_EQ(f->tensors().back().name, "m.bool");
  EXPECT_EQ(f->get("scalar").value().dim(), 0);
  EXPECT_EQ(f->get("scalar").value().at({}), 2.5);
  EXPECT_EQ(f->get("e.i64").value().data<int64_t>()[0], INT64_MIN);
  EXPECT_EQ(f->get("f.u64").value().data<uint64_t>()[1], UINT64_MAX);
  EXPECT_EQ(f->get("c.bf16").value().at({1}), -2.5);
  EXPECT_EQ(f->get("d.f16").value().at({1, 0}), 65504.0);
  EXPECT_EQ(f->get("m.bool").value().at({1, 1}), 1.0);
}

TEST(safetensors, writer_output_equals_the_python_reference_bytes) {
  const std::vector<uint8_t> want = read_bytes(data_path("safetensors/reference.safetensors"));
  ASSERT_FALSE(want.empty());
  auto bytes = serialize_safetensors(reference_tensors(), reference_metadata);
  ASSERT_TRUE(bytes.ok()) << bytes.error().to_string();
  EXPECT_EQ(*bytes, want);
  // The input order does not matter.
  named_tensors reversed = reference_tensors();
  std::reverse(reversed.begin(), reversed.end());
  temp_dir dir;
  ASSERT_TRUE(write_safetensors(dir.file("r.safetensors"), reversed, reference_metadata).ok());
  EXPECT_EQ(read_bytes(dir.file("r.safetensors")), want);
}

TEST(safetensors, rewriting_a_fixture_is_byte_exact) {
  temp_dir dir;
  for (const char* model : fixture_models) {
    SCOPED_TRACE(model);
    const std::string src = data_path(std::string(model) + "/model.safetensors");
    auto f = safetensors_file::open(src);
    ASSERT_TRUE(f.ok()) << f.error().to_string();
    named_tensors all;
    for (const tensor_info& ti : f->tensors()) all.emplace_back(ti.name, f->get(ti.name).value());
    const std::string out = dir.file(std::string(model) + ".safetensors");
    ASSERT_TRUE(write_safetensors(out, all, f->metadata()).ok());
    EXPECT_EQ(read_bytes(out), read_bytes(src));
  }
}

TEST(safetensors, round_trips_every_dtype_with_empty_and_scalar_tensors) {
  named_tensors in;
  for (dtype t : all_dtypes) {
    std::vector<double> v(12);
    for (size_t i = 0; i < v.size(); ++i) v[i] = t == dtype::boolean ? static_cast<double>(i % 3 == 0) : static_cast<double>(i) - 3.0;
    if (t == dtype::u8 || t == dtype::u16 || t == dtype::u32 || t == dtype::u64)
      for (double& x : v) x = std::fabs(x);
    in.emplace_back(fmt::format("{}.matrix", dtype_name(t)), tensor::from_doubles(v, {3, 4}, t));
    in.emplace_back(fmt::format("{}.empty", dtype_name(t)), tensor::zeros({0}, t).value());
    in.emplace_back(fmt::format("{}.scalar", dtype_name(t)), tensor::from_doubles({1.0}, {}, t));
    in.emplace_back(fmt::format("{}.empty3d", dtype_name(t)), tensor::zeros({2, 0, 5}, t).value());
  }
  in.emplace_back("bf16.fraction", tensor::from_doubles({0.1, -1e-3, 3e38}, {3}, dtype::bf16));
  in.emplace_back("f16.fraction", tensor::from_doubles({0.1, -1e-3, 6e-8}, {3}, dtype::f16));
  temp_dir dir;
  const std::string path = dir.file("all.safetensors");
  ASSERT_TRUE(write_safetensors(path, in).ok());
  auto f = safetensors_file::open(path);
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  EXPECT_TRUE(f->metadata().empty());
  EXPECT_EQ(f->header_bytes() % 8, 0u);
  ASSERT_EQ(f->tensors().size(), in.size());
  for (const auto& [name, want] : in) {
    SCOPED_TRACE(name);
    auto got = f->get(name);
    ASSERT_TRUE(got.ok()) << got.error().to_string();
    EXPECT_TRUE(same_bytes(*got, want));
    // Written in alignment order, every tensor is viewed in place and aligned.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(got->raw_data()) % dtype_size(want.type()), 0u);
  }
  const std::string header(reinterpret_cast<const char*>(read_bytes(path).data()) + 8, f->header_bytes());
  EXPECT_EQ(header.find("__metadata__"), std::string::npos);
}

TEST(safetensors, writes_non_contiguous_inputs_contiguously) {
  std::vector<double> v(2 * 3 * 4);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i) * 0.25;
  const tensor base = tensor::from_doubles(v, {2, 3, 4}, dtype::f32);
  const tensor transposed = base.transpose(0, 2).value();            // [4, 3, 2]
  const tensor sliced = base.slice(2, 1, 3).value();                 // [2, 3, 2]
  const tensor permuted = base.permute({1, 2, 0}).value().to(dtype::bf16).value();  // [3, 4, 2]
  const tensor row = base.select(1, 2).value();                       // [2, 4]
  const tensor offset_view = base.select(0, 1).value();               // contiguous, storage offset 12
  ASSERT_FALSE(transposed.is_contiguous());
  ASSERT_FALSE(sliced.is_contiguous());
  const named_tensors in = {{"transposed", transposed}, {"sliced", sliced}, {"permuted", permuted}, {"row", row},
                            {"offset_view", offset_view}};
  auto bytes = serialize_safetensors(in);
  ASSERT_TRUE(bytes.ok()) << bytes.error().to_string();
  auto f = safetensors_file::from_buffer(std::move(*bytes), "memory");
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  for (const auto& [name, want] : in) {
    SCOPED_TRACE(name);
    tensor got = f->get(name).value();
    EXPECT_EQ(got.shape(), want.shape());
    EXPECT_EQ(got.to_doubles(), want.to_doubles());
  }
}

TEST(safetensors, metadata_round_trips) {
  const std::map<std::string, std::string> meta = {
      {"format", "pt"}, {"empty", ""}, {"quote\"back\\slash", "tab\tnewline\nnul\x01"}, {"ключ", "значение ✓"}};
  auto bytes = serialize_safetensors({{"w", tensor::from_vector(std::vector<float>{1}, {1})}}, meta);
  ASSERT_TRUE(bytes.ok());
  auto f = safetensors_file::from_buffer(std::move(*bytes), "memory");
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  EXPECT_EQ(f->metadata(), meta);
}

TEST(safetensors, empty_file_with_only_metadata) {
  auto bytes = serialize_safetensors({}, {{"k", "v"}});
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(bytes->size(), 8u + 32u);  // {"__metadata__":{"k":"v"}} padded to 32
  auto f = safetensors_file::from_buffer(std::move(*bytes), "memory");
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_EQ(f->metadata().at("k"), "v");
}

TEST(safetensors, misaligned_data_is_copied) {
  // Header of 33 bytes: the data buffer starts at an odd address inside the buffer.
  const std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string padded = header + std::string((8 - header.size() % 8) % 8 + 1, ' ');
  std::vector<uint8_t> file = make_file(padded, 0);
  const float vals[2] = {1.5f, -3.0f};
  file.insert(file.end(), reinterpret_cast<const uint8_t*>(vals), reinterpret_cast<const uint8_t*>(vals) + 8);
  auto f = safetensors_file::from_buffer(file, "odd");
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  tensor x = f->get("x").value();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(x.raw_data()) % 4, 0u);
  EXPECT_EQ(x.to_doubles(), (std::vector<double>{1.5, -3.0}));
}

TEST(safetensors, get_and_open_errors) {
  auto f = safetensors_file::open(data_path("safetensors/reference.safetensors"));
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(f->contains("nope"));
  EXPECT_EQ(f->info("nope"), nullptr);
  EXPECT_EQ(f->get("nope").error().code(), status_code::not_found);
  EXPECT_NE(f->get("nope").error().message().find("'nope'"), std::string::npos);
  auto missing = safetensors_file::open(data_path("safetensors/missing.safetensors"));
  EXPECT_EQ(missing.error().code(), status_code::not_found);
  EXPECT_NE(missing.error().message().find("missing.safetensors"), std::string::npos);
  EXPECT_EQ(safetensors_file::open(data_path("safetensors")).error().code(), status_code::io_error);
}

TEST(safetensors, atomic_writes_replace_or_leave_the_old_file) {
  temp_dir dir;
  const std::string path = dir.file("m.safetensors");
  const named_tensors first = {{"a", tensor::from_vector(std::vector<float>{1, 2}, {2})}};
  ASSERT_TRUE(write_safetensors(path, first).ok());
  const std::vector<uint8_t> before = read_bytes(path);
  // A rejected input leaves the existing file as it was, and no temporary file.
  const named_tensors dup = {{"a", first[0].second}, {"a", first[0].second}};
  const status s = write_safetensors(path, dup);
  EXPECT_EQ(s.code(), status_code::invalid_argument);
  EXPECT_NE(s.message().find("'a' is given twice"), std::string::npos) << s.message();
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"m.safetensors"});
  // A valid write replaces it.
  ASSERT_TRUE(write_safetensors(path, {{"b", tensor::from_vector(std::vector<int32_t>{7}, {1})}}).ok());
  EXPECT_TRUE(safetensors_file::open(path)->contains("b"));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"m.safetensors"});
  // A rename that fails (the target is a directory) removes the temporary file.
  fs::create_directory(dir.file("sub"));
  const status r = write_safetensors(dir.file("sub"), first);
  EXPECT_EQ(r.code(), status_code::io_error);
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"m.safetensors", "sub"}));
  // No such directory.
  EXPECT_EQ(write_safetensors(dir.file("none/x.safetensors"), first).code(), status_code::io_error);
}

TEST(safetensors, writer_rejects_bad_names_and_tensors) {
  const tensor t = tensor::from_vector(std::vector<float>{1}, {1});
  EXPECT_NE(serialize_safetensors({{"", t}}).error().message().find("empty tensor name"), std::string::npos);
  EXPECT_NE(serialize_safetensors({{"__metadata__", t}}).error().message().find("reserved"), std::string::npos);
  EXPECT_NE(serialize_safetensors({{"bad\xff", t}}).error().message().find("not valid UTF-8"), std::string::npos);
  EXPECT_NE(serialize_safetensors({{"u", tensor()}}).error().message().find("'u' is undefined"), std::string::npos);
  EXPECT_NE(serialize_safetensors({{"ok", t}}, {{"k", "\xc0\x80"}}).error().message().find("metadata value"),
            std::string::npos);
  EXPECT_EQ(serialize_safetensors({{"", t}}).error().code(), status_code::invalid_argument);
}

TEST(safetensors, bool_bytes_other_than_zero_and_one_are_an_error) {
  auto f = safetensors_file::from_buffer(
      make_file(R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})", 3, 2), "bad.safetensors");
  ASSERT_TRUE(f.ok()) << f.error().to_string();
  expect_error(f->get("m").get_status(), "BOOL element 0 is byte 0x02");
}

// ---- malformed files ----

TEST(safetensors_malformed, every_truncation_of_a_valid_file_is_an_error) {
  const std::vector<uint8_t> full = read_bytes(data_path("safetensors/reference.safetensors"));
  ASSERT_GT(full.size(), 100u);
  for (size_t n = 0; n < full.size(); ++n) {
    auto f = safetensors_file::from_buffer(std::vector<uint8_t>(full.begin(), full.begin() + n), "bad.safetensors");
    ASSERT_FALSE(f.ok()) << "prefix of " << n << " bytes was accepted";
    EXPECT_EQ(f.error().code(), status_code::parse_error) << f.error().to_string();
    EXPECT_EQ(f.error().message().rfind("bad.safetensors: ", 0), 0u);
  }
  // The same from disk for a few lengths.
  temp_dir dir;
  for (size_t n : {size_t{0}, size_t{7}, size_t{8}, size_t{100}, full.size() - 1}) {
    const std::string path = dir.file("t.safetensors");
    write_bytes(path, std::vector<uint8_t>(full.begin(), full.begin() + n));
    auto f = safetensors_file::open(path);
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(f.error().code(), status_code::parse_error);
    EXPECT_EQ(f.error().message().rfind(path + ": ", 0), 0u) << f.error().message();
  }
}

TEST(safetensors_malformed, random_corruptions_never_crash) {
  const std::vector<uint8_t> full = read_bytes(data_path("safetensors/reference.safetensors"));
  std::mt19937 rng(1234);
  int accepted = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> b = full;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      // Mostly the header, where the structure is.
      const size_t at = rng() % 4 ? 8 + rng() % 1176 : rng() % b.size();
      b[at] = static_cast<uint8_t>(rng());
    }
    auto f = safetensors_file::from_buffer(std::move(b), "bad.safetensors");
    if (!f.ok()) continue;
    ++accepted;
    for (const tensor_info& ti : f->tensors()) {
      auto t = f->get(ti.name);
      if (t.ok()) (void)t->to_doubles();
    }
  }
  EXPECT_GT(accepted, 0);  // data-only flips stay valid
}

TEST(safetensors_malformed, short_file) {
  expect_error(safetensors_file::from_buffer({1, 2, 3}, "bad.safetensors").get_status(), "file is 3 bytes, too short");
  expect_error(safetensors_file::from_buffer({}, "bad.safetensors").get_status(), "file is 0 bytes");
}

TEST(safetensors_malformed, header_length_past_end_or_too_large) {
  std::vector<uint8_t> b = make_file("{}", 0);
  b[0] = 3;  // claims 3 bytes, has 2
  expect_error(safetensors_file::from_buffer(b, "bad.safetensors").get_status(), "header length 3 runs past the end");
  std::vector<uint8_t> huge(16, 0);
  huge[3] = 0x10;  // 268435456
  expect_error(safetensors_file::from_buffer(huge, "bad.safetensors").get_status(), "exceeds the limit of 100000000");
  std::vector<uint8_t> max(16, 0xff);
  expect_error(safetensors_file::from_buffer(max, "bad.safetensors").get_status(), "exceeds the limit");
}

TEST(safetensors_malformed, header_not_an_object_or_not_json) {
  expect_error(parse_header("[1, 2]", 0), "header is a JSON array, expected an object");
  expect_error(parse_header("\"x\"", 0), "header is a JSON string");
  expect_error(parse_header("{\"a\":", 0), "invalid JSON");
  expect_error(parse_header("{} x", 0), "invalid JSON");
  expect_error(parse_header("", 0), "invalid JSON");
  expect_error(parse_header(std::string(1, '\0'), 0), "invalid JSON");
}

TEST(safetensors_malformed, deeply_nested_json) {
  expect_error(parse_header(std::string(100000, '['), 0), "nested deeper than");
  expect_error(parse_header("{\"a\":" + std::string(100000, '{'), 0), "nested deeper than");
}

TEST(safetensors_malformed, overlapping_offsets) {
  expect_error(parse_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                            12),
               "tensor 'b' (data_offsets [4, 12]) overlaps tensor 'a' (data_offsets [0, 8])");
  expect_error(parse_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                            8),
               "overlaps");
  // An empty tensor placed inside another one.
  expect_error(parse_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                            R"("b":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                            8),
               "tensor 'b' (data_offsets [4, 4]) overlaps tensor 'a'");
}

TEST(safetensors_malformed, holes) {
  expect_error(parse_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                            R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                            12),
               "bytes [4, 8) of the data buffer belong to no tensor (a hole before tensor 'b')");
  expect_error(parse_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8), "bytes [0, 4)");
  expect_error(parse_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 9),
               "bytes [4, 9) at the end of the data buffer belong to no tensor");
  expect_error(parse_header("{}", 1), "bytes [0, 1) at the end");
}

TEST(safetensors_malformed, offsets_past_the_buffer_or_reversed) {
  expect_error(parse_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4),
               "tensor 'a': data_offsets [0, 8] run past the end of the data buffer (4 bytes)");
  expect_error(parse_header(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", 8),
               "tensor 'a': data_offsets [8, 4] end before they begin");
  expect_error(parse_header(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551615,0]}})", 8),
               "end before they begin");
  expect_error(parse_header(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[18446744073709551615,18446744073709551615]}})", 0),
               "run past the end");
}

TEST(safetensors_malformed, dtypes) {
  expect_error(parse_header(R"({"w":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}})", 1),
               "tensor 'w': unknown dtype 'Q7'");
  expect_error(parse_header(R"({"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", 4), "unknown dtype 'f32'");
  expect_error(parse_header(R"({"w":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})", 1),
               "tensor 'w' has dtype F8_E4M3, which lrnn does not support", status_code::unsupported);
  expect_error(parse_header(R"({"w":{"dtype":7,"shape":[1],"data_offsets":[0,1]}})", 1),
               "tensor 'w': dtype is 7, expected a string");
}

TEST(safetensors_malformed, shape_and_size_mismatch) {
  expect_error(parse_header(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 20),
               "tensor 'w': data_offsets [0, 20] span 20 bytes, but shape [2, 3] of F32 needs 24 bytes");
  expect_error(parse_header(R"({"w":{"dtype":"BF16","shape":[],"data_offsets":[0,4]}})", 4), "needs 2 bytes");
  expect_error(parse_header(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[0,4]}})", 4), "needs 0 bytes");
}

TEST(safetensors_malformed, bad_shapes) {
  expect_error(parse_header(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", 0),
               "tensor 'w': shape[0] is -1, expected a non-negative integer");
  expect_error(parse_header(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,0]}})", 0), "shape[0] is 1.5");
  expect_error(parse_header(R"({"w":{"dtype":"F32","shape":[1e30],"data_offsets":[0,0]}})", 0), "expected a non-negative integer");
  expect_error(parse_header(R"({"w":{"dtype":"F32","shape":[2,"3"],"data_offsets":[0,0]}})", 0),
               "shape[1] is a JSON string");
  expect_error(parse_header(R"({"w":{"dtype":"F32","shape":3,"data_offsets":[0,0]}})", 0),
               "tensor 'w': shape is 3, expected an array");
  expect_error(parse_header(R"({"w":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,0]}})", 0),
               "shape[0] = 18446744073709551615 is too large");
}

TEST(safetensors_malformed, huge_shape_overflow) {
  expect_error(parse_header(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0),
               "tensor 'w': shape [4294967296, 4294967296] of F32 overflows 64-bit sizes");
  // The element count fits, the byte count does not.
  expect_error(parse_header(R"({"w":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}})", 0),
               "overflows");
  // Zero elements, but the strides of the other dimensions would overflow.
  expect_error(parse_header(R"({"w":{"dtype":"U8","shape":[0,4611686018427387904,4],"data_offsets":[0,0]}})", 0),
               "overflows");
  // Overflow wrapping to a small product must not pass as a match.
  expect_error(parse_header(R"({"w":{"dtype":"U8","shape":[4294967296,4294967296,1],"data_offsets":[0,0]}})", 0),
               "overflows");
}

TEST(safetensors_malformed, names) {
  std::string header = R"({"bad)";
  header += "\xff\xfe";
  header += R"(":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})";
  expect_error(parse_header(header, 1), "header is not valid UTF-8: byte 0xff at header offset 5, after \"{\"bad\"");
  expect_error(parse_header("{\"a\xc0\xaf\":1}", 0), "not valid UTF-8");      // overlong '/'
  expect_error(parse_header("{\"a\xed\xa0\x80\":1}", 0), "not valid UTF-8");  // surrogate
  expect_error(parse_header(R"({"\ud800":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1), "invalid JSON");
  expect_error(parse_header(R"({"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1), "empty tensor name");
  expect_error(parse_header(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                            R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                            2),
               "tensor name 'a' appears twice in the header");
  expect_error(parse_header(R"({"a":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}})", 1),
               "tensor 'a': field 'dtype' appears twice");
  expect_error(parse_header(R"({"__metadata__":{"k":"1","k":"2"}})", 0), "metadata key 'k' appears twice");
}

TEST(safetensors_malformed, fields) {
  expect_error(parse_header(R"({"w":{"shape":[1],"data_offsets":[0,1]}})", 1), "tensor 'w': missing field 'dtype'");
  expect_error(parse_header(R"({"w":{"dtype":"U8","data_offsets":[0,1]}})", 1), "tensor 'w': missing field 'shape'");
  expect_error(parse_header(R"({"w":{"dtype":"U8","shape":[1]}})", 1), "tensor 'w': missing field 'data_offsets'");
  expect_error(parse_header(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":1}})", 1),
               "tensor 'w': unknown field 'extra' (expected dtype, shape, data_offsets)");
  expect_error(parse_header(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}})", 1),
               "tensor 'w': data_offsets is an array of 3 elements, expected an array [begin, end]");
  expect_error(parse_header(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":{"a":0}}})", 1),
               "data_offsets is a JSON object");
  expect_error(parse_header(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}})", 1),
               "tensor 'w': data_offsets [-1, 0] are not both non-negative integers");
  expect_error(parse_header(R"({"w":[1,2]})", 0), "tensor 'w': entry is a JSON array, expected an object");
  expect_error(parse_header(R"({"__metadata__":[1]})", 0), "__metadata__ is a JSON array");
  expect_error(parse_header(R"({"__metadata__":{"k":1}})", 0), "__metadata__ key 'k' has 1, expected a string");
  EXPECT_TRUE(parse_header(R"({"__metadata__":null})", 0).ok());
}

}  // namespace
}  // namespace lrnn::io
