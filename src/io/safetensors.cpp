// safetensors reader (mmap, header validation, zero-copy views) and atomic writer. The rules
// follow the reference Rust crate (huggingface/safetensors, tensor.rs): header at most 100 MB,
// entries sorted by offset must tile the data buffer exactly, sizes checked for overflow.
#include "io/safetensors.h"

#include "io/json.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <string_view>
#include <system_error>
#include <unordered_set>

namespace lrnn::io {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

namespace {

constexpr uint64_t int64_max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

std::string errno_text(int e) { return std::error_code(e, std::generic_category()).message(); }

template <typename... Args>
status header_error(const std::string& source, fmt::format_string<Args...> f, Args&&... args) {
  return status(status_code::parse_error, source + ": " + fmt::format(f, std::forward<Args>(args)...));
}

// Offset of the first byte that does not start a well-formed UTF-8 sequence (overlong
// forms, surrogates and code points past U+10FFFF are ill-formed), or npos.
size_t invalid_utf8_at(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<uint8_t>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1Fu, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0Fu, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07u, min = 0x10000;
    } else {
      return i;
    }
    if (n - i < len) return i;
    for (size_t k = 1; k < len; ++k) {
      const auto d = static_cast<uint8_t>(s[i + k]);
      if ((d & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (d & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string_view::npos;
}

// Up to 32 printable ASCII characters before `pos`, to show where a bad byte sits.
std::string text_before(std::string_view s, size_t pos) {
  const size_t start = pos > 32 ? pos - 32 : 0;
  std::string out;
  for (size_t i = start; i < pos; ++i) {
    const char c = s[i];
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  return out;
}

// Known safetensors dtypes that have no lrnn dtype.
bool is_unsupported_safetensors_dtype(std::string_view name) {
  static constexpr std::string_view names[] = {"F4",      "F6_E2M3", "F6_E3M2",     "F8_E5M2",     "F8_E4M3",
                                               "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "C64"};
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

std::optional<uint64_t> as_u64(const json& j) {
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  if (j.is_number_integer()) {
    const int64_t v = j.get<int64_t>();
    if (v >= 0) return static_cast<uint64_t>(v);
  }
  return std::nullopt;
}

// "-3", "1.5" for numbers, "a JSON string" otherwise.
std::string describe_value(const json& j) {
  if (j.is_number()) return j.dump();
  return fmt::format("a JSON {}", json_type_name(j));
}

status too_short_error(const std::string& source, uint64_t size) {
  return header_error(source, "file is {} bytes, too short for the 8-byte header length", size);
}

}  // namespace

struct safetensors_file::mapping {
  uint8_t* data = nullptr;
  uint64_t size = 0;
  void* mmap_base = nullptr;
  size_t mmap_len = 0;
  std::vector<uint8_t> owned;

  mapping() = default;
  mapping(const mapping&) = delete;
  mapping& operator=(const mapping&) = delete;
  ~mapping() {
    if (mmap_base) ::munmap(mmap_base, mmap_len);
  }
};

result<safetensors_file> safetensors_file::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    return make_error(e == ENOENT ? status_code::not_found : status_code::io_error, "{}: cannot open: {}", path,
                      errno_text(e));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return make_error(status_code::io_error, "{}: cannot stat: {}", path, errno_text(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(status_code::io_error, "{}: not a regular file", path);
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return too_short_error(path, size);
  }
  // Private and writable: a tensor viewing the mapping may be written to without a fault,
  // and the file itself never changes. MAP_NORESERVE keeps a file larger than RAM + swap
  // mappable under heuristic overcommit; where the kernel still refuses (strict overcommit)
  // the mapping is read-only.
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
  if (p == MAP_FAILED && errno == ENOMEM) p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int e = errno;
  ::close(fd);
  if (p == MAP_FAILED) return make_error(status_code::io_error, "{}: mmap of {} bytes failed: {}", path, size, errno_text(e));
  auto map = std::make_shared<mapping>();
  map->mmap_base = p;
  map->mmap_len = size;
  map->data = static_cast<uint8_t*>(p);
  map->size = size;
  return parse(std::move(map), path);
}

result<safetensors_file> safetensors_file::from_buffer(std::vector<uint8_t> bytes, std::string source_name) {
  auto map = std::make_shared<mapping>();
  map->owned = std::move(bytes);
  map->data = map->owned.data();
  map->size = map->owned.size();
  return parse(std::move(map), std::move(source_name));
}

result<safetensors_file> safetensors_file::parse(std::shared_ptr<mapping> map, std::string source) {
  const uint8_t* bytes = map->data;
  const uint64_t size = map->size;
  if (size < 8) return too_short_error(source, size);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(bytes[i]) << (8 * i);
  if (n > safetensors_max_header_bytes)
    return header_error(source, "header length {} exceeds the limit of {} bytes", n, safetensors_max_header_bytes);
  if (n > size - 8) return header_error(source, "header length {} runs past the end of the file ({} bytes)", n, size);

  const std::string_view text(reinterpret_cast<const char*>(bytes + 8), n);
  if (const size_t bad = invalid_utf8_at(text); bad != std::string_view::npos)
    return header_error(source, "header is not valid UTF-8: byte 0x{:02x} at header offset {}, after \"{}\"",
                        static_cast<uint8_t>(text[bad]), bad, text_before(text, bad));
  LRNN_ASSIGN_OR_RETURN(json header, parse_json(text, source + ": header"));
  if (!header.is_object()) return header_error(source, "header is a JSON {}, expected an object", json_type_name(header));
  if (auto dup = find_duplicate_key(text)) {
    if (dup->path.empty()) return header_error(source, "tensor name '{}' appears twice in the header", dup->key);
    if (dup->path.size() == 1 && dup->path[0] == "__metadata__")
      return header_error(source, "metadata key '{}' appears twice", dup->key);
    if (dup->path.size() == 1) return header_error(source, "tensor '{}': field '{}' appears twice", dup->path[0], dup->key);
    return header_error(source, "key '{}' appears twice inside '{}'", dup->key, dup->path[0]);
  }

  safetensors_file f;
  f.path_ = std::move(source);
  const std::string& src = f.path_;
  f.header_bytes_ = n;
  f.data_bytes_ = size - 8 - n;
  f.data_ = bytes + 8 + n;

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& entry = it.value();
    if (name == "__metadata__") {
      if (entry.is_null()) continue;
      if (!entry.is_object())
        return header_error(src, "__metadata__ is a JSON {}, expected an object of strings", json_type_name(entry));
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string())
          return header_error(src, "__metadata__ key '{}' has {}, expected a string", m.key(), describe_value(m.value()));
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (name.empty()) return header_error(src, "empty tensor name");
    if (!entry.is_object())
      return header_error(src, "tensor '{}': entry is {}, expected an object with dtype, shape and data_offsets", name,
                          describe_value(entry));
    for (auto field = entry.begin(); field != entry.end(); ++field) {
      const std::string& k = field.key();
      if (k != "dtype" && k != "shape" && k != "data_offsets")
        return header_error(src, "tensor '{}': unknown field '{}' (expected dtype, shape, data_offsets)", name, k);
    }
    tensor_info ti;
    ti.name = name;

    const auto dt = entry.find("dtype");
    if (dt == entry.end()) return header_error(src, "tensor '{}': missing field 'dtype'", name);
    if (!dt->is_string()) return header_error(src, "tensor '{}': dtype is {}, expected a string", name, describe_value(*dt));
    const std::string& dt_name = dt->get_ref<const std::string&>();
    const std::optional<dtype> t = dtype_from_safetensors(dt_name);
    if (!t) {
      if (is_unsupported_safetensors_dtype(dt_name))
        return make_error(status_code::unsupported, "{}: tensor '{}' has dtype {}, which lrnn does not support", src, name,
                          dt_name);
      return header_error(src, "tensor '{}': unknown dtype '{}'", name, dt_name);
    }
    ti.type = *t;

    const auto sh = entry.find("shape");
    if (sh == entry.end()) return header_error(src, "tensor '{}': missing field 'shape'", name);
    if (!sh->is_array()) return header_error(src, "tensor '{}': shape is {}, expected an array", name, describe_value(*sh));
    uint64_t nonzero_product = 1;
    bool has_zero = false, overflow = false;
    for (size_t i = 0; i < sh->size(); ++i) {
      const std::optional<uint64_t> d = as_u64((*sh)[i]);
      if (!d)
        return header_error(src, "tensor '{}': shape[{}] is {}, expected a non-negative integer", name, i,
                            describe_value((*sh)[i]));
      if (*d > int64_max) return header_error(src, "tensor '{}': shape[{}] = {} is too large", name, i, *d);
      ti.shape.push_back(static_cast<int64_t>(*d));
      // The product of the non-zero dimensions bounds every contiguous stride.
      if (*d == 0) has_zero = true;
      else if (nonzero_product > int64_max / *d) overflow = true;
      else nonzero_product *= *d;
    }
    const uint64_t elem = dtype_size(ti.type);
    if (overflow || nonzero_product > int64_max / elem)
      return header_error(src, "tensor '{}': shape {} of {} overflows 64-bit sizes", name, shape_to_string(ti.shape),
                          dt_name);
    const uint64_t need = has_zero ? 0 : nonzero_product * elem;

    const auto off = entry.find("data_offsets");
    if (off == entry.end()) return header_error(src, "tensor '{}': missing field 'data_offsets'", name);
    if (!off->is_array() || off->size() != 2)
      return header_error(src, "tensor '{}': data_offsets is {}, expected an array [begin, end]", name,
                          off->is_array() ? fmt::format("an array of {} elements", off->size()) : describe_value(*off));
    const std::optional<uint64_t> begin = as_u64((*off)[0]), end = as_u64((*off)[1]);
    if (!begin || !end)
      return header_error(src, "tensor '{}': data_offsets [{}, {}] are not both non-negative integers", name,
                          describe_value((*off)[0]), describe_value((*off)[1]));
    ti.data_begin = *begin;
    ti.data_end = *end;
    if (*end < *begin) return header_error(src, "tensor '{}': data_offsets [{}, {}] end before they begin", name, *begin, *end);
    if (*end - *begin != need)
      return header_error(src, "tensor '{}': data_offsets [{}, {}] span {} bytes, but shape {} of {} needs {} bytes", name,
                          *begin, *end, *end - *begin, shape_to_string(ti.shape), dt_name, need);
    if (*end > f.data_bytes_)
      return header_error(src, "tensor '{}': data_offsets [{}, {}] run past the end of the data buffer ({} bytes)", name,
                          *begin, *end, f.data_bytes_);
    f.tensors_.push_back(std::move(ti));
  }

  // Sorted by offset, the entries must tile the data buffer: no overlap, no hole.
  std::sort(f.tensors_.begin(), f.tensors_.end(), [](const tensor_info& a, const tensor_info& b) {
    if (a.data_begin != b.data_begin) return a.data_begin < b.data_begin;
    if (a.data_end != b.data_end) return a.data_end < b.data_end;
    return a.name < b.name;
  });
  uint64_t pos = 0;
  const tensor_info* owner = nullptr;  // the non-empty tensor that ends at pos
  for (const tensor_info& ti : f.tensors_) {
    if (ti.data_begin > pos)
      return header_error(src, "bytes [{}, {}) of the data buffer belong to no tensor (a hole before tensor '{}')", pos,
                          ti.data_begin, ti.name);
    if (ti.data_begin < pos)
      return header_error(src, "tensor '{}' (data_offsets [{}, {}]) overlaps tensor '{}' (data_offsets [{}, {}])", ti.name,
                          ti.data_begin, ti.data_end, owner->name, owner->data_begin, owner->data_end);
    if (ti.data_end > pos) {
      pos = ti.data_end;
      owner = &ti;
    }
  }
  if (pos != f.data_bytes_)
    return header_error(src, "bytes [{}, {}) at the end of the data buffer belong to no tensor", pos, f.data_bytes_);

  f.index_.reserve(f.tensors_.size());
  for (size_t i = 0; i < f.tensors_.size(); ++i) f.index_.emplace(f.tensors_[i].name, i);
  f.map_ = std::move(map);
  return f;
}

const tensor_info* safetensors_file::info(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

result<tensor> safetensors_file::get(const std::string& name) const {
  const tensor_info* ti = info(name);
  if (!ti) return make_error(status_code::not_found, "{}: no tensor '{}'", path_, name);
  uint8_t* p = const_cast<uint8_t*>(data_) + ti->data_begin;
  const size_t nbytes = ti->nbytes();
  if (ti->type == dtype::boolean) {
    // A bool holding any byte but 0 or 1 is undefined behaviour in C++.
    for (size_t i = 0; i < nbytes; ++i)
      if (p[i] > 1)
        return header_error(path_, "tensor '{}': BOOL element {} is byte 0x{:02x}, expected 0 or 1", name, i, p[i]);
  }
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(ti->type) == 0) {
    auto st = std::make_shared<storage>(p, nbytes, device::cpu(), [keep = map_](void*) {});
    return tensor(std::move(st), 0, ti->shape, contiguous_strides(ti->shape), ti->type);
  }
  LRNN_ASSIGN_OR_RETURN(tensor out, tensor::empty(ti->shape, ti->type));
  if (nbytes) std::memcpy(out.raw_data(), p, nbytes);
  return out;
}

namespace {

// Position of each dtype in the reference crate's Dtype enum, which is ordered by alignment;
// the writer sorts by it descending, then by name.
int alignment_rank(dtype t) {
  switch (t) {
    case dtype::boolean: return 0;
    case dtype::u8: return 4;
    case dtype::i8: return 5;
    case dtype::i16: return 11;
    case dtype::u16: return 12;
    case dtype::f16: return 13;
    case dtype::bf16: return 14;
    case dtype::i32: return 15;
    case dtype::u32: return 16;
    case dtype::f32: return 17;
    case dtype::f64: return 19;
    case dtype::i64: return 20;
    case dtype::u64: return 21;
  }
  return 0;
}

// JSON string escaping as serde_json writes it: '"', '\\' and control characters only.
void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) out += fmt::format("\\u{:04x}", c);
        else out += ch;
    }
  }
  out += '"';
}

struct write_plan {
  std::string header;         // padded JSON
  std::vector<size_t> order;  // indices into the input, in data order
  uint64_t data_bytes = 0;
};

template <typename... Args>
status write_error(const std::string& dest, fmt::format_string<Args...> f, Args&&... args) {
  return status(status_code::invalid_argument, dest + ": " + fmt::format(f, std::forward<Args>(args)...));
}

status check_utf8(const std::string& dest, std::string_view s, const char* what) {
  const size_t bad = invalid_utf8_at(s);
  if (bad == std::string_view::npos) return {};
  return write_error(dest, "{} is not valid UTF-8 (byte 0x{:02x} at offset {}, after \"{}\")", what,
                     static_cast<uint8_t>(s[bad]), bad, text_before(s, bad));
}

result<write_plan> plan_file(const named_tensors& tensors, const std::map<std::string, std::string>& metadata,
                             const std::string& dest) {
  write_plan plan;
  std::unordered_set<std::string_view> seen;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    if (name.empty()) return write_error(dest, "empty tensor name");
    if (name == "__metadata__") return write_error(dest, "the tensor name '__metadata__' is reserved for metadata");
    LRNN_TRY(check_utf8(dest, name, "a tensor name"));
    if (!seen.insert(name).second) return write_error(dest, "tensor '{}' is given twice", name);
    if (!t.defined()) return write_error(dest, "tensor '{}' is undefined", name);
    plan.order.push_back(i);
  }
  for (const auto& [k, v] : metadata) {
    LRNN_TRY(check_utf8(dest, k, "a metadata key"));
    LRNN_TRY(check_utf8(dest, v, "a metadata value"));
  }
  std::sort(plan.order.begin(), plan.order.end(), [&](size_t a, size_t b) {
    const int ra = alignment_rank(tensors[a].second.type()), rb = alignment_rank(tensors[b].second.type());
    if (ra != rb) return ra > rb;
    return tensors[a].first < tensors[b].first;
  });

  std::string& h = plan.header;
  h += '{';
  bool first = true;
  if (!metadata.empty()) {
    h += "\"__metadata__\":{";
    for (auto it = metadata.begin(); it != metadata.end(); ++it) {
      if (it != metadata.begin()) h += ',';
      append_json_string(h, it->first);
      h += ':';
      append_json_string(h, it->second);
    }
    h += '}';
    first = false;
  }
  uint64_t offset = 0;
  for (const size_t i : plan.order) {
    const tensor& t = tensors[i].second;
    if (!first) h += ',';
    first = false;
    append_json_string(h, tensors[i].first);
    h += ":{\"dtype\":\"";
    h += safetensors_dtype_name(t.type());
    h += "\",\"shape\":[";
    for (size_t d = 0; d < t.shape().size(); ++d) {
      if (d) h += ',';
      h += std::to_string(t.shape()[d]);
    }
    const uint64_t nbytes = t.nbytes();
    h += fmt::format("],\"data_offsets\":[{},{}]}}", offset, offset + nbytes);
    offset += nbytes;
  }
  h += '}';
  h.resize((h.size() + 7) / 8 * 8, ' ');
  if (h.size() > safetensors_max_header_bytes)
    return write_error(dest, "header would be {} bytes, over the limit of {}", h.size(), safetensors_max_header_bytes);
  plan.data_bytes = offset;
  return plan;
}

using byte_sink = std::function<status(const void*, size_t)>;

status emit(const named_tensors& tensors, const write_plan& plan, const byte_sink& sink) {
  uint8_t len[8];
  const uint64_t n = plan.header.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  LRNN_TRY(sink(len, 8));
  LRNN_TRY(sink(plan.header.data(), plan.header.size()));
  for (const size_t i : plan.order) {
    const tensor& t = tensors[i].second;
    if (t.numel() == 0) continue;
    LRNN_ASSIGN_OR_RETURN(tensor host, t.to(device::cpu()));
    LRNN_ASSIGN_OR_RETURN(tensor c, host.contiguous());
    LRNN_TRY(sink(c.raw_data(), c.nbytes()));
  }
  return {};
}

std::atomic<uint64_t> g_temp_counter{0};

}  // namespace

result<std::vector<uint8_t>> serialize_safetensors(const named_tensors& tensors,
                                                   const std::map<std::string, std::string>& metadata) {
  LRNN_ASSIGN_OR_RETURN(write_plan plan, plan_file(tensors, metadata, "safetensors"));
  std::vector<uint8_t> out;
  out.reserve(8 + plan.header.size() + plan.data_bytes);
  LRNN_TRY(emit(tensors, plan, [&](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
    return status();
  }));
  return out;
}

status write_safetensors(const std::string& path, const named_tensors& tensors,
                         const std::map<std::string, std::string>& metadata) {
  LRNN_ASSIGN_OR_RETURN(write_plan plan, plan_file(tensors, metadata, path));
  const std::string tmp = fmt::format("{}.tmp.{}.{}", path, ::getpid(), g_temp_counter++);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return make_error(status_code::io_error, "{}: cannot create {}: {}", path, tmp, errno_text(errno));
  status s = emit(tensors, plan, [&](const void* p, size_t n) {
    const auto* b = static_cast<const char*>(p);
    while (n > 0) {
      const ssize_t w = ::write(fd, b, std::min<size_t>(n, size_t{1} << 30));
      if (w < 0) {
        if (errno == EINTR) continue;
        return make_error(status_code::io_error, "{}: writing {} failed: {}", path, tmp, errno_text(errno));
      }
      b += w;
      n -= static_cast<size_t>(w);
    }
    return status();
  });
  if (s.ok() && ::fsync(fd) != 0) s = make_error(status_code::io_error, "{}: fsync of {} failed: {}", path, tmp, errno_text(errno));
  if (::close(fd) != 0 && s.ok()) s = make_error(status_code::io_error, "{}: closing {} failed: {}", path, tmp, errno_text(errno));
  if (s.ok() && std::rename(tmp.c_str(), path.c_str()) != 0)
    s = make_error(status_code::io_error, "{}: renaming {} into place failed: {}", path, tmp, errno_text(errno));
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  // Make the rename itself durable; a failure here leaves a complete file, so it is not an error.
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

}  // namespace lrnn::io
