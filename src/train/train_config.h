// The configuration of `lrnn train`: a JSON file with sections, command-line overrides
// (`--set section.key=value`), defaults for everything but the model and the data path, and
// validation whose errors name the key and the expectation. Unknown keys are errors (except
// inside "model", which is the model's config.json and is checked by its builder).
//
// {
//   "model":     {"model_type": "gla", "hidden_size": 256, ...},   // config.json; vocab_size comes from the tokenizer
//   "optimizer": {"lr": 3e-3, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1, "grad_clip": 1.0},
//   "schedule":  {"warmup_steps": 50, "min_lr": 3e-4},             // linear warmup, then cosine to min_lr
//   "batch":     {"sequences": 16, "seq_len": 128, "accumulation": 1},
//   "data":      {"path": "corpus.txt", "tokenizer": "byte" | "bpe", "vocab_size": 1024, "val_fraction": 0.05},
//   "eval":      {"interval": 100, "batches": 8},
//   "checkpoint": {"interval": 500, "keep": 2},
//   "log":       {"interval": 10},
//   "steps": 1000, "minutes": 0, "seed": 1, "threads": 0, "bf16": false
// }
#pragma once

#include "io/json.h"
#include "lrnn/status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace lrnn::train {

struct optimizer_config {
  double lr = 3e-3;
  double beta1 = 0.9, beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;  // decoupled (AdamW), on parameters with 2+ dimensions
  double grad_clip = 1.0;     // global L2 norm; 0 = off
};

struct schedule_config {
  int64_t warmup_steps = 50;
  double min_lr = 3e-4;  // cosine end value
};

struct batch_config {
  int64_t sequences = 16;    // per micro-batch
  int64_t seq_len = 128;
  int64_t accumulation = 1;  // micro-batches per optimizer step
};

struct data_config {
  std::string path;
  std::string tokenizer = "byte";  // byte | bpe
  int64_t vocab_size = 1024;       // bpe only
  double val_fraction = 0.05;
};

struct train_config {
  io::json model;  // object with model_type
  optimizer_config optimizer;
  schedule_config schedule;
  batch_config batch;
  data_config data;
  int64_t eval_interval = 100;
  int64_t eval_batches = 8;
  int64_t checkpoint_interval = 500;  // 0: only at the end
  int64_t checkpoint_keep = 2;        // numbered checkpoints kept (0 = all)
  int64_t log_interval = 10;
  int64_t steps = 1000;  // schedule horizon and stop; 0 with minutes > 0: time-based schedule
  double minutes = 0;    // wall-clock budget (0 = none)
  uint64_t seed = 1;
  int64_t threads = 0;   // 0: the CLI's --threads
  bool bf16 = false;     // emulated bf16 autocast (see loop.h)

  // The resolved configuration (every key, defaults filled in) as JSON.
  io::json to_json() const;
};

// The defaults as JSON (every section and key).
io::json default_train_config_json();

// Applies one override "a.b.c=value" to `j`: value is parsed as JSON when it is valid JSON,
// else taken as a string. Creates missing objects along the path; unknown keys are left for
// parse_train_config to report.
status apply_override(io::json& j, const std::string& assignment);

// Validates and converts (errors name the key: "config: optimizer.lr must be > 0, got -1").
// `source` names the file in messages.
result<train_config> parse_train_config(const io::json& j, const std::string& source = "config");

// Reads a JSON file, applies the overrides in order, then parses.
result<train_config> load_train_config(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace lrnn::train
