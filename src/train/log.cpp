// Logs, the SVG loss curve and the progress display (log.h).
#include "train/log.h"

#include "train/checkpoint.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

namespace lrnn::train {

io::json log_row::to_json() const {
  io::json j = {{"step", step},   {"tokens", tokens},       {"elapsed_s", elapsed_s},       {"lr", lr},
                {"train_loss", train_loss}, {"grad_norm", grad_norm}, {"tokens_per_s", tokens_per_s}};
  if (val_loss) {
    j["val_loss"] = *val_loss;
    j["val_ppl"] = std::exp(*val_loss);
  }
  if (val_bits_per_byte) j["val_bits_per_byte"] = *val_bits_per_byte;
  return j;
}

log_row log_row::from_json(const io::json& j) {
  log_row r;
  r.step = j.value("step", int64_t{0});
  r.tokens = j.value("tokens", int64_t{0});
  r.elapsed_s = j.value("elapsed_s", 0.0);
  r.lr = j.value("lr", 0.0);
  r.train_loss = j.value("train_loss", 0.0);
  r.grad_norm = j.value("grad_norm", 0.0);
  r.tokens_per_s = j.value("tokens_per_s", 0.0);
  if (j.contains("val_loss") && j["val_loss"].is_number()) r.val_loss = j["val_loss"].get<double>();
  if (j.contains("val_bits_per_byte") && j["val_bits_per_byte"].is_number()) r.val_bits_per_byte = j["val_bits_per_byte"].get<double>();
  return r;
}

namespace {

std::string csv_line(const log_row& r) {
  auto opt = [](const std::optional<double>& v, bool ppl = false) {
    return v ? fmt::format("{:.6g}", ppl ? std::exp(*v) : *v) : std::string();
  };
  return fmt::format("{},{},{:.3f},{:.6g},{:.6g},{:.6g},{:.1f},{},{},{}\n", r.step, r.tokens, r.elapsed_s, r.lr, r.train_loss, r.grad_norm,
                     r.tokens_per_s, opt(r.val_loss), opt(r.val_loss, true), opt(r.val_bits_per_byte));
}
const char* csv_header = "step,tokens,elapsed_s,lr,train_loss,grad_norm,tokens_per_s,val_loss,val_ppl,val_bits_per_byte\n";

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

// Round tick step: 1, 2 or 5 times a power of ten, giving about `n` ticks over `span`.
double nice_step(double span, int n) {
  if (!(span > 0)) return 1;
  const double raw = span / n;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= raw) return m * p;
  return 10 * p;
}

}  // namespace

status train_log::write_all() const {
  std::string csv = csv_header, jsonl;
  for (const auto& r : rows_) {
    csv += csv_line(r);
    jsonl += r.to_json().dump() + "\n";
  }
  LRNN_TRY(write_file_atomic(dir_ + "/log.csv", csv));
  return write_file_atomic(dir_ + "/log.jsonl", jsonl);
}

status train_log::open(const std::string& out_dir, const std::vector<log_row>& rows) {
  dir_ = out_dir;
  rows_ = rows;
  return write_all();
}

status train_log::append(const log_row& row) {
  rows_.push_back(row);
  std::ofstream csv(dir_ + "/log.csv", std::ios::app), jl(dir_ + "/log.jsonl", std::ios::app);
  csv << csv_line(row);
  jl << row.to_json().dump() << "\n";
  if (!csv || !jl) return make_error(status_code::io_error, "{}/log.csv: append failed", dir_);
  return {};
}

status train_log::write_svg(const std::string& title) const {
  curve tr{"train loss", "#1f77b4", {}}, va{"validation loss", "#d62728", {}};
  for (const auto& r : rows_) {
    tr.points.emplace_back(static_cast<double>(r.step), r.train_loss);
    if (r.val_loss) va.points.emplace_back(static_cast<double>(r.step), *r.val_loss);
  }
  return write_file_atomic(dir_ + "/loss.svg", line_chart_svg({tr, va}, title, "step", "loss (nats/token)"));
}

std::string line_chart_svg(const std::vector<curve>& curves, const std::string& title, const std::string& x_label, const std::string& y_label) {
  const double W = 720, H = 440, L = 70, R = 20, T = 40, B = 55;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& c : curves)
    for (const auto& [x, y] : c.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  if (!(x0 <= x1)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1, y0 -= 1;
  const double ys = nice_step(y1 - y0, 6), xs = nice_step(x1 - x0, 8);
  y0 = std::floor(y0 / ys) * ys, y1 = std::ceil(y1 / ys) * ys;
  x0 = std::floor(x0 / xs) * xs, x1 = std::ceil(x1 / xs) * xs;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  std::ostringstream s;
  s << fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H);
  s << fmt::format("<rect width=\"{}\" height=\"{}\" fill=\"white\"/>\n", W, H);
  s << fmt::format("<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n", W / 2, xml_escape(title));
  for (double y = y0; y <= y1 + ys * 1e-9; y += ys) {
    s << fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n", L, py(y), W - R, py(y));
    s << fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{:g}</text>\n", L - 6, py(y) + 4, std::round(y / ys) * ys);
  }
  for (double x = x0; x <= x1 + xs * 1e-9; x += xs) {
    s << fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#eee\"/>\n", px(x), T, px(x), H - B);
    s << fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:g}</text>\n", px(x), H - B + 16, std::round(x / xs) * xs);
  }
  s << fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n", L, H - B, W - R, H - B);
  s << fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n", L, T, L, H - B);
  s << fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", (L + W - R) / 2, H - 12, xml_escape(x_label));
  s << fmt::format("<text x=\"16\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {})\">{}</text>\n", (T + H - B) / 2, (T + H - B) / 2,
                   xml_escape(y_label));
  int legend = 0;
  for (const auto& c : curves) {
    if (c.points.empty()) continue;
    std::string pts;
    for (const auto& [x, y] : c.points)
      if (std::isfinite(x) && std::isfinite(y)) pts += fmt::format("{:.1f},{:.1f} ", px(x), py(y));
    s << fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\" points=\"{}\"/>\n", c.color, pts);
    if (c.points.size() <= 40)
      for (const auto& [x, y] : c.points)
        if (std::isfinite(x) && std::isfinite(y)) s << fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\"/>\n", px(x), py(y), c.color);
    const double ly = T + 14 + 18 * legend++;
    s << fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"3\"/>\n", W - R - 170, ly - 4, W - R - 145, ly - 4, c.color);
    s << fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", W - R - 138, ly, xml_escape(c.label));
  }
  s << "</svg>\n";
  return s.str();
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

void progress_display::update(int64_t step, double loss, double lr, double tps, double elapsed, bool force_line) {
  double frac = total_ > 0 ? static_cast<double>(step) / static_cast<double>(total_) : 0;
  if (budget_s_ > 0) frac = std::max(frac, elapsed / budget_s_);
  frac = std::clamp(frac, 0.0, 1.0);
  const double eta = frac > 0 ? elapsed * (1 - frac) / frac : NAN;
  const std::string total = total_ > 0 ? fmt::format("/{}", total_) : "";
  const std::string stats = fmt::format("step {}{}  loss {:.4f}  lr {:.2e}  {:.0f} tok/s  {} elapsed  ETA {}", step, total, loss, lr, tps,
                                        format_duration(elapsed), format_duration(eta));
  if (tty_) {
    if (!force_line && last_draw_ >= 0 && elapsed - last_draw_ < 0.2) return;
    last_draw_ = elapsed;
    const int width = 24;
    const int filled = static_cast<int>(frac * width);
    std::fprintf(out_, "\r\033[K[%s%s] %3.0f%% %s", std::string(static_cast<std::size_t>(filled), '#').c_str(),
                 std::string(static_cast<std::size_t>(width - filled), '.').c_str(), frac * 100, stats.c_str());
    std::fflush(out_);
    bar_shown_ = true;
  } else if (force_line) {
    std::fprintf(out_, "%s\n", stats.c_str());
    std::fflush(out_);
  }
}

void progress_display::message(const std::string& line) {
  if (tty_ && bar_shown_) std::fprintf(out_, "\r\033[K");
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
  bar_shown_ = false;
  last_draw_ = -1;
}

void progress_display::finish() {
  if (tty_ && bar_shown_) std::fprintf(out_, "\n");
  bar_shown_ = false;
}

}  // namespace lrnn::train
