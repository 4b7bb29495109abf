// Training logs: a row per logged step in <out>/log.csv and <out>/log.jsonl, the loss curve
// as an SVG (own writer: train and validation curves, axes with ticks, labels), and the
// progress display on stderr (a bar rewritten in place on a terminal, plain lines otherwise).
#pragma once

#include "io/json.h"
#include "lrnn/status.h"

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace lrnn::train {

struct log_row {
  int64_t step = 0;  // optimizer steps done
  int64_t tokens = 0;
  double elapsed_s = 0;
  double lr = 0;
  double train_loss = 0;  // mean over the steps since the previous row
  double grad_norm = 0;
  double tokens_per_s = 0;
  std::optional<double> val_loss;  // nats per token
  std::optional<double> val_bits_per_byte;
  io::json to_json() const;
  static log_row from_json(const io::json& j);
};

class train_log {
 public:
  // Rewrites the files with `rows` (a resumed run's history) and appends from then on.
  status open(const std::string& out_dir, const std::vector<log_row>& rows);
  status append(const log_row& row);
  const std::vector<log_row>& rows() const { return rows_; }
  // Writes <out>/loss.svg from the rows.
  status write_svg(const std::string& title) const;

 private:
  std::string dir_;
  std::vector<log_row> rows_;
  status write_all() const;
};

struct curve {
  std::string label;
  std::string color;
  std::vector<std::pair<double, double>> points;  // (x, y)
};
// A line chart: x axis `x_label`, y axis `y_label`, one polyline per curve (with dots when a
// curve has few points), a legend.
std::string line_chart_svg(const std::vector<curve>& curves, const std::string& title, const std::string& x_label,
                           const std::string& y_label);

class progress_display {
 public:
  progress_display(FILE* out, bool tty, int64_t total_steps, double budget_s)
      : out_(out), tty_(tty), total_(total_steps), budget_s_(budget_s) {}
  // One update: the bar on a TTY (throttled), otherwise a plain line when `force_line`.
  void update(int64_t step, double loss, double lr, double tokens_per_s, double elapsed_s, bool force_line);
  void message(const std::string& line);  // a line that does not break the bar
  void finish();

 private:
  FILE* out_;
  bool tty_;
  int64_t total_;
  double budget_s_;
  bool bar_shown_ = false;
  double last_draw_ = -1;
};

std::string format_duration(double seconds);  // "1m05s", "2h03m"

}  // namespace lrnn::train
