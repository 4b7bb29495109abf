// Training data: a text file or a folder of text files, read and checked (an empty corpus, a
// binary file — NUL bytes or mostly invalid UTF-8 — and a missing path are errors), tokenized
// once into binary shards in <out>/data/ and split into training and validation tokens:
//   train.bin, val.bin   little-endian uint16 tokens (uint32 when the vocabulary exceeds 65535)
//   data.json            format, dtype, vocab size, token counts, corpus fingerprint, bytes
//   tokenizer.json       the tokenizer (byte-level or trained BPE), as src/tokenizer reads it
// A later run with the same corpus and tokenizer settings reuses the shards.
//
// Split: the token stream is cut into blocks of 4096 tokens and block i goes to validation when
// floor((i + 1) f) > floor(i f) (f = val_fraction), so both sets cover the whole corpus.
// Batches are random contiguous windows whose positions are a pure function of (seed, step,
// micro-batch, row): a resumed run draws exactly the windows the uninterrupted one would have.
#pragma once

#include "lrnn/status.h"
#include "lrnn/tensor.h"
#include "train/train_config.h"

#include <cstdint>
#include <string>
#include <vector>

namespace lrnn::train {

struct corpus {
  std::string text;
  std::vector<std::string> files;  // the files read, sorted
  std::vector<std::string> skipped;  // files in a folder skipped as binary or empty
};

// Reads a file, or every regular file under a folder (recursively, sorted, hidden entries
// skipped, binary files skipped with their name in `skipped`). Errors: not_found for a missing
// path; invalid_argument for an empty corpus, a binary file given by name, or a folder with no
// text.
result<corpus> read_corpus(const std::string& path);

// Why `bytes` does not look like text ("3 NUL bytes"), or empty when it does: any NUL byte, or
// more than 10% of the bytes in invalid UTF-8 sequences.
std::string binary_reason(std::string_view bytes);

// Binary shard files (format above); width 2 or 4 bytes per token.
status write_token_file(const std::string& path, const std::vector<uint32_t>& tokens, int width);
result<std::vector<uint32_t>> read_token_file(const std::string& path, int width);

// The split described above.
void split_train_val(const std::vector<uint32_t>& tokens, double val_fraction, std::vector<uint32_t>& train,
                     std::vector<uint32_t>& val);

struct dataset {
  std::vector<uint32_t> train, val;
  int64_t vocab_size = 0;
  std::string tokenizer_json;  // the file's text
  std::string tokenizer;       // byte | bpe
  double val_bytes = 0;        // UTF-8 bytes of text the validation tokens stand for
  std::string fingerprint;     // corpus + tokenizer settings
  bool reused = false;         // shards were already there
};

// The fingerprint prepare_dataset records: the corpus text and the tokenizer settings (not the path).
std::string dataset_fingerprint(const corpus& c, const data_config& cfg);

// Reads/trains/tokenizes as described above, writing under data_dir (created). With
// `tokenizer_json` non-empty (a resumed run) that tokenizer is used instead of a new one.
result<dataset> prepare_dataset(const data_config& cfg, const std::string& data_dir, const std::string& tokenizer_json = "");

// Fills ids/targets (int64 [B, T]) with windows tokens[s .. s+T] / [s+1 .. s+T+1]; the start
// of row b is drawn from (seed, step, micro, b).
status sample_batch(const std::vector<uint32_t>& tokens, int64_t B, int64_t T, uint64_t seed, int64_t step, int64_t micro,
                    tensor& ids, tensor& targets);
// The fixed validation batch `index` of `count`: rows evenly spaced over the validation tokens.
status validation_batch(const std::vector<uint32_t>& tokens, int64_t B, int64_t T, int64_t index, int64_t count, tensor& ids,
                        tensor& targets);

// 64-bit FNV-1a (fingerprints).
uint64_t fnv1a(std::string_view bytes, uint64_t h = 0xcbf29ce484222325ull);

}  // namespace lrnn::train
