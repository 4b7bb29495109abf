// libFuzzer target for the .npy reader: parses arbitrary bytes with parse_npy and checks that
// whatever was accepted is a well-formed contiguous tensor whose serialisation parses back
// to the same dtype, shape and bytes.
#include "io/npy.h"

#include <cstdlib>
#include <cstring>

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lrnn;
  auto t = io::parse_npy(data, size, "fuzz.npy");
  if (!t.ok()) {
    check(t.error().code() == status_code::parse_error);
    check(t.error().message().rfind("fuzz.npy: ", 0) == 0);
    return 0;
  }
  check(t->is_contiguous());
  check(t->nbytes() <= size);
  const auto* p = static_cast<const uint8_t*>(t->raw_data());
  if (t->type() == dtype::boolean)
    for (size_t i = 0; i < t->nbytes(); ++i) check(p[i] <= 1);
  if (t->numel() > 0) check(t->to_doubles().size() == static_cast<size_t>(t->numel()));
  auto bytes = io::serialize_npy(*t);
  check(bytes.ok());
  check(bytes->size() % 64 == t->nbytes() % 64);
  auto again = io::parse_npy(bytes->data(), bytes->size(), "fuzz-rewrite.npy");
  check(again.ok());
  check(again->type() == t->type() && again->shape() == t->shape());
  check(t->nbytes() == 0 || std::memcmp(again->raw_data(), t->raw_data(), t->nbytes()) == 0);
  return 0;
}
