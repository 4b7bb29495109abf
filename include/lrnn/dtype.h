// Element types: the dtype enum, its names (ours, safetensors', NumPy's), sizes, and the
// bf16 / f16 storage types with round-to-nearest-even conversion from float.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace lrnn {

enum class dtype : uint8_t { f64, f32, bf16, f16, i64, i32, i16, i8, u8, u16, u32, u64, boolean };

inline constexpr dtype all_dtypes[] = {dtype::f64, dtype::f32, dtype::bf16, dtype::f16, dtype::i64,
                                       dtype::i32, dtype::i16,  dtype::i8,  dtype::u8,  dtype::u16,
                                       dtype::u32, dtype::u64,  dtype::boolean};

size_t dtype_size(dtype t);
bool is_floating(dtype t);
// "f32", "bf16", ...
const char* dtype_name(dtype t);
std::optional<dtype> dtype_from_name(std::string_view name);
// safetensors names: "F32", "BF16", "I64", "BOOL", ...
const char* safetensors_dtype_name(dtype t);
std::optional<dtype> dtype_from_safetensors(std::string_view name);

struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  explicit bf16(float f) : bits(from_float(f)) {}
  explicit operator float() const { return to_float(bits); }
  static uint16_t from_float(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
  }
  static float to_float(uint16_t b) {
    uint32_t u = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

struct f16 {
  uint16_t bits = 0;
  f16() = default;
  explicit f16(float f) : bits(from_float(f)) {}
  explicit operator float() const { return to_float(bits); }
  static uint16_t from_float(float f);
  static float to_float(uint16_t h);
};

template <typename T>
struct dtype_of;
template <> struct dtype_of<double> { static constexpr dtype value = dtype::f64; };
template <> struct dtype_of<float> { static constexpr dtype value = dtype::f32; };
template <> struct dtype_of<bf16> { static constexpr dtype value = dtype::bf16; };
template <> struct dtype_of<f16> { static constexpr dtype value = dtype::f16; };
template <> struct dtype_of<int64_t> { static constexpr dtype value = dtype::i64; };
template <> struct dtype_of<int32_t> { static constexpr dtype value = dtype::i32; };
template <> struct dtype_of<int16_t> { static constexpr dtype value = dtype::i16; };
template <> struct dtype_of<int8_t> { static constexpr dtype value = dtype::i8; };
template <> struct dtype_of<uint8_t> { static constexpr dtype value = dtype::u8; };
template <> struct dtype_of<uint16_t> { static constexpr dtype value = dtype::u16; };
template <> struct dtype_of<uint32_t> { static constexpr dtype value = dtype::u32; };
template <> struct dtype_of<uint64_t> { static constexpr dtype value = dtype::u64; };
template <> struct dtype_of<bool> { static constexpr dtype value = dtype::boolean; };

// Calls f(T{}) with the C++ type of `t` (for generic element loops).
template <typename F>
decltype(auto) visit_dtype(dtype t, F&& f) {
  switch (t) {
    case dtype::f64: return f(double{});
    case dtype::f32: return f(float{});
    case dtype::bf16: return f(bf16{});
    case dtype::f16: return f(f16{});
    case dtype::i64: return f(int64_t{});
    case dtype::i32: return f(int32_t{});
    case dtype::i16: return f(int16_t{});
    case dtype::i8: return f(int8_t{});
    case dtype::u8: return f(uint8_t{});
    case dtype::u16: return f(uint16_t{});
    case dtype::u32: return f(uint32_t{});
    case dtype::u64: return f(uint64_t{});
    case dtype::boolean: return f(bool{});
  }
  return f(float{});
}

// Element <-> double, used by conversions and tests.
template <typename T>
inline double to_double(T v) {
  if constexpr (std::is_same_v<T, bf16> || std::is_same_v<T, f16>) return static_cast<double>(static_cast<float>(v));
  else return static_cast<double>(v);
}
template <typename T>
inline T from_double(double v) {
  if constexpr (std::is_same_v<T, bf16> || std::is_same_v<T, f16>) return T(static_cast<float>(v));
  else if constexpr (std::is_same_v<T, bool>) return v != 0.0;
  else return static_cast<T>(v);
}

}  // namespace lrnn
