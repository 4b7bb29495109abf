// SentencePiece through libsentencepiece (see sentencepiece_tokenizer.h).
#include "tokenizer/sentencepiece_tokenizer.h"

#include "tokenizer/file_util.h"

#include <sentencepiece_processor.h>

namespace lrnn::tok {

namespace {

class sentencepiece_tokenizer final : public tokenizer {
 public:
  tokenizer_kind kind() const override { return tokenizer_kind::sentencepiece; }
  std::string describe() const override {
    return fmt::format("SentencePiece model ({}), {} pieces", source_, sp_.GetPieceSize());
  }
  std::size_t vocab_size() const override { return static_cast<std::size_t>(sp_.GetPieceSize()); }

  result<std::vector<token_id>> encode(std::string_view text, const encode_options& opt) const override {
    std::vector<int> ids;
    const auto s = sp_.Encode(absl::string_view(text.data(), text.size()), &ids);
    if (!s.ok()) return make_error(status_code::invalid_argument, "{}: sentencepiece encode failed: {}", source_, s.ToString());
    std::vector<token_id> out;
    out.reserve(ids.size() + 1);
    if (opt.add_special && sp_.bos_id() >= 0) out.push_back(sp_.bos_id());
    out.insert(out.end(), ids.begin(), ids.end());
    return out;
  }

  result<std::string> decode(std::span<const token_id> ids, const decode_options& opt) const override {
    std::vector<int> v;
    v.reserve(ids.size());
    for (token_id id : ids) {
      if (id < 0 || id >= sp_.GetPieceSize())
        return make_error(status_code::invalid_argument, "{}: token id {} is not in the vocabulary (size {})", source_, id,
                          sp_.GetPieceSize());
      if (opt.skip_special && is_special(id)) continue;
      v.push_back(id);
    }
    std::string text;
    const auto s = sp_.Decode(v, &text);
    if (!s.ok()) return make_error(status_code::invalid_argument, "{}: sentencepiece decode failed: {}", source_, s.ToString());
    return text;
  }

  std::optional<std::string> id_to_token(token_id id) const override {
    if (id < 0 || id >= sp_.GetPieceSize()) return std::nullopt;
    return sp_.IdToPiece(id);
  }
  std::optional<token_id> token_to_id(std::string_view token) const override {
    const int id = sp_.PieceToId(absl::string_view(token.data(), token.size()));
    if (id == sp_.unk_id() && sp_.IdToPiece(id) != token) return std::nullopt;
    return id;
  }
  bool is_special(token_id id) const override {
    return id >= 0 && id < sp_.GetPieceSize() && (sp_.IsControl(id) || sp_.IsUnknown(id));
  }

  status load(std::string_view bytes) {
    const auto s = sp_.LoadFromSerializedProto(absl::string_view(bytes.data(), bytes.size()));
    if (!s.ok()) return make_error(status_code::parse_error, "{}: not a SentencePiece model: {}", source_, s.ToString());
    if (sp_.GetPieceSize() <= 0) return make_error(status_code::parse_error, "{}: SentencePiece model has no pieces", source_);
    auto opt_id = [&](int id) { return id >= 0 && id < sp_.GetPieceSize() ? std::optional<token_id>(id) : std::nullopt; };
    specials_.bos = opt_id(sp_.bos_id());
    specials_.eos = opt_id(sp_.eos_id());
    specials_.pad = opt_id(sp_.pad_id());
    specials_.unk = opt_id(sp_.unk_id());
    return {};
  }

  std::string source_;

 private:
  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace

result<std::unique_ptr<tokenizer>> load_sentencepiece_tokenizer_from_bytes(std::string_view model_proto,
                                                                           const std::string& source) {
  auto t = std::make_unique<sentencepiece_tokenizer>();
  t->source_ = source;
  LRNN_TRY(t->load(model_proto));
  return std::unique_ptr<tokenizer>(std::move(t));
}

result<std::unique_ptr<tokenizer>> load_sentencepiece_tokenizer(const std::string& path) {
  LRNN_ASSIGN_OR_RETURN(const std::string bytes, read_file_bytes(path));
  return load_sentencepiece_tokenizer_from_bytes(bytes, path);
}

}  // namespace lrnn::tok
