#include "train/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace lrnn::train {

double cosine_lr_at_fraction(int64_t step, int64_t warmup_steps, double progress, double peak_lr, double min_lr) {
  if (step < warmup_steps) return peak_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  const double p = std::clamp(progress, 0.0, 1.0);
  return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * p));
}

double cosine_lr(int64_t step, int64_t warmup_steps, int64_t total_steps, double peak_lr, double min_lr) {
  const double p = static_cast<double>(step - warmup_steps) / static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  return cosine_lr_at_fraction(step, warmup_steps, p, peak_lr, min_lr);
}

}  // namespace lrnn::train
