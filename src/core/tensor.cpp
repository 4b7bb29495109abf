// Tensor storage, views and copies (CPU element loops; CUDA through backend/cuda).
#include "lrnn/tensor.h"

#include "backend/cuda/cuda_backend.h"

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>

namespace lrnn {

std::string device::to_string() const {
  return is_cpu() ? std::string("cpu") : fmt::format("cuda:{}", index);
}

bool cuda_built() { return cuda::built(); }
int cuda_device_count() { return cuda::device_count(); }

#ifdef LRNN_POISON_DEFAULT
static std::atomic<bool> g_poison{true};
#else
static std::atomic<bool> g_poison{false};
#endif
void set_poison_fresh_buffers(bool on) { g_poison = on; }
bool poison_fresh_buffers() { return g_poison; }

result<std::shared_ptr<storage>> allocate_storage(size_t nbytes, device dev) {
  if (dev.is_cpu()) {
    const size_t rounded = (nbytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (!p) return make_error(status_code::out_of_memory, "out of host memory allocating {} bytes", nbytes);
    return std::make_shared<storage>(p, nbytes, dev, [](void* q) { std::free(q); });
  }
  LRNN_ASSIGN_OR_RETURN(void* p, cuda::allocate(nbytes, dev.index));
  const int idx = dev.index;
  return std::make_shared<storage>(p, nbytes, dev, [idx](void* q) { cuda::release(q, idx); });
}

std::string shape_to_string(const shape_t& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t shape_numel(const shape_t& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

shape_t contiguous_strides(const shape_t& s) {
  shape_t st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

tensor::tensor(std::shared_ptr<storage> st, int64_t offset, shape_t shape, shape_t strides, dtype t)
    : storage_(std::move(st)), offset_(offset), shape_(std::move(shape)), strides_(std::move(strides)), dtype_(t) {
  LRNN_ASSERT(shape_.size() == strides_.size(), "shape {} and strides {} differ in rank", shape_to_string(shape_),
              shape_to_string(strides_));
}

static status check_shape(const shape_t& shape) {
  for (int64_t d : shape)
    if (d < 0) return make_error(status_code::invalid_argument, "negative dimension in shape {}", shape_to_string(shape));
  for (int64_t d : shape)
    if (d == 0) return {};  // no elements: any other dimension is fine (strides stay 0)
  int64_t n = 1;
  for (int64_t d : shape) {
    if (n > std::numeric_limits<int64_t>::max() / 16 / d)
      return make_error(status_code::invalid_argument, "shape {} is too large", shape_to_string(shape));
    n *= d;
  }
  return {};
}

static void poison(void* p, size_t nbytes, dtype t) {
  visit_dtype(t, [&](auto tag) {
    using T = decltype(tag);
    T* q = static_cast<T*>(p);
    const size_t n = nbytes / sizeof(T);
    if constexpr (std::is_same_v<T, double> || std::is_same_v<T, float>) {
      for (size_t i = 0; i < n; ++i) q[i] = std::numeric_limits<T>::quiet_NaN();
    } else if constexpr (std::is_same_v<T, bf16>) {
      for (size_t i = 0; i < n; ++i) q[i].bits = 0x7fc0;
    } else if constexpr (std::is_same_v<T, f16>) {
      for (size_t i = 0; i < n; ++i) q[i].bits = 0x7e00;
    } else if constexpr (std::is_same_v<T, bool>) {
      std::memset(p, 0, nbytes);
    } else {
      std::memset(p, 0xA5, nbytes);
    }
  });
}

result<tensor> tensor::empty(const shape_t& shape, dtype t, device dev) {
  LRNN_TRY(check_shape(shape));
  const size_t nbytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(t);
  LRNN_ASSIGN_OR_RETURN(auto st, allocate_storage(nbytes, dev));
  if (poison_fresh_buffers()) {
    if (dev.is_cpu()) {
      poison(st->data(), nbytes, t);
    } else {
      LRNN_TRY(cuda::memset(st->data(), 0xFF, nbytes));  // all-ones bits: NaN in every float dtype
    }
  }
  return tensor(std::move(st), 0, shape, contiguous_strides(shape), t);
}

result<tensor> tensor::zeros(const shape_t& shape, dtype t, device dev) {
  LRNN_ASSIGN_OR_RETURN(tensor out, empty(shape, t, dev));
  if (dev.is_cpu()) std::memset(out.raw_data(), 0, out.nbytes());
  else LRNN_TRY(cuda::memset(out.raw_data(), 0, out.nbytes()));
  return out;
}

result<tensor> tensor::full(const shape_t& shape, double value, dtype t, device dev) {
  LRNN_ASSIGN_OR_RETURN(tensor host, empty(shape, t));
  LRNN_TRY(host.fill(value));
  return host.to(dev);
}

tensor tensor::from_doubles(const std::vector<double>& values, const shape_t& shape, dtype t) {
  return from_vector<double>(values, shape, t);
}

int64_t tensor::size(int64_t d) const {
  if (d < 0) d += dim();
  LRNN_ASSERT(d >= 0 && d < dim(), "dimension {} out of range for {}", d, describe());
  return shape_[d];
}

int64_t tensor::stride(int64_t d) const {
  if (d < 0) d += dim();
  LRNN_ASSERT(d >= 0 && d < dim(), "dimension {} out of range for {}", d, describe());
  return strides_[d];
}

bool tensor::is_contiguous() const {
  int64_t acc = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != acc) return false;
    acc *= shape_[i];
  }
  return true;
}

void* tensor::raw_data() const {
  if (!storage_) return nullptr;
  return static_cast<char*>(storage_->data()) + offset_ * static_cast<int64_t>(dtype_size(dtype_));
}

std::string tensor::describe() const {
  return fmt::format("{}{} {}", dtype_name(dtype_), shape_to_string(shape_), dev().to_string());
}

static result<int64_t> norm_dim(int64_t d, int64_t rank, const char* what) {
  if (d < 0) d += rank;
  if (d < 0 || d >= rank) return make_error(status_code::invalid_argument, "{}: dimension out of range for rank {}", what, rank);
  return d;
}

result<tensor> tensor::view(const shape_t& shape_in) const {
  shape_t shape = shape_in;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) return make_error(status_code::invalid_argument, "view: more than one -1 in {}", shape_to_string(shape_in));
      infer = static_cast<int>(i);
    } else if (shape[i] < 0) {
      return make_error(status_code::invalid_argument, "view: negative dimension in {}", shape_to_string(shape_in));
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel() % known != 0)
      return make_error(status_code::invalid_argument, "view: cannot view {} as {}", describe(), shape_to_string(shape_in));
    shape[infer] = numel() / known;
  }
  if (shape_numel(shape) != numel())
    return make_error(status_code::invalid_argument, "view: {} has {} elements, shape {} has {}", describe(), numel(),
                      shape_to_string(shape), shape_numel(shape));
  if (!is_contiguous()) return make_error(status_code::invalid_argument, "view: {} is not contiguous", describe());
  return tensor(storage_, offset_, shape, contiguous_strides(shape), dtype_);
}

result<tensor> tensor::reshape(const shape_t& shape) const {
  if (is_contiguous()) return view(shape);
  LRNN_ASSIGN_OR_RETURN(tensor c, contiguous());
  return c.view(shape);
}

result<tensor> tensor::slice(int64_t d, int64_t start, int64_t end) const {
  LRNN_ASSIGN_OR_RETURN(d, norm_dim(d, dim(), "slice"));
  if (start < 0 || end < start || end > shape_[d])
    return make_error(status_code::invalid_argument, "slice [{}, {}) out of range for dimension {} of {}", start, end, d,
                      describe());
  shape_t shape = shape_;
  shape[d] = end - start;
  return tensor(storage_, offset_ + start * strides_[d], shape, strides_, dtype_);
}

result<tensor> tensor::select(int64_t d, int64_t index) const {
  LRNN_ASSIGN_OR_RETURN(d, norm_dim(d, dim(), "select"));
  if (index < 0 || index >= shape_[d])
    return make_error(status_code::invalid_argument, "select index {} out of range for dimension {} of {}", index, d, describe());
  shape_t shape = shape_, strides = strides_;
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  return tensor(storage_, offset_ + index * strides_[d], shape, strides, dtype_);
}

result<tensor> tensor::transpose(int64_t a, int64_t b) const {
  LRNN_ASSIGN_OR_RETURN(a, norm_dim(a, dim(), "transpose"));
  LRNN_ASSIGN_OR_RETURN(b, norm_dim(b, dim(), "transpose"));
  shape_t shape = shape_, strides = strides_;
  std::swap(shape[a], shape[b]);
  std::swap(strides[a], strides[b]);
  return tensor(storage_, offset_, shape, strides, dtype_);
}

result<tensor> tensor::permute(const std::vector<int64_t>& order) const {
  if (static_cast<int64_t>(order.size()) != dim())
    return make_error(status_code::invalid_argument, "permute: {} dims given for {}", order.size(), describe());
  std::vector<bool> seen(order.size(), false);
  shape_t shape(order.size()), strides(order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    LRNN_ASSIGN_OR_RETURN(int64_t d, norm_dim(order[i], dim(), "permute"));
    if (seen[d]) return make_error(status_code::invalid_argument, "permute: dimension {} repeated", d);
    seen[d] = true;
    shape[i] = shape_[d];
    strides[i] = strides_[d];
  }
  return tensor(storage_, offset_, shape, strides, dtype_);
}

result<tensor> tensor::unsqueeze(int64_t d) const {
  if (d < 0) d += dim() + 1;
  if (d < 0 || d > dim()) return make_error(status_code::invalid_argument, "unsqueeze: dimension out of range for {}", describe());
  shape_t shape = shape_, strides = strides_;
  const int64_t st = d < dim() ? strides_[d] * shape_[d] : 1;
  shape.insert(shape.begin() + d, 1);
  strides.insert(strides.begin() + d, st);
  return tensor(storage_, offset_, shape, strides, dtype_);
}

// Strided element copy with conversion, CPU to CPU.
static void strided_copy(const tensor& dst, const tensor& src) {
  const int64_t n = src.numel();
  if (n == 0) return;
  if (src.type() == dst.type() && src.is_contiguous() && dst.is_contiguous()) {
    std::memcpy(dst.raw_data(), src.raw_data(), src.nbytes());
    return;
  }
  const int64_t rank = src.dim();
  visit_dtype(src.type(), [&](auto stag) {
    using S = decltype(stag);
    visit_dtype(dst.type(), [&](auto dtag) {
      using D = decltype(dtag);
      const S* sp = static_cast<const S*>(src.raw_data());
      D* dp = static_cast<D*>(dst.raw_data());
      std::vector<int64_t> idx(rank, 0);
      int64_t so = 0, doff = 0;
      for (int64_t i = 0; i < n; ++i) {
        if constexpr (std::is_same_v<S, D>) dp[doff] = sp[so];
        else dp[doff] = from_double<D>(to_double(sp[so]));
        for (int64_t d = rank - 1; d >= 0; --d) {
          if (++idx[d] < src.shape()[d]) {
            so += src.strides()[d];
            doff += dst.strides()[d];
            break;
          }
          so -= src.strides()[d] * (src.shape()[d] - 1);
          doff -= dst.strides()[d] * (dst.shape()[d] - 1);
          idx[d] = 0;
        }
      }
    });
  });
}

status tensor::copy_from(const tensor& src) {
  if (src.shape() != shape_)
    return make_error(status_code::invalid_argument, "copy_from: shape {} into {}", src.describe(), describe());
  if (dev().is_cpu() && src.dev().is_cpu()) {
    strided_copy(*this, src);
    return {};
  }
  // A CUDA side: copy contiguous bytes of the same dtype; convert on the host.
  if (src.type() != dtype_ || !src.is_contiguous() || !is_contiguous()) {
    LRNN_ASSIGN_OR_RETURN(tensor host_src, src.to(device::cpu()));
    LRNN_ASSIGN_OR_RETURN(tensor conv, host_src.to(dtype_));
    LRNN_ASSIGN_OR_RETURN(tensor c, conv.contiguous());
    if (!is_contiguous())
      return make_error(status_code::unsupported, "copy_from: non-contiguous CUDA destination {}", describe());
    return copy_from(c);
  }
  const auto kind = src.dev().is_cpu() ? cuda::copy_kind::host_to_device
                    : dev().is_cpu()   ? cuda::copy_kind::device_to_host
                                       : cuda::copy_kind::device_to_device;
  return cuda::memcpy(raw_data(), src.raw_data(), nbytes(), kind);
}

result<tensor> tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

result<tensor> tensor::clone() const {
  LRNN_ASSIGN_OR_RETURN(tensor out, empty(shape_, dtype_, dev()));
  LRNN_TRY(out.copy_from(*this));
  return out;
}

result<tensor> tensor::to(dtype t) const {
  if (t == dtype_) return *this;
  if (!dev().is_cpu()) {
    LRNN_ASSIGN_OR_RETURN(tensor h, to(device::cpu()));
    LRNN_ASSIGN_OR_RETURN(tensor c, h.to(t));
    return c.to(dev());
  }
  LRNN_ASSIGN_OR_RETURN(tensor out, empty(shape_, t));
  strided_copy(out, *this);
  return out;
}

result<tensor> tensor::to(device d) const {
  if (d == dev()) return *this;
  LRNN_ASSIGN_OR_RETURN(tensor src, contiguous());
  LRNN_ASSIGN_OR_RETURN(tensor out, empty(shape_, dtype_, d));
  LRNN_TRY(out.copy_from(src));
  return out;
}

int64_t tensor::linear_index(const std::vector<int64_t>& index) const {
  LRNN_ASSERT(static_cast<int64_t>(index.size()) == dim(), "index of rank {} for {}", index.size(), describe());
  int64_t off = 0;
  for (size_t i = 0; i < index.size(); ++i) {
    LRNN_ASSERT(index[i] >= 0 && index[i] < shape_[i], "index {} out of range in dimension {} of {}", index[i], i, describe());
    off += index[i] * strides_[i];
  }
  return off;
}

double tensor::at(const std::vector<int64_t>& index) const {
  LRNN_ASSERT(dev().is_cpu(), "at() on {}", describe());
  const int64_t off = linear_index(index);
  return visit_dtype(dtype_, [&](auto tag) {
    using T = decltype(tag);
    return to_double(static_cast<const T*>(raw_data())[off]);
  });
}

void tensor::set(const std::vector<int64_t>& index, double value) {
  LRNN_ASSERT(dev().is_cpu(), "set() on {}", describe());
  const int64_t off = linear_index(index);
  visit_dtype(dtype_, [&](auto tag) {
    using T = decltype(tag);
    static_cast<T*>(raw_data())[off] = from_double<T>(value);
  });
}

std::vector<double> tensor::to_doubles() const {
  tensor host = dev().is_cpu() ? *this : to(device::cpu()).value();
  tensor c = host.to(dtype::f64).value().contiguous().value();
  const double* p = c.data<double>();
  return std::vector<double>(p, p + c.numel());
}

status tensor::fill(double value) {
  if (!dev().is_cpu()) {
    LRNN_ASSIGN_OR_RETURN(tensor h, tensor::full(shape_, value, dtype_));
    return copy_from(h);
  }
  LRNN_ASSIGN_OR_RETURN(tensor one, tensor::empty({1}, dtype_));
  one.set({0}, value);
  tensor bcast(one.storage_ptr(), 0, shape_, shape_t(shape_.size(), 0), dtype_);
  strided_copy(*this, bcast);
  return {};
}

double max_abs_diff(const tensor& a, const tensor& b) {
  LRNN_ASSERT(a.shape() == b.shape(), "max_abs_diff: {} vs {}", a.describe(), b.describe());
  const auto x = a.to_doubles(), y = b.to_doubles();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double d = std::fabs(x[i] - y[i]);
    if (std::isnan(d)) return std::numeric_limits<double>::infinity();
    m = std::max(m, d);
  }
  return m;
}

}  // namespace lrnn
