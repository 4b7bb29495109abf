// The training loop behind `lrnn train`: builds (or resumes) a trainable model, prepares the
// data (data.h), then for each optimizer step draws `accumulation` micro-batches, runs
// forward + cross-entropy + backward on each (loss scaled by 1/accumulation so that the
// gradients sum to the gradient of the mean over the whole batch), clips the global gradient
// norm, and takes an AdamW step at the scheduled learning rate. Validation, logging and
// checkpoints happen at their intervals; a checkpoint is always written at the end.
//
// bf16 autocast is emulated on CPU (there is no bf16 compute path there): the fp32 master
// weights are rounded to bf16 (round to nearest even) for each forward/backward, the gradients
// (fp32) update the fp32 masters. Activations stay fp32.
//
// Bit-exact resume: batches depend only on (seed, step), the optimizer state and the fp32
// weights are saved exactly, so with the same thread count a resumed run computes the same
// losses as an uninterrupted one (not with a time-based schedule: steps = 0, minutes > 0).
#pragma once

#include "lrnn/status.h"
#include "train/train_config.h"

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace lrnn::train {

struct train_options {
  train_config config;
  std::string out_dir;
  std::string resume;  // checkpoint or output directory; empty: a fresh run
  // With resume: whether `config` came from the user (then its model and data sections must
  // match the checkpoint's) or is the checkpoint's own config plus overrides.
  FILE* progress = stderr;  // nullptr: quiet
  int tty = -1;             // -1: detect
  int64_t stop_after_step = 0;  // > 0: stop (with a checkpoint) after this step, as an interruption would
  bool measure_sgemm = true;
};

struct train_summary {
  int64_t start_step = 0, steps = 0;
  int64_t tokens = 0;               // trained in this run
  double train_loss = 0;            // mean of the last logged interval
  double val_loss = NAN, val_ppl = NAN, val_bits_per_byte = NAN;
  double elapsed_s = 0, train_s = 0;  // wall time of this run; time in training steps only
  double tokens_per_s = 0;
  int64_t parameters = 0, matmul_parameters = 0;
  double flops_per_token = 0;       // 6 * matmul_parameters (forward + backward of every weight matmul)
  double model_gflops = 0;          // flops_per_token * tokens_per_s
  double sgemm_gflops = 0;          // cblas_sgemm 1024^3 in this run, same threads
  std::string checkpoint;
  std::string stop_reason;
  std::vector<double> step_losses;  // every step of this run
  std::vector<double> step_lrs;
  int threads = 0;
};

result<train_summary> run_training(const train_options& opt);

// The model config.json object for a training config (vocab_size filled in from the data).
result<io::json> model_json_for(const train_config& c, int64_t vocab_size);

// GFLOP/s of a 1024^3 cblas_sgemm, best of `repeats`.
double measure_sgemm_gflops(int repeats = 3);

}  // namespace lrnn::train
