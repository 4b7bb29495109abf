// libFuzzer target for the tokenizer.json loader: parses arbitrary bytes as tokenizer.json;
// an accepted file must then encode, decode and stream-decode arbitrary text (the input's
// own bytes) without crashing, and every failure must be a parse_error / unsupported status.
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/utf8.h"

#include <cstdlib>
#include <string_view>

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lrnn;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto t = tok::load_hf_tokenizer_from_json(text, "fuzz.json");
  if (!t.ok()) {
    const status_code c = t.error().code();
    check(c == status_code::parse_error || c == status_code::unsupported);
    check(t.error().message().rfind("fuzz.json", 0) == 0);
    return 0;
  }
  const tok::tokenizer& tk = **t;
  for (std::string_view s : {text.substr(0, 512), std::string_view("Hello world's 123 <|endoftext|> \xE6\x97\xA5\xFF")}) {
    for (bool special : {true, false}) {
      tok::encode_options eo;
      eo.parse_special = special;
      eo.add_special = special;
      auto ids = tk.encode(s, eo);
      check(ids.ok());
      for (tok::token_id id : *ids) check(id >= 0 && static_cast<size_t>(id) < tk.vocab_size());
      auto back = tk.decode(*ids);
      check(back.ok());
      tok::stream_decoder sd(tk);
      for (tok::token_id id : *ids) {
        auto piece = sd.put(id);
        check(piece.ok() && tok::utf8::is_valid(*piece));
      }
      check(tok::utf8::is_valid(sd.flush()));
    }
  }
  return 0;
}
