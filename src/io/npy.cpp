// .npy reading and writing (see npy.h). Format: "\x93NUMPY", major, minor, header length
// (uint16 in 1.0, uint32 in 2.0 / 3.0), a Python dict literal padded with spaces and '\n',
// then the raw little-endian elements. Spec: numpy/lib/format.py.
#include "io/npy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace lrnn::io {

static_assert(std::endian::native == std::endian::little, ".npy data is read and written as little-endian");

namespace {

constexpr char npy_magic[] = "\x93NUMPY";
constexpr size_t npy_magic_len = 6;
constexpr size_t npy_align = 64;
constexpr size_t npy_max_dims = 64;       // NumPy's NPY_MAXDIMS
constexpr size_t npy_growth_digits = 21;  // numpy.lib.format.GROWTH_AXIS_MAX_DIGITS

struct npy_preamble {
  int major = 1;
  size_t header_offset = 0;  // bytes before the header dict
  uint64_t header_len = 0;
};

struct npy_header {
  dtype type = dtype::f32;
  bool fortran_order = false;
  shape_t shape;
  uint64_t data_bytes = 0;  // numel * itemsize
};

// The preamble from the first `avail` bytes of a file of `total` bytes (avail <= total).
result<npy_preamble> parse_preamble(const uint8_t* p, size_t avail, uint64_t total, const std::string& source) {
  const size_t magic_seen = std::min<size_t>(avail, npy_magic_len);
  if (std::memcmp(p, npy_magic, magic_seen) != 0)
    return make_error(status_code::parse_error, "{}: not a .npy file (bad magic; expected \\x93NUMPY)", source);
  if (total < npy_magic_len + 2)
    return make_error(status_code::parse_error, "{}: truncated .npy file: {} bytes, shorter than the 10-byte preamble",
                      source, total);
  npy_preamble pre;
  pre.major = p[6];
  const int minor = p[7];
  if ((pre.major != 1 && pre.major != 2 && pre.major != 3) || minor != 0)
    return make_error(status_code::parse_error, "{}: unsupported .npy format version {}.{} (expected 1.0, 2.0 or 3.0)",
                      source, pre.major, minor);
  const size_t len_bytes = pre.major == 1 ? 2 : 4;
  pre.header_offset = npy_magic_len + 2 + len_bytes;
  if (total < pre.header_offset)
    return make_error(status_code::parse_error, "{}: truncated .npy file: {} bytes, shorter than the {}-byte preamble",
                      source, total, pre.header_offset);
  LRNN_ASSERT(avail >= pre.header_offset, "npy preamble parsed from {} bytes", avail);
  pre.header_len = p[8] | (static_cast<uint64_t>(p[9]) << 8);
  if (len_bytes == 4) pre.header_len |= (static_cast<uint64_t>(p[10]) << 16) | (static_cast<uint64_t>(p[11]) << 24);
  if (pre.header_len > total - pre.header_offset)
    return make_error(status_code::parse_error,
                      "{}: header length {} runs past the end of the file ({} bytes, header starts at byte {})", source,
                      pre.header_len, total, pre.header_offset);
  return pre;
}

std::optional<dtype> dtype_from_descr(std::string_view d) {
  if (d.size() != 3) return std::nullopt;
  const char order = d[0];
  const std::string_view code = d.substr(1);
  struct entry {
    const char* code;
    dtype type;
  };
  static constexpr entry table[] = {{"f8", dtype::f64}, {"f4", dtype::f32}, {"f2", dtype::f16}, {"i8", dtype::i64},
                                    {"i4", dtype::i32}, {"i2", dtype::i16}, {"i1", dtype::i8},  {"u1", dtype::u8},
                                    {"u2", dtype::u16}, {"u4", dtype::u32}, {"u8", dtype::u64}, {"b1", dtype::boolean}};
  for (const entry& e : table) {
    if (code != e.code) continue;
    const bool one_byte = dtype_size(e.type) == 1;
    // '<' and '=' are little-endian on this host; '|' (no byte order) only fits 1-byte types.
    if (order == '<' || order == '=' || (order == '|' && one_byte)) return e.type;
    return std::nullopt;
  }
  return std::nullopt;
}

// A strict parser for the header dict NumPy writes:
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 48), }
// Keys: exactly descr, fortran_order, shape (any order, quotes ' or "). Values: a string
// without escapes, True / False, a tuple of non-negative ints. Whitespace between tokens.
class header_parser {
 public:
  header_parser(std::string_view text, const std::string& source) : s_(text), source_(source) {}

  result<npy_header> parse() {
    std::optional<std::string> descr;
    std::optional<bool> fortran;
    std::optional<shape_t> shape;
    skip_ws();
    if (!eat('{')) return fail("header does not start with '{'");
    skip_ws();
    while (!peek('}')) {
      if (pos_ >= s_.size()) return fail("unterminated dict (no closing '}')");
      LRNN_ASSIGN_OR_RETURN(std::string key, parse_string("a dict key"));
      skip_ws();
      if (!eat(':')) return fail(fmt::format("expected ':' after key '{}'", key));
      skip_ws();
      if (key == "descr") {
        if (descr) return fail("duplicate key 'descr'");
        LRNN_ASSIGN_OR_RETURN(descr, parse_string("the value of 'descr' (a string)"));
      } else if (key == "fortran_order") {
        if (fortran) return fail("duplicate key 'fortran_order'");
        LRNN_ASSIGN_OR_RETURN(fortran, parse_bool());
      } else if (key == "shape") {
        if (shape) return fail("duplicate key 'shape'");
        LRNN_ASSIGN_OR_RETURN(shape, parse_shape());
      } else {
        return fail(fmt::format("unknown key '{}' (expected descr, fortran_order, shape)", key));
      }
      skip_ws();
      if (eat(',')) {
        skip_ws();
        continue;
      }
      if (pos_ >= s_.size()) return fail("unterminated dict (no closing '}')");
      if (!peek('}')) return fail("expected ',' or '}' after a value");
    }
    ++pos_;
    skip_ws();
    if (pos_ != s_.size()) return fail("unexpected bytes after the header dict");
    if (!descr) return fail("missing key 'descr'");
    if (!fortran) return fail("missing key 'fortran_order'");
    if (!shape) return fail("missing key 'shape'");

    npy_header h;
    const std::optional<dtype> t = dtype_from_descr(*descr);
    if (!t) {
      const bool big = !descr->empty() && (*descr)[0] == '>';
      return make_error(status_code::parse_error, "{}: unsupported descr '{}'{}", source_, *descr,
                        big ? " (big-endian data is not supported)"
                            : " (supported: <f8 <f4 <f2 <i8 <i4 <i2 |i1 |u1 <u2 <u4 <u8 |b1)");
    }
    h.type = *t;
    h.fortran_order = *fortran;
    h.shape = std::move(*shape);
    // The product of the non-zero dimensions must fit, or strides of an empty tensor overflow.
    const uint64_t limit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / 16;
    uint64_t prod = 1;
    bool zero = false;
    for (int64_t d : h.shape) {
      if (d == 0) {
        zero = true;
        continue;
      }
      if (prod > limit / static_cast<uint64_t>(d))
        return make_error(status_code::parse_error, "{}: shape {} is too large", source_, shape_to_string(h.shape));
      prod *= static_cast<uint64_t>(d);
    }
    h.data_bytes = zero ? 0 : prod * dtype_size(h.type);
    return h;
  }

 private:
  status fail(const std::string& what) const {
    return make_error(status_code::parse_error, "{}: malformed npy header at byte {}: {}", source_, pos_, what);
  }
  bool peek(char c) const { return pos_ < s_.size() && s_[pos_] == c; }
  bool eat(char c) {
    if (!peek(c)) return false;
    ++pos_;
    return true;
  }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  static bool is_digit(char c) { return c >= '0' && c <= '9'; }

  result<std::string> parse_string(const char* what) {
    if (!peek('\'') && !peek('"')) return fail(fmt::format("expected {}", what));
    const char quote = s_[pos_++];
    const size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] != quote) {
      if (s_[pos_] == '\\' || s_[pos_] == '\n') return fail("escape or newline inside a string");
      ++pos_;
    }
    if (pos_ >= s_.size()) return fail("unterminated string");
    std::string out(s_.substr(start, pos_ - start));
    ++pos_;
    return out;
  }

  result<bool> parse_bool() {
    if (s_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (s_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    return fail("the value of 'fortran_order' must be True or False");
  }

  result<shape_t> parse_shape() {
    if (!eat('(')) return fail("the value of 'shape' must be a tuple such as (2, 48), (5,) or ()");
    shape_t shape;
    skip_ws();
    bool trailing_comma = false;
    while (!peek(')')) {
      if (pos_ >= s_.size()) return fail("unterminated shape tuple");
      if (peek('-')) return fail("negative dimension in shape");
      if (!is_digit(s_[pos_])) return fail("shape must hold non-negative integers");
      if (s_[pos_] == '0' && pos_ + 1 < s_.size() && is_digit(s_[pos_ + 1]))
        return fail("dimension with a leading zero in shape");
      int64_t d = 0;
      while (pos_ < s_.size() && is_digit(s_[pos_])) {
        const int digit = s_[pos_] - '0';
        if (d > (std::numeric_limits<int64_t>::max() - digit) / 10) return fail("dimension in shape overflows int64");
        d = d * 10 + digit;
        ++pos_;
      }
      if (shape.size() == npy_max_dims) return fail(fmt::format("shape has more than {} dimensions", npy_max_dims));
      shape.push_back(d);
      skip_ws();
      trailing_comma = eat(',');
      if (pos_ >= s_.size()) return fail("unterminated shape tuple");
      if (!trailing_comma && !peek(')')) return fail("expected ',' or ')' in shape tuple");
      skip_ws();
    }
    ++pos_;
    if (shape.size() == 1 && !trailing_comma) return fail("shape (n) is not a tuple; a 1-tuple is written (n,)");
    return shape;
  }

  std::string_view s_;
  const std::string& source_;
  size_t pos_ = 0;
};

// The header dict of a file whose header bytes are `text`.
result<npy_header> parse_header(std::string_view text, const std::string& source) {
  return header_parser(text, source).parse();
}

status check_data_size(const npy_header& h, uint64_t available, const std::string& source) {
  if (available == h.data_bytes) return {};
  return make_error(status_code::parse_error, "{}: data is {} bytes, expected {} for {}{}: {}", source, available,
                    h.data_bytes, dtype_name(h.type), shape_to_string(h.shape),
                    available < h.data_bytes ? "file truncated" : "trailing bytes after the array");
}

// Builds the tensor once its bytes are in `raw` (shape reversed for Fortran order).
result<tensor> finish(tensor raw, const npy_header& h) {
  if (h.type == dtype::boolean) {
    // NumPy treats any non-zero byte as True; a C++ bool must hold 0 or 1.
    uint8_t* b = static_cast<uint8_t*>(raw.raw_data());
    for (int64_t i = 0; i < raw.numel(); ++i) b[i] = b[i] != 0;
  }
  if (!h.fortran_order || h.shape.size() < 2) return raw;
  std::vector<int64_t> order(h.shape.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(order.size() - 1 - i);
  LRNN_ASSIGN_OR_RETURN(tensor c_view, raw.permute(order));
  return c_view.contiguous();
}

shape_t storage_shape(const npy_header& h) {
  return h.fortran_order ? shape_t(h.shape.rbegin(), h.shape.rend()) : h.shape;
}

std::string errno_text(int err) { return std::strerror(err); }

// Reads exactly n bytes at the current position; false on error or early end of file.
bool read_fully(int fd, void* dst, size_t n) {
  auto* p = static_cast<uint8_t*>(dst);
  while (n > 0) {
    const ssize_t got = ::read(fd, p, n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

bool write_fully(int fd, const void* src, size_t n) {
  const auto* p = static_cast<const uint8_t*>(src);
  while (n > 0) {
    const ssize_t put = ::write(fd, p, n);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) return false;
    p += put;
    n -= static_cast<size_t>(put);
  }
  return true;
}

class fd_closer {
 public:
  explicit fd_closer(int fd) : fd_(fd) {}
  ~fd_closer() {
    if (fd_ >= 0) ::close(fd_);
  }
  fd_closer(const fd_closer&) = delete;
  fd_closer& operator=(const fd_closer&) = delete;
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

// numpy.lib.format: sorted keys, repr() values, spare spaces so the growth axis can grow
// in place, then padding so that the data starts at a multiple of 64 bytes. Version 2.0
// only when the header outgrows 1.0's uint16 length, as numpy.save decides it.
std::string make_header(const char* descr, const shape_t& shape) {
  std::string shape_repr = "(";
  for (size_t i = 0; i < shape.size(); ++i) shape_repr += (i ? ", " : "") + std::to_string(shape[i]);
  shape_repr += shape.size() == 1 ? ",)" : ")";
  std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr, shape_repr);
  if (!shape.empty()) dict.append(npy_growth_digits - std::to_string(shape[0]).size(), ' ');
  const size_t hlen = dict.size() + 1;
  for (int major : {1, 2}) {
    const size_t preamble = npy_magic_len + 2 + (major == 1 ? 2 : 4);
    const size_t pad = npy_align - (preamble + hlen) % npy_align;
    const uint64_t total_len = hlen + pad;
    if (major == 1 && total_len > 0xffff) continue;
    std::string out(npy_magic, npy_magic_len);
    out += static_cast<char>(major);
    out += '\0';
    for (size_t i = 0; i < preamble - npy_magic_len - 2; ++i) out += static_cast<char>((total_len >> (8 * i)) & 0xff);
    out += dict;
    out.append(pad, ' ');
    out += '\n';
    return out;
  }
  return {};
}

}  // namespace

const char* npy_descr(dtype t) {
  switch (t) {
    case dtype::f64: return "<f8";
    case dtype::f32: return "<f4";
    case dtype::bf16: return nullptr;
    case dtype::f16: return "<f2";
    case dtype::i64: return "<i8";
    case dtype::i32: return "<i4";
    case dtype::i16: return "<i2";
    case dtype::i8: return "|i1";
    case dtype::u8: return "|u1";
    case dtype::u16: return "<u2";
    case dtype::u32: return "<u4";
    case dtype::u64: return "<u8";
    case dtype::boolean: return "|b1";
  }
  return nullptr;
}

result<tensor> parse_npy(const uint8_t* data, size_t size, const std::string& source_name) {
  static const uint8_t none[1] = {0};
  if (data == nullptr) {
    if (size != 0) return make_error(status_code::invalid_argument, "{}: null data of {} bytes", source_name, size);
    data = none;
  }
  LRNN_ASSIGN_OR_RETURN(npy_preamble pre, parse_preamble(data, size, size, source_name));
  const std::string_view text(reinterpret_cast<const char*>(data) + pre.header_offset, pre.header_len);
  LRNN_ASSIGN_OR_RETURN(npy_header h, parse_header(text, source_name));
  const size_t data_offset = pre.header_offset + pre.header_len;
  LRNN_TRY(check_data_size(h, size - data_offset, source_name));
  LRNN_ASSIGN_OR_RETURN(tensor raw, tensor::empty(storage_shape(h), h.type));
  if (h.data_bytes > 0) std::memcpy(raw.raw_data(), data + data_offset, h.data_bytes);
  return finish(std::move(raw), h);
}

result<tensor> read_npy(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return make_error(err == ENOENT ? status_code::not_found : status_code::io_error, "{}: cannot open: {}", path,
                      errno_text(err));
  }
  fd_closer closer(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return make_error(status_code::io_error, "{}: fstat failed: {}", path, errno_text(errno));
  if (!S_ISREG(st.st_mode)) return make_error(status_code::io_error, "{}: not a regular file", path);
  const uint64_t total = static_cast<uint64_t>(st.st_size);

  uint8_t pre_bytes[12] = {};
  const size_t pre_avail = static_cast<size_t>(std::min<uint64_t>(total, sizeof(pre_bytes)));
  if (!read_fully(fd, pre_bytes, pre_avail)) return make_error(status_code::io_error, "{}: read failed", path);
  LRNN_ASSIGN_OR_RETURN(npy_preamble pre, parse_preamble(pre_bytes, pre_avail, total, path));
  // The header follows the preamble; bytes of it already read come first.
  std::string text(static_cast<size_t>(pre.header_len), '\0');
  const size_t already = std::min<size_t>(pre_avail - pre.header_offset, text.size());
  std::memcpy(text.data(), pre_bytes + pre.header_offset, already);
  if (!read_fully(fd, text.data() + already, text.size() - already))
    return make_error(status_code::io_error, "{}: read failed in the header", path);
  LRNN_ASSIGN_OR_RETURN(npy_header h, parse_header(text, path));
  const uint64_t data_offset = pre.header_offset + pre.header_len;
  LRNN_TRY(check_data_size(h, total - data_offset, path));
  LRNN_ASSIGN_OR_RETURN(tensor raw, tensor::empty(storage_shape(h), h.type));
  if (::lseek(fd, static_cast<off_t>(data_offset), SEEK_SET) < 0)
    return make_error(status_code::io_error, "{}: seek failed: {}", path, errno_text(errno));
  if (!read_fully(fd, raw.raw_data(), static_cast<size_t>(h.data_bytes)))
    return make_error(status_code::io_error, "{}: read failed in the data (file changed while reading?)", path);
  return finish(std::move(raw), h);
}

namespace {

// The header and a contiguous CPU copy of `t`; `name` starts error messages.
result<std::pair<std::string, tensor>> prepare_write(const tensor& t, const std::string& name) {
  if (!t.defined()) return make_error(status_code::invalid_argument, "{}: cannot write an undefined tensor", name);
  const char* descr = npy_descr(t.type());
  if (descr == nullptr)
    return make_error(status_code::unsupported, "{}: NumPy has no {} dtype; convert the tensor (e.g. to f32) first",
                      name, dtype_name(t.type()));
  if (t.shape().size() > npy_max_dims)
    return make_error(status_code::invalid_argument, "{}: a NumPy array has at most {} dimensions, {} has {}", name,
                      npy_max_dims, t.describe(), t.dim());
  LRNN_ASSIGN_OR_RETURN(tensor host, t.to(device::cpu()));
  LRNN_ASSIGN_OR_RETURN(tensor c, host.contiguous());
  return std::make_pair(make_header(descr, c.shape()), std::move(c));
}

}  // namespace

result<std::vector<uint8_t>> serialize_npy(const tensor& t) {
  LRNN_ASSIGN_OR_RETURN(auto prepared, prepare_write(t, "npy"));
  const auto& [header, c] = prepared;
  std::vector<uint8_t> out(header.size() + c.nbytes());
  std::memcpy(out.data(), header.data(), header.size());
  if (c.nbytes() > 0) std::memcpy(out.data() + header.size(), c.raw_data(), c.nbytes());
  return out;
}

status write_npy(const std::string& path, const tensor& t) {
  LRNN_ASSIGN_OR_RETURN(auto prepared, prepare_write(t, path));
  const auto& [header, c] = prepared;

  static std::atomic<uint64_t> counter{0};
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    tmp = fmt::format("{}.tmp.{}.{}", path, ::getpid(), counter++);
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0)
    return make_error(status_code::io_error, "{}: cannot create temporary file {}: {}", path, tmp, errno_text(errno));
  fd_closer closer(fd);
  auto fail = [&](const char* what) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return make_error(status_code::io_error, "{}: {} failed: {}", path, what, errno_text(err));
  };
  if (!write_fully(fd, header.data(), header.size()) || !write_fully(fd, c.raw_data(), c.nbytes()))
    return fail("write");
  if (::fsync(fd) != 0) return fail("fsync");
  if (::close(closer.release()) != 0) return fail("close");
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("rename");
  // Make the rename durable too; some file systems refuse fsync on a folder, which is harmless.
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

}  // namespace lrnn::io
