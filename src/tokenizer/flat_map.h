// A small open-addressing hash map from 64-bit keys to 64-bit values (linear probing,
// power-of-two capacity, no erase). Used for BPE merge pairs and trie edges, where
// std::unordered_map's node allocation and hashing dominate the encoder's time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lrnn::tok {

class flat_map_u64 {
 public:
  static constexpr std::uint64_t empty_key = ~std::uint64_t{0};

  std::size_t size() const { return size_; }

  // Inserts or overwrites. `key` must not be empty_key.
  void insert_or_assign(std::uint64_t key, std::uint64_t value) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    std::size_t i = slot_for(key);
    if (slots_[i].key == empty_key) {
      slots_[i].key = key;
      ++size_;
    }
    slots_[i].value = value;
  }

  const std::uint64_t* find(std::uint64_t key) const {
    if (slots_.empty()) return nullptr;
    const slot& s = slots_[slot_for(key)];
    return s.key == key ? &s.value : nullptr;
  }

 private:
  struct slot {
    std::uint64_t key = empty_key;
    std::uint64_t value = 0;
  };

  static std::uint64_t mix(std::uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
  }

  std::size_t slot_for(std::uint64_t key) const {
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = mix(key) & mask;
    while (slots_[i].key != empty_key && slots_[i].key != key) i = (i + 1) & mask;
    return i;
  }

  void grow() {
    std::vector<slot> old;
    old.swap(slots_);
    slots_.assign(old.empty() ? 16 : old.size() * 2, slot{});
    for (const slot& s : old)
      if (s.key != empty_key) slots_[slot_for(s.key)] = s;
  }

  std::vector<slot> slots_;
  std::size_t size_ = 0;
};

}  // namespace lrnn::tok
