// libFuzzer target for the safetensors reader: parses arbitrary bytes with from_buffer, reads
// every tensor the header reports (raw bytes and typed values), and checks that whatever was
// accepted writes back to a file that parses to the same tensors and metadata.
#include "io/safetensors.h"

#include <cstdlib>
#include <cstring>

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lrnn;
  auto f = io::safetensors_file::from_buffer(std::vector<uint8_t>(data, data + size), "fuzz");
  if (!f.ok()) return 0;
  io::named_tensors all;
  bool every_tensor_read = true;
  for (const io::tensor_info& ti : f->tensors()) {
    auto t = f->get(ti.name);
    if (!t.ok()) {
      every_tensor_read = false;
      continue;
    }
    check(t->shape() == ti.shape && t->nbytes() == ti.nbytes());
    const auto* p = static_cast<const uint8_t*>(t->raw_data());
    unsigned sum = 0;
    for (size_t i = 0; i < t->nbytes(); ++i) sum += p[i];
    check(sum <= 255u * t->nbytes());
    check(t->to_doubles().size() == static_cast<size_t>(t->numel()));
    all.emplace_back(ti.name, std::move(t).value());
  }
  if (!every_tensor_read) return 0;
  auto bytes = io::serialize_safetensors(all, f->metadata());
  check(bytes.ok());
  auto again = io::safetensors_file::from_buffer(std::move(bytes).value(), "fuzz-rewrite");
  check(again.ok());
  check(again->metadata() == f->metadata());
  check(again->tensors().size() == all.size());
  for (const auto& [name, t] : all) {
    auto u = again->get(name);
    check(u.ok() && u->type() == t.type() && u->shape() == t.shape());
    check(t.nbytes() == 0 || std::memcmp(u->raw_data(), t.raw_data(), t.nbytes()) == 0);
  }
  return 0;
}
