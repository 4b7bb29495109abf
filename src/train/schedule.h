// Learning-rate schedule: linear warmup from 0 over warmup_steps, then cosine decay from the
// peak lr to min_lr at the end of the run:
//   step < warmup:      lr * (step + 1) / warmup
//   else, p = (step - warmup) / max(1, total - warmup) clamped to [0, 1]:
//                       min_lr + (lr - min_lr) * (1 + cos(pi * p)) / 2
// `step` counts optimizer steps from 0. With a time budget and no step count, p is the
// elapsed fraction of the budget instead (cosine_lr_at_fraction).
#pragma once

#include <cstdint>

namespace lrnn::train {

double cosine_lr(int64_t step, int64_t warmup_steps, int64_t total_steps, double peak_lr, double min_lr);
// Warmup by step, then cosine over the fraction `progress` in [0, 1] of the run.
double cosine_lr_at_fraction(int64_t step, int64_t warmup_steps, double progress, double peak_lr, double min_lr);

}  // namespace lrnn::train
