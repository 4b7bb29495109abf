// libFuzzer target for the encoders: arbitrary bytes through the tok_bpe fixture
// (byte-level BPE, GPT-2 pattern), a Llama-3-style variant with added tokens, a
// Llama-2-style byte-fallback BPE and the RWKV test vocabulary. Byte-level and RWKV
// tokenizers must give decode(encode(x)) == x for any bytes; every stream must be valid
// UTF-8 adding up to the repaired decode. Tokenizer files come from the source tree.
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

struct loaded {
  std::unique_ptr<lrnn::tok::tokenizer> t;
  bool byte_exact;
};

std::vector<loaded> load_all() {
  const std::string root = LRNN_SOURCE_DIR "/tests/data/";
  std::vector<loaded> out;
  for (auto [file, exact] : {std::pair{"tok_bpe/tokenizer.json", true}, std::pair{"tokenizer/bpe_llama3.json", true},
                             std::pair{"tokenizer/bpe_llama2.json", false}, std::pair{"tokenizer/rwkv_vocab_test.txt", true}}) {
    auto t = lrnn::tok::load_tokenizer(root + file);
    if (!t.ok()) {
      std::fprintf(stderr, "bpe_encode_fuzz: %s\n", t.error().to_string().c_str());
      std::abort();
    }
    out.push_back({std::move(t).value(), exact});
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lrnn;
  static const std::vector<loaded> toks = load_all();
  const std::string x(reinterpret_cast<const char*>(data), size);
  for (const loaded& l : toks) {
    auto ids = l.t->encode(x);
    check(ids.ok());
    auto back = l.t->decode(*ids);
    check(back.ok());
    if (l.byte_exact) check(*back == x);
    else check(tok::utf8::is_valid(*back));
    tok::stream_decoder sd(*l.t);
    std::string joined;
    for (tok::token_id id : *ids) {
      auto piece = sd.put(id);
      check(piece.ok() && tok::utf8::is_valid(*piece));
      joined += *piece;
    }
    joined += sd.flush();
    check(tok::utf8::is_valid(joined));
    if (l.byte_exact) check(joined == tok::utf8::to_valid_lossy(x));
  }
  return 0;
}
