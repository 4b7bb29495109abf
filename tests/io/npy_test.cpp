// .npy reader and writer: the golden fixtures, NumPy-written reference files in
// tests/data/npy (made by make_npy.py there), byte-exact agreement with numpy.save, round
// trips for every dtype and layout, and malformed input of every kind.
#include "io/npy.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace lrnn::io {
namespace {

namespace fs = std::filesystem;

const std::string data_dir = LRNN_TEST_DATA_DIR;
const std::string npy_dir = data_dir + "/npy/";

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

result<tensor> parse_bytes(const std::string& bytes, const std::string& source = "mem.npy") {
  return parse_npy(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), source);
}

// A scratch folder removed at the end of the test.
class scratch_dir {
 public:
  scratch_dir() {
    static int n = 0;
    path_ = fs::temp_directory_path() / fmt::format("lrnn_npy_test_{}_{}", ::getpid(), n++);
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~scratch_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  size_t entries() const {
    return static_cast<size_t>(std::distance(fs::directory_iterator(path_), fs::directory_iterator()));
  }

 private:
  fs::path path_;
};

// A .npy file with header dict `dict` (padded as NumPy pads) followed by `data`.
std::string make_file(const std::string& dict, const std::string& data, int major = 1) {
  const size_t preamble = major == 1 ? 10 : 12;
  std::string header = dict;
  const size_t hlen = header.size() + 1;
  const size_t pad = 64 - (preamble + hlen) % 64;
  header.append(pad, ' ');
  header += '\n';
  std::string out = std::string("\x93NUMPY", 6);
  out += static_cast<char>(major);
  out += '\0';
  const size_t len = header.size();
  for (size_t i = 0; i < preamble - 8; ++i) out += static_cast<char>((len >> (8 * i)) & 0xff);
  return out + header + data;
}

const std::string f4_2x3_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
const std::string f4_2x3_data(24, '\0');

// The value make_npy.py stores at row-major position i.
double reference_value(dtype t, int64_t i) {
  switch (t) {
    case dtype::f64:
    case dtype::f32:
    case dtype::f16:
    case dtype::bf16: return static_cast<double>(i) * 0.5 - 3;
    case dtype::i64:
    case dtype::i32:
    case dtype::i16:
    case dtype::i8: return static_cast<double>(i - 3);
    case dtype::u8:
    case dtype::u16:
    case dtype::u32:
    case dtype::u64: return static_cast<double>(i);
    case dtype::boolean: return i % 3 == 0 ? 1.0 : 0.0;
  }
  return 0;
}

void expect_reference_values(const tensor& t) {
  const std::vector<double> v = t.to_doubles();
  for (size_t i = 0; i < v.size(); ++i)
    ASSERT_EQ(v[i], reference_value(t.type(), static_cast<int64_t>(i))) << t.describe() << " element " << i;
}

void expect_parse_error(const result<tensor>& r, const std::string& source, const std::string& needle) {
  ASSERT_FALSE(r.ok()) << "expected an error containing '" << needle << "'";
  EXPECT_EQ(r.error().code(), status_code::parse_error) << r.error().message();
  EXPECT_EQ(r.error().message().rfind(source + ":", 0), 0u) << r.error().message();
  EXPECT_NE(r.error().message().find(needle), std::string::npos) << r.error().message();
}

TEST(npy, reads_fixture_arrays) {
  for (const char* name :
       {"fla_gated_deltanet", "fla_gla", "fla_retnet", "fla_rwkv7", "hf_recurrentgemma", "hf_rwkv4", "hf_xlstm"}) {
    SCOPED_TRACE(name);
    const std::string dir = data_dir + "/" + name + "/";
    auto ids = read_npy(dir + "input_ids.npy");
    ASSERT_TRUE(ids.ok()) << ids.error().message();
    EXPECT_EQ(ids->type(), dtype::i64);
    EXPECT_EQ(ids->shape(), (shape_t{2, 48}));
    for (double v : ids->to_doubles()) ASSERT_TRUE(v >= 0 && v < 256) << v;

    auto logits = read_npy(dir + "logits.npy");
    ASSERT_TRUE(logits.ok()) << logits.error().message();
    EXPECT_EQ(logits->type(), dtype::f32);
    EXPECT_EQ(logits->shape(), (shape_t{2, 48, 256}));
    for (double v : logits->to_doubles()) ASSERT_TRUE(std::isfinite(v));

    if (!fs::exists(dir + "greedy.npy")) continue;
    auto greedy = read_npy(dir + "greedy.npy");
    ASSERT_TRUE(greedy.ok()) << greedy.error().message();
    EXPECT_EQ(greedy->type(), dtype::i64);
    EXPECT_EQ(greedy->shape(), (shape_t{1, 64}));
    // Row 0 of input_ids is the prompt the greedy tokens continue.
    for (int64_t t = 0; t < 48; ++t) ASSERT_EQ(greedy->at({0, t}), ids->at({0, t})) << "position " << t;
  }
}

TEST(npy, reads_numpy_reference_files_of_every_dtype) {
  const std::pair<const char*, dtype> cases[] = {{"f8", dtype::f64}, {"f4", dtype::f32}, {"f2", dtype::f16},
                                                 {"i8", dtype::i64}, {"i4", dtype::i32}, {"i2", dtype::i16},
                                                 {"i1", dtype::i8},  {"u1", dtype::u8},  {"u2", dtype::u16},
                                                 {"u4", dtype::u32}, {"u8", dtype::u64}, {"b1", dtype::boolean}};
  for (const auto& [code, type] : cases) {
    SCOPED_TRACE(code);
    auto t = read_npy(npy_dir + code + "_2x3.npy");
    ASSERT_TRUE(t.ok()) << t.error().message();
    EXPECT_EQ(t->type(), type);
    EXPECT_EQ(t->shape(), (shape_t{2, 3}));
    EXPECT_TRUE(t->is_contiguous());
    expect_reference_values(*t);
  }
}

TEST(npy, reads_scalar_empty_and_unit_shapes) {
  const std::pair<const char*, shape_t> cases[] = {{"f4_scalar.npy", {}},
                                                   {"i8_5.npy", {5}},
                                                   {"f4_0x3.npy", {0, 3}},
                                                   {"f4_1x1x1.npy", {1, 1, 1}},
                                                   {"u1_123456789x0.npy", {123456789, 0}},
                                                   {"u1_0x123456789.npy", {0, 123456789}}};
  for (const auto& [name, shape] : cases) {
    SCOPED_TRACE(name);
    auto t = read_npy(npy_dir + name);
    ASSERT_TRUE(t.ok()) << t.error().message();
    EXPECT_EQ(t->shape(), shape);
    expect_reference_values(*t);
  }
}

TEST(npy, reads_fortran_order_as_c_order) {
  auto t = read_npy(npy_dir + "f4_fortran_2x3x4.npy");
  ASSERT_TRUE(t.ok()) << t.error().message();
  EXPECT_EQ(t->shape(), (shape_t{2, 3, 4}));
  EXPECT_TRUE(t->is_contiguous());
  expect_reference_values(*t);
  EXPECT_EQ(t->at({1, 2, 3}), 23 * 0.5 - 3);

  auto s = read_npy(npy_dir + "i2_fortran_3x2.npy");
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->type(), dtype::i16);
  EXPECT_EQ(s->shape(), (shape_t{3, 2}));
  expect_reference_values(*s);
}

TEST(npy, reads_version_2_and_3_headers) {
  for (const char* name : {"f4_v2_2x3.npy", "i4_v3_2x3.npy"}) {
    SCOPED_TRACE(name);
    auto t = read_npy(npy_dir + name);
    ASSERT_TRUE(t.ok()) << t.error().message();
    EXPECT_EQ(t->shape(), (shape_t{2, 3}));
    expect_reference_values(*t);
  }
}

TEST(npy, writer_matches_numpy_byte_for_byte) {
  scratch_dir dir;
  for (const char* name :
       {"f8_2x3.npy", "f4_2x3.npy", "f2_2x3.npy", "i8_2x3.npy", "i4_2x3.npy", "i2_2x3.npy", "i1_2x3.npy", "u1_2x3.npy",
        "u2_2x3.npy", "u4_2x3.npy", "u8_2x3.npy", "b1_2x3.npy", "f4_scalar.npy", "i8_5.npy", "f4_0x3.npy",
        "f4_1x1x1.npy", "u1_123456789x0.npy", "u1_0x123456789.npy"}) {
    SCOPED_TRACE(name);
    auto t = read_npy(npy_dir + name);
    ASSERT_TRUE(t.ok()) << t.error().message();
    const std::string out = dir.file(name);
    ASSERT_TRUE(write_npy(out, *t).ok());
    const std::string ours = read_bytes(out), numpys = read_bytes(npy_dir + name);
    EXPECT_EQ(ours, numpys);
    auto mem = serialize_npy(*t);
    ASSERT_TRUE(mem.ok());
    EXPECT_EQ(std::string(mem->begin(), mem->end()), numpys);
  }
  // A Fortran-order file is written back in C order, as numpy.save(np.ascontiguousarray(a)).
  auto f = read_npy(npy_dir + "f4_fortran_2x3x4.npy");
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE(write_npy(dir.file("c.npy"), *f).ok());
  const std::string bytes = read_bytes(dir.file("c.npy"));
  EXPECT_EQ(bytes.size() % 64, (2 * 3 * 4 * 4) % 64);
  EXPECT_NE(bytes.find("'fortran_order': False, 'shape': (2, 3, 4), }"), std::string::npos);
}

TEST(npy, header_is_padded_to_64_bytes_and_ends_with_newline) {
  scratch_dir dir;
  for (const shape_t& shape : {shape_t{}, shape_t{7}, shape_t{3, 0, 5}, shape_t(30, 1), shape_t{1000000007, 0}}) {
    auto t = tensor::zeros(shape, dtype::f32);
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(write_npy(dir.file("p.npy"), *t).ok());
    const std::string bytes = read_bytes(dir.file("p.npy"));
    const size_t hlen = static_cast<uint8_t>(bytes[8]) | (static_cast<size_t>(static_cast<uint8_t>(bytes[9])) << 8);
    EXPECT_EQ((10 + hlen) % 64, 0u) << shape_to_string(shape);
    EXPECT_EQ(bytes[9 + hlen], '\n');
    EXPECT_EQ(bytes.size(), 10 + hlen + t->nbytes());
  }
}

TEST(npy, round_trips_every_numpy_dtype) {
  scratch_dir dir;
  for (dtype type : all_dtypes) {
    if (type == dtype::bf16) continue;
    SCOPED_TRACE(dtype_name(type));
    std::vector<double> values;
    for (int i = 0; i < 2 * 3 * 5; ++i)
      values.push_back(type == dtype::boolean ? (i % 2) : (i * 7 % 11) + (is_floating(type) ? 0.25 : 0.0));
    tensor t = tensor::from_doubles(values, {2, 3, 5}, type);
    const std::string path = dir.file(fmt::format("{}.npy", dtype_name(type)));
    ASSERT_TRUE(write_npy(path, t).ok());
    auto back = read_npy(path);
    ASSERT_TRUE(back.ok()) << back.error().message();
    EXPECT_EQ(back->type(), type);
    EXPECT_EQ(back->shape(), t.shape());
    EXPECT_EQ(max_abs_diff(*back, t), 0.0);
    const std::string bytes = read_bytes(path);
    auto again = parse_bytes(bytes);
    ASSERT_TRUE(again.ok()) << again.error().message();
    EXPECT_EQ(max_abs_diff(*again, t), 0.0);
  }
}

TEST(npy, round_trips_extreme_values_bit_exactly) {
  scratch_dir dir;
  tensor t = tensor::from_doubles({-0.0, INFINITY, -INFINITY, 1e-45, 3.4e38, 1.0}, {6}, dtype::f32);
  t.data<float>()[5] = std::nanf("");
  ASSERT_TRUE(write_npy(dir.file("x.npy"), t).ok());
  auto back = read_npy(dir.file("x.npy"));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(std::memcmp(back->raw_data(), t.raw_data(), t.nbytes()), 0);

  tensor big = tensor::empty({3}, dtype::i64).value();
  big.data<int64_t>()[0] = INT64_MIN;
  big.data<int64_t>()[1] = INT64_MAX;
  big.data<int64_t>()[2] = -1;
  ASSERT_TRUE(write_npy(dir.file("i.npy"), big).ok());
  auto ib = read_npy(dir.file("i.npy"));
  ASSERT_TRUE(ib.ok());
  EXPECT_EQ(ib->data<int64_t>()[0], INT64_MIN);
  EXPECT_EQ(ib->data<int64_t>()[1], INT64_MAX);
}

TEST(npy, writes_non_contiguous_views_in_c_order) {
  scratch_dir dir;
  std::vector<double> values(4 * 6);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<double>(i);
  tensor base = tensor::from_doubles(values, {4, 6}, dtype::f64);
  const std::vector<tensor> views = {base.transpose(0, 1).value(), base.slice(1, 1, 5).value(),
                                     base.select(1, 2).value(), base.slice(0, 1, 3).value().transpose(0, 1).value()};
  for (size_t i = 0; i < views.size(); ++i) {
    SCOPED_TRACE(views[i].describe());
    const std::string path = dir.file(fmt::format("v{}.npy", i));
    ASSERT_TRUE(write_npy(path, views[i]).ok());
    auto back = read_npy(path);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->shape(), views[i].shape());
    EXPECT_EQ(back->to_doubles(), views[i].to_doubles());
  }
}

TEST(npy, round_trips_scalar_and_empty) {
  scratch_dir dir;
  for (const shape_t& shape : {shape_t{}, shape_t{0}, shape_t{0, 4}, shape_t{3, 0}, shape_t{2, 0, 2}}) {
    tensor t = tensor::full(shape, 2.5, dtype::f32).value();
    ASSERT_TRUE(write_npy(dir.file("s.npy"), t).ok());
    auto back = read_npy(dir.file("s.npy"));
    ASSERT_TRUE(back.ok()) << back.error().message();
    EXPECT_EQ(back->shape(), shape);
    EXPECT_EQ(back->to_doubles(), t.to_doubles());
  }
}

TEST(npy, write_replaces_atomically_and_leaves_no_temporary) {
  scratch_dir dir;
  const std::string path = dir.file("a.npy");
  write_bytes(path, "old contents");
  tensor t = tensor::from_doubles({1, 2, 3}, {3}, dtype::i32);
  ASSERT_TRUE(write_npy(path, t).ok());
  EXPECT_EQ(dir.entries(), 1u);
  auto back = read_npy(path);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->to_doubles(), (std::vector<double>{1, 2, 3}));
}

TEST(npy, write_errors) {
  scratch_dir dir;
  tensor t = tensor::from_doubles({1}, {1}, dtype::f32);
  status s = write_npy(dir.file("no/such/folder/x.npy"), t);
  EXPECT_EQ(s.code(), status_code::io_error);
  EXPECT_NE(s.message().find("no/such/folder/x.npy"), std::string::npos) << s.message();

  status b = write_npy(dir.file("b.npy"), tensor::from_doubles({1}, {1}, dtype::bf16));
  EXPECT_EQ(b.code(), status_code::unsupported);
  EXPECT_NE(b.message().find("bf16"), std::string::npos) << b.message();
  EXPECT_EQ(serialize_npy(tensor::from_doubles({1}, {1}, dtype::bf16)).error().code(), status_code::unsupported);
  EXPECT_EQ(dir.entries(), 0u);

  EXPECT_EQ(write_npy(dir.file("u.npy"), tensor()).code(), status_code::invalid_argument);
  status dims = write_npy(dir.file("d.npy"), tensor::zeros(shape_t(65, 1), dtype::u8).value());
  EXPECT_EQ(dims.code(), status_code::invalid_argument);
  EXPECT_NE(dims.message().find("at most 64 dimensions"), std::string::npos) << dims.message();
  EXPECT_TRUE(write_npy(dir.file("d.npy"), tensor::zeros(shape_t(64, 1), dtype::u8).value()).ok());
  auto d64 = read_npy(dir.file("d.npy"));
  ASSERT_TRUE(d64.ok()) << d64.error().message();
  EXPECT_EQ(d64->dim(), 64);
  EXPECT_TRUE(fs::remove(dir.file("d.npy")));
}

TEST(npy, read_file_errors) {
  auto missing = read_npy(npy_dir + "does_not_exist.npy");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), status_code::not_found);
  EXPECT_NE(missing.error().message().find("does_not_exist.npy"), std::string::npos);

  auto folder = read_npy(npy_dir);
  ASSERT_FALSE(folder.ok());
  EXPECT_EQ(folder.error().code(), status_code::io_error);
}

TEST(npy, rejects_malformed_reference_files) {
  const std::pair<const char*, const char*> cases[] = {
      {"bad_big_endian.npy", "'>f4' (big-endian"},
      {"bad_object.npy", "unsupported descr '|O'"},
      {"bad_complex.npy", "unsupported descr '<c8'"},
      {"bad_unicode.npy", "unsupported descr '<U2'"},
      {"bad_structured.npy", "expected the value of 'descr' (a string)"},
      {"bad_truncated.npy", "file truncated"},
      {"bad_trailing.npy", "trailing bytes"}};
  for (const auto& [name, needle] : cases) {
    SCOPED_TRACE(name);
    const std::string path = npy_dir + name;
    expect_parse_error(read_npy(path), path, needle);
    expect_parse_error(parse_bytes(read_bytes(path), name), name, needle);
  }
}

TEST(npy, rejects_every_truncation_prefix) {
  for (const char* name : {"f4_2x3.npy", "i8_5.npy", "f4_v2_2x3.npy", "b1_2x3.npy", "f4_scalar.npy"}) {
    const std::string bytes = read_bytes(npy_dir + name);
    ASSERT_GT(bytes.size(), 64u);
    for (size_t n = 0; n < bytes.size(); ++n) {
      SCOPED_TRACE(fmt::format("{} cut at {}", name, n));
      auto r = parse_bytes(bytes.substr(0, n), "cut.npy");
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.error().code(), status_code::parse_error);
      const std::string& m = r.error().message();
      EXPECT_EQ(m.rfind("cut.npy: ", 0), 0u) << m;
      EXPECT_TRUE(m.find("truncated") != std::string::npos || m.find("past the end") != std::string::npos) << m;
    }
  }
  scratch_dir dir;
  const std::string bytes = read_bytes(npy_dir + "f4_2x3.npy");
  for (size_t n : {size_t{0}, size_t{5}, size_t{9}, size_t{64}, bytes.size() - 1}) {
    write_bytes(dir.file("cut.npy"), bytes.substr(0, n));
    expect_parse_error(read_npy(dir.file("cut.npy")), dir.file("cut.npy"), n < 10 ? "truncated" : "");
  }
}

TEST(npy, rejects_bad_preamble) {
  const std::string good = make_file(f4_2x3_dict, f4_2x3_data);
  ASSERT_TRUE(parse_bytes(good).ok());
  std::string magic = good;
  magic[5] = 'Z';
  expect_parse_error(parse_bytes(magic), "mem.npy", "bad magic");
  expect_parse_error(parse_bytes("PK\x03\x04 a zip file, not npy"), "mem.npy", "bad magic");
  std::string v4 = good;
  v4[6] = 4;
  expect_parse_error(parse_bytes(v4), "mem.npy", "version 4.0");
  std::string v11 = good;
  v11[7] = 1;
  expect_parse_error(parse_bytes(v11), "mem.npy", "version 1.1");
  std::string long_header = good;
  long_header[9] = 0x7f;
  expect_parse_error(parse_bytes(long_header), "mem.npy", "header length 32630 runs past the end of the file");
  std::string v2 = make_file(f4_2x3_dict, f4_2x3_data, 2);
  ASSERT_TRUE(parse_bytes(v2).ok());
  v2[11] = 0x10;
  expect_parse_error(parse_bytes(v2), "mem.npy", "runs past the end");
  expect_parse_error(parse_npy(nullptr, 0, "null.npy"), "null.npy", "truncated");
}

TEST(npy, rejects_malformed_header_dicts) {
  const std::pair<std::string, const char*> cases[] = {
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ", "unterminated dict"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)", "unterminated dict"},
      {"'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", "does not start with '{'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'foo': 1}", "unknown key 'foo'"},
      {"{'descr': '<f4', 'fortran_order': False}", "missing key 'shape'"},
      {"{'fortran_order': False, 'shape': (2, 3)}", "missing key 'descr'"},
      {"{'descr': '<f4', 'shape': (2, 3)}", "missing key 'fortran_order'"},
      {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", "duplicate key 'descr'"},
      {"{'descr': 5, 'fortran_order': False, 'shape': (2, 3)}", "'descr' (a string)"},
      {"{'descr': '<f4, 'fortran_order': False, 'shape': (2, 3)}", "expected ',' or '}'"},
      {"{'descr': '<f4', 'fortran_order': false, 'shape': (2, 3)}", "True or False"},
      {"{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3)}", "True or False"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3]}", "must be a tuple"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3)}", "negative dimension"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3)}", "negative dimension"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2.0, 3)}", "expected ',' or ')'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (x, 3)}", "non-negative integers"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (02, 3)}", "leading zero"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (6)}", "1-tuple"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (,)}", "non-negative integers"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3", "unterminated shape"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", "overflows int64"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}", "is too large"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4294967296, 4294967296)}", "is too large"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)} x", "unexpected bytes after the header dict"},
      {"{'descr': '<f\\4', 'fortran_order': False, 'shape': (2, 3)}", "escape"},
      {"{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3)}", "big-endian"},
      {"{'descr': '|f4', 'fortran_order': False, 'shape': (2, 3)}", "unsupported descr '|f4'"},
      {"{'descr': 'f4', 'fortran_order': False, 'shape': (2, 3)}", "unsupported descr 'f4'"},
      {"{'descr': '<f4 ', 'fortran_order': False, 'shape': (2, 3)}", "unsupported descr '<f4 '"},
      {"{'descr': '<O', 'fortran_order': False, 'shape': (2, 3)}", "unsupported descr '<O'"},
      {"{'descr': '<c16', 'fortran_order': False, 'shape': (2, 3)}", "unsupported descr '<c16'"},
      {"{'descr': '<V2', 'fortran_order': False, 'shape': (2, 3)}", "unsupported descr '<V2'"},
      {"{'descr': '', 'fortran_order': False, 'shape': (2, 3)}", "unsupported descr ''"},
      {"{}", "missing key 'descr'"},
      {"", "does not start with '{'"},
  };
  for (const auto& [dict, needle] : cases) {
    SCOPED_TRACE(dict);
    expect_parse_error(parse_bytes(make_file(dict, f4_2x3_data)), "mem.npy", needle);
  }
  std::string many = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  for (int i = 0; i < 65; ++i) many += "1, ";
  expect_parse_error(parse_bytes(make_file(many + ")}", std::string(4, '\0'))), "mem.npy", "more than 64 dimensions");
}

TEST(npy, accepts_the_whole_header_grammar) {
  const std::pair<std::string, shape_t> cases[] = {
      {"{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 3)}", {2, 3}},
      {"{'shape': (2,3), 'fortran_order': False, 'descr': '=f4'}", {2, 3}},
      {"{ 'descr' : '<f4' ,\n\t'fortran_order' : False ,\r\n'shape' : ( 2 , 3 , ) , }", {2, 3}},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,)}", {6}},
      {"{'descr': '<f4', 'fortran_order': True, 'shape': (1, 6, 1)}", {1, 6, 1}},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 2, 1, 3, 1)}",
       {1, 1, 1, 1, 1, 1, 1, 2, 1, 3, 1}},
  };
  for (const auto& [dict, shape] : cases) {
    SCOPED_TRACE(dict);
    auto t = parse_bytes(make_file(dict, f4_2x3_data));
    ASSERT_TRUE(t.ok()) << t.error().message();
    EXPECT_EQ(t->type(), dtype::f32);
    EXPECT_EQ(t->shape(), shape);
  }
  auto scalar = parse_bytes(make_file("{'descr': '<i8', 'fortran_order': False, 'shape': ()}", std::string(8, '\x01')));
  ASSERT_TRUE(scalar.ok());
  EXPECT_EQ(scalar->shape(), shape_t{});
  EXPECT_EQ(scalar->data<int64_t>()[0], 0x0101010101010101);
  auto i1 = parse_bytes(make_file("{'descr': '<i1', 'fortran_order': False, 'shape': (1,)}", "\xff"));
  ASSERT_TRUE(i1.ok());
  EXPECT_EQ(i1->at({0}), -1);
  // No header padding at all is legal too.
  std::string bare = std::string("\x93NUMPY\x01\x00", 8);
  const std::string dict = "{'descr': '|u1', 'fortran_order': False, 'shape': (2,)}";
  bare += static_cast<char>(dict.size());
  bare += '\0';
  auto b = parse_bytes(bare + dict + "\x07\x09");
  ASSERT_TRUE(b.ok()) << b.error().message();
  EXPECT_EQ(b->to_doubles(), (std::vector<double>{7, 9}));
}

TEST(npy, bool_bytes_other_than_zero_and_one_read_as_true) {
  auto t = parse_bytes(
      make_file("{'descr': '|b1', 'fortran_order': False, 'shape': (4,)}", std::string("\x00\x01\x02\xff", 4)));
  ASSERT_TRUE(t.ok()) << t.error().message();
  EXPECT_EQ(t->to_doubles(), (std::vector<double>{0, 1, 1, 1}));
  const uint8_t* b = static_cast<const uint8_t*>(t->raw_data());
  EXPECT_EQ(b[2], 1);
  EXPECT_EQ(b[3], 1);
}

TEST(npy, rejects_data_of_the_wrong_size) {
  expect_parse_error(parse_bytes(make_file(f4_2x3_dict, std::string(23, '\0'))), "mem.npy",
                     "data is 23 bytes, expected 24 for f32[2, 3]: file truncated");
  expect_parse_error(parse_bytes(make_file(f4_2x3_dict, std::string(25, '\0'))), "mem.npy",
                     "data is 25 bytes, expected 24 for f32[2, 3]: trailing bytes after the array");
  expect_parse_error(parse_bytes(make_file(f4_2x3_dict, "")), "mem.npy", "file truncated");
  expect_parse_error(parse_bytes(make_file("{'descr': '<f8', 'fortran_order': False, 'shape': (0, 3)}", "x")),
                     "mem.npy", "trailing bytes");
  expect_parse_error(
      parse_bytes(make_file("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000)}", "")), "mem.npy",
      "expected 8000000000000 for f64[1000000, 1000000]");
  scratch_dir dir;
  write_bytes(dir.file("long.npy"), make_file(f4_2x3_dict, std::string(28, '\0')));
  expect_parse_error(read_npy(dir.file("long.npy")), dir.file("long.npy"), "trailing bytes");
}

}  // namespace
}  // namespace lrnn::io
