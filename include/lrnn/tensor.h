// The tensor: shape, strides (in elements), dtype, device and shared storage. Views share
// storage; contiguous() / to() copy. Fresh buffers are NaN-poisoned when poisoning is on
// (debug and test builds), so an output a kernel forgot to write fails its test.
#pragma once

#include "lrnn/dtype.h"
#include "lrnn/status.h"

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace lrnn {

enum class device_kind : uint8_t { cpu, cuda };

struct device {
  device_kind kind = device_kind::cpu;
  int index = 0;
  static device cpu() { return {}; }
  static device cuda(int i = 0) { return {device_kind::cuda, i}; }
  bool is_cpu() const { return kind == device_kind::cpu; }
  bool is_cuda() const { return kind == device_kind::cuda; }
  bool operator==(const device&) const = default;
  std::string to_string() const;
};

// Whether the CUDA backend was compiled in, and how many devices it sees (0 without CUDA).
bool cuda_built();
int cuda_device_count();

// A block of bytes on a device. Owns it through `release` (free, munmap, cudaFree, or a
// captured shared_ptr keeping a mapping alive).
class storage {
 public:
  storage(void* data, size_t nbytes, device dev, std::function<void(void*)> release)
      : data_(data), nbytes_(nbytes), dev_(dev), release_(std::move(release)) {}
  ~storage() {
    if (release_) release_(data_);
  }
  storage(const storage&) = delete;
  storage& operator=(const storage&) = delete;
  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  device dev() const { return dev_; }

 private:
  void* data_;
  size_t nbytes_;
  device dev_;
  std::function<void(void*)> release_;
};

// Allocates `nbytes` on `dev` (64-byte aligned on CPU). Returns out_of_memory / unsupported.
result<std::shared_ptr<storage>> allocate_storage(size_t nbytes, device dev);

// Turns NaN-poisoning of fresh buffers on or off (process-wide; tests turn it on).
void set_poison_fresh_buffers(bool on);
bool poison_fresh_buffers();

using shape_t = std::vector<int64_t>;
std::string shape_to_string(const shape_t& s);  // "[2, 48, 128]"
int64_t shape_numel(const shape_t& s);
shape_t contiguous_strides(const shape_t& s);

class tensor {
 public:
  tensor() = default;
  tensor(std::shared_ptr<storage> st, int64_t offset, shape_t shape, shape_t strides, dtype t);

  // Fresh tensors. empty() is uninitialised (NaN-poisoned when poisoning is on).
  static result<tensor> empty(const shape_t& shape, dtype t, device dev = device::cpu());
  static result<tensor> zeros(const shape_t& shape, dtype t, device dev = device::cpu());
  static result<tensor> full(const shape_t& shape, double value, dtype t, device dev = device::cpu());
  // CPU tensor from values (converted to dtype t).
  template <typename T>
  static tensor from_vector(const std::vector<T>& values, const shape_t& shape, dtype t = dtype_of<T>::value);
  // CPU tensor of doubles converted to t: the common way tests build inputs.
  static tensor from_doubles(const std::vector<double>& values, const shape_t& shape, dtype t);

  bool defined() const { return static_cast<bool>(storage_); }
  const shape_t& shape() const { return shape_; }
  const shape_t& strides() const { return strides_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t d) const;
  int64_t stride(int64_t d) const;
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  dtype type() const { return dtype_; }
  device dev() const { return storage_ ? storage_->dev() : device::cpu(); }
  int64_t offset() const { return offset_; }  // in elements
  const std::shared_ptr<storage>& storage_ptr() const { return storage_; }
  bool is_contiguous() const;

  void* raw_data() const;  // address of element 0 (offset applied)
  template <typename T>
  T* data() const {
    LRNN_ASSERT(dtype_of<T>::value == dtype_, "tensor holds {}, accessed as {}", dtype_name(dtype_),
                dtype_name(dtype_of<T>::value));
    return static_cast<T*>(raw_data());
  }

  // Views (share storage). Dimensions may be negative (counted from the end).
  result<tensor> reshape(const shape_t& shape) const;  // view if contiguous, else copies
  result<tensor> view(const shape_t& shape) const;     // needs contiguity; -1 infers one dim
  result<tensor> slice(int64_t d, int64_t start, int64_t end) const;
  result<tensor> select(int64_t d, int64_t index) const;  // drops dimension d
  result<tensor> transpose(int64_t a, int64_t b) const;
  result<tensor> permute(const std::vector<int64_t>& order) const;
  result<tensor> unsqueeze(int64_t d) const;

  // Copies.
  result<tensor> contiguous() const;  // this if already contiguous
  result<tensor> clone() const;
  result<tensor> to(dtype t) const;       // this if same dtype
  result<tensor> to(device dev) const;    // this if same device
  // Copies src into this (same shape; converts dtype; CPU<->CUDA when both contiguous).
  status copy_from(const tensor& src);

  // Element access on CPU tensors as double (slow; for tests, printing, small glue).
  double at(const std::vector<int64_t>& index) const;
  void set(const std::vector<int64_t>& index, double value);
  std::vector<double> to_doubles() const;  // row-major order
  status fill(double value);

  std::string describe() const;  // "f32[2, 48] cpu"

 private:
  int64_t linear_index(const std::vector<int64_t>& index) const;
  std::shared_ptr<storage> storage_;
  int64_t offset_ = 0;
  shape_t shape_;
  shape_t strides_;
  dtype dtype_ = dtype::f32;
};

template <typename T>
tensor tensor::from_vector(const std::vector<T>& values, const shape_t& shape, dtype t) {
  LRNN_ASSERT(static_cast<int64_t>(values.size()) == shape_numel(shape), "{} values for shape {}", values.size(),
              shape_to_string(shape));
  tensor out = empty(shape, t).value();
  visit_dtype(t, [&](auto tag) {
    using D = decltype(tag);
    D* p = out.data<D>();
    for (size_t i = 0; i < values.size(); ++i) p[i] = from_double<D>(to_double(values[i]));
  });
  return out;
}

// Max |a - b| over elements (same shape; any dtypes; CPU).
double max_abs_diff(const tensor& a, const tensor& b);

}  // namespace lrnn
