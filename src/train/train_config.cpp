// Parsing and validation of the training configuration (train_config.h).
#include "train/train_config.h"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

namespace lrnn::train {

namespace {

// Reads one JSON object section, remembering which keys were used so that the rest can be
// reported as unknown.
class section {
 public:
  section(const io::json* j, std::string prefix, const std::string& source) : j_(j), prefix_(std::move(prefix)), source_(source) {}

  status check_object() const {
    if (j_ && !j_->is_object())
      return make_error(status_code::parse_error, "{}: '{}' must be an object, got {}", source_, prefix_.empty() ? "(top level)" : prefix_.substr(0, prefix_.size() - 1),
                        io::json_type_name(*j_));
    return {};
  }
  const io::json* find(const std::string& key) {
    used_.insert(key);
    if (!j_ || !j_->is_object()) return nullptr;
    auto it = j_->find(key);
    return it == j_->end() || it->is_null() ? nullptr : &*it;
  }
  std::string name(const std::string& key) const { return prefix_ + key; }

  status number(const std::string& key, double& out, double lo, double hi, bool lo_open = false, bool hi_open = false) {
    const io::json* v = find(key);
    if (!v) return {};
    if (!v->is_number())
      return make_error(status_code::parse_error, "{}: '{}' must be a number, got {} {}", source_, name(key), io::json_type_name(*v), v->dump());
    const double x = v->get<double>();
    const bool ok = std::isfinite(x) && (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
    if (!ok)
      return make_error(status_code::parse_error, "{}: '{}' must be in {}{}, {}{}, got {}", source_, name(key), lo_open ? "(" : "[", lo, hi,
                        hi_open ? ")" : "]", v->dump());
    out = x;
    return {};
  }
  status integer(const std::string& key, int64_t& out, int64_t lo, int64_t hi) {
    const io::json* v = find(key);
    if (!v) return {};
    if (!v->is_number_integer() && !(v->is_number_float() && std::floor(v->get<double>()) == v->get<double>()))
      return make_error(status_code::parse_error, "{}: '{}' must be an integer, got {} {}", source_, name(key), io::json_type_name(*v), v->dump());
    const double d = v->get<double>();
    if (d < static_cast<double>(lo) || d > static_cast<double>(hi))
      return make_error(status_code::parse_error, "{}: '{}' must be in [{}, {}], got {}", source_, name(key), lo, hi, v->dump());
    out = v->is_number_integer() ? v->get<int64_t>() : static_cast<int64_t>(d);
    return {};
  }
  status boolean(const std::string& key, bool& out) {
    const io::json* v = find(key);
    if (!v) return {};
    if (!v->is_boolean())
      return make_error(status_code::parse_error, "{}: '{}' must be true or false, got {}", source_, name(key), v->dump());
    out = v->get<bool>();
    return {};
  }
  status string(const std::string& key, std::string& out, const std::vector<std::string>& allowed = {}) {
    const io::json* v = find(key);
    if (!v) return {};
    if (!v->is_string()) return make_error(status_code::parse_error, "{}: '{}' must be a string, got {}", source_, name(key), v->dump());
    const std::string s = v->get<std::string>();
    if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), s) == allowed.end()) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return make_error(status_code::parse_error, "{}: '{}' must be one of {}, got \"{}\"", source_, name(key), list, s);
    }
    out = s;
    return {};
  }
  // Errors on the first key that was never asked for.
  status no_unknown_keys() const {
    if (!j_ || !j_->is_object()) return {};
    for (auto it = j_->begin(); it != j_->end(); ++it) {
      if (used_.count(it.key())) continue;
      std::string known;
      for (const auto& k : used_) known += (known.empty() ? "" : ", ") + k;
      return make_error(status_code::parse_error, "{}: unknown key '{}' (known keys{}: {})", source_, name(it.key()),
                        prefix_.empty() ? "" : " in '" + prefix_.substr(0, prefix_.size() - 1) + "'", known);
    }
    return {};
  }

 private:
  const io::json* j_;
  std::string prefix_;
  const std::string& source_;
  std::set<std::string> used_;
};

}  // namespace

io::json train_config::to_json() const {
  io::json j;
  j["model"] = model;
  j["optimizer"] = {{"lr", optimizer.lr},
                    {"betas", {optimizer.beta1, optimizer.beta2}},
                    {"eps", optimizer.eps},
                    {"weight_decay", optimizer.weight_decay},
                    {"grad_clip", optimizer.grad_clip}};
  j["schedule"] = {{"warmup_steps", schedule.warmup_steps}, {"min_lr", schedule.min_lr}};
  j["batch"] = {{"sequences", batch.sequences}, {"seq_len", batch.seq_len}, {"accumulation", batch.accumulation}};
  j["data"] = {{"path", data.path}, {"tokenizer", data.tokenizer}, {"vocab_size", data.vocab_size}, {"val_fraction", data.val_fraction}};
  j["eval"] = {{"interval", eval_interval}, {"batches", eval_batches}};
  j["checkpoint"] = {{"interval", checkpoint_interval}, {"keep", checkpoint_keep}};
  j["log"] = {{"interval", log_interval}};
  j["steps"] = steps;
  j["minutes"] = minutes;
  j["seed"] = seed;
  j["threads"] = threads;
  j["bf16"] = bf16;
  return j;
}

io::json default_train_config_json() {
  train_config c;
  c.model = io::json::object();
  return c.to_json();
}

status apply_override(io::json& j, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    return make_error(status_code::invalid_argument, "--set '{}': expected key=value (e.g. optimizer.lr=1e-3)", assignment);
  const std::string path = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  io::json value;
  auto parsed = io::parse_json(text, "--set");
  value = parsed.ok() ? parsed.value() : io::json(text);
  if (!j.is_object()) return make_error(status_code::invalid_argument, "--set '{}': the configuration is not an object", assignment);
  io::json* cur = &j;
  std::size_t pos = 0;
  while (true) {
    const std::size_t dot = path.find('.', pos);
    const std::string key = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (key.empty()) return make_error(status_code::invalid_argument, "--set '{}': empty key in '{}'", assignment, path);
    if (dot == std::string::npos) {
      (*cur)[key] = value;
      return {};
    }
    io::json& next = (*cur)[key];
    if (next.is_null()) next = io::json::object();
    if (!next.is_object())
      return make_error(status_code::invalid_argument, "--set '{}': '{}' is not an object", assignment, path.substr(0, dot));
    cur = &next;
    pos = dot + 1;
  }
}

result<train_config> parse_train_config(const io::json& j, const std::string& source) {
  train_config c;
  section top(&j, "", source);
  LRNN_TRY(top.check_object());

  const io::json* model = top.find("model");
  if (!model || !model->is_object())
    return make_error(status_code::parse_error, "{}: 'model' must be an object with the model's config.json fields (e.g. {{\"model_type\": \"gla\", ...}}), got {}",
                      source, model ? io::json_type_name(*model) : "nothing");
  auto mt = model->find("model_type");
  if (mt == model->end() || !mt->is_string() || mt->get<std::string>().empty())
    return make_error(status_code::parse_error, "{}: 'model.model_type' must be a non-empty string (e.g. \"gla\")", source);
  c.model = *model;

  const double inf = std::numeric_limits<double>::infinity();
  {
    section s(top.find("optimizer"), "optimizer.", source);
    LRNN_TRY(s.check_object());
    LRNN_TRY(s.number("lr", c.optimizer.lr, 0, inf, true, true));
    if (const io::json* b = s.find("betas")) {
      if (!b->is_array() || b->size() != 2 || !(*b)[0].is_number() || !(*b)[1].is_number())
        return make_error(status_code::parse_error, "{}: 'optimizer.betas' must be a list of two numbers in [0, 1), got {}", source, b->dump());
      c.optimizer.beta1 = (*b)[0].get<double>();
      c.optimizer.beta2 = (*b)[1].get<double>();
      for (double x : {c.optimizer.beta1, c.optimizer.beta2})
        if (!(x >= 0 && x < 1))
          return make_error(status_code::parse_error, "{}: 'optimizer.betas' must be a list of two numbers in [0, 1), got {}", source, b->dump());
    }
    LRNN_TRY(s.number("eps", c.optimizer.eps, 0, 1, true, false));
    LRNN_TRY(s.number("weight_decay", c.optimizer.weight_decay, 0, 10));
    LRNN_TRY(s.number("grad_clip", c.optimizer.grad_clip, 0, inf, false, true));
    LRNN_TRY(s.no_unknown_keys());
  }
  {
    section s(top.find("schedule"), "schedule.", source);
    LRNN_TRY(s.check_object());
    LRNN_TRY(s.integer("warmup_steps", c.schedule.warmup_steps, 0, int64_t{1} << 40));
    LRNN_TRY(s.number("min_lr", c.schedule.min_lr, 0, inf, false, true));
    LRNN_TRY(s.no_unknown_keys());
    if (c.schedule.min_lr > c.optimizer.lr)
      return make_error(status_code::parse_error, "{}: 'schedule.min_lr' ({}) must not exceed 'optimizer.lr' ({})", source, c.schedule.min_lr,
                        c.optimizer.lr);
  }
  {
    section s(top.find("batch"), "batch.", source);
    LRNN_TRY(s.check_object());
    LRNN_TRY(s.integer("sequences", c.batch.sequences, 1, 1 << 20));
    LRNN_TRY(s.integer("seq_len", c.batch.seq_len, 1, 1 << 24));
    LRNN_TRY(s.integer("accumulation", c.batch.accumulation, 1, 1 << 20));
    LRNN_TRY(s.no_unknown_keys());
  }
  {
    section s(top.find("data"), "data.", source);
    LRNN_TRY(s.check_object());
    LRNN_TRY(s.string("path", c.data.path));
    LRNN_TRY(s.string("tokenizer", c.data.tokenizer, {"byte", "bpe"}));
    LRNN_TRY(s.integer("vocab_size", c.data.vocab_size, 257, 1 << 24));
    LRNN_TRY(s.number("val_fraction", c.data.val_fraction, 0, 0.5, true, false));
    LRNN_TRY(s.no_unknown_keys());
    if (c.data.path.empty())
      return make_error(status_code::parse_error, "{}: 'data.path' must name a text file or a folder of text files", source);
  }
  {
    section s(top.find("eval"), "eval.", source);
    LRNN_TRY(s.check_object());
    LRNN_TRY(s.integer("interval", c.eval_interval, 0, int64_t{1} << 40));
    LRNN_TRY(s.integer("batches", c.eval_batches, 1, 1 << 20));
    LRNN_TRY(s.no_unknown_keys());
  }
  {
    section s(top.find("checkpoint"), "checkpoint.", source);
    LRNN_TRY(s.check_object());
    LRNN_TRY(s.integer("interval", c.checkpoint_interval, 0, int64_t{1} << 40));
    LRNN_TRY(s.integer("keep", c.checkpoint_keep, 0, 1 << 20));
    LRNN_TRY(s.no_unknown_keys());
  }
  {
    section s(top.find("log"), "log.", source);
    LRNN_TRY(s.check_object());
    LRNN_TRY(s.integer("interval", c.log_interval, 1, int64_t{1} << 40));
    LRNN_TRY(s.no_unknown_keys());
  }
  LRNN_TRY(top.integer("steps", c.steps, 0, int64_t{1} << 40));
  LRNN_TRY(top.number("minutes", c.minutes, 0, 1e7));
  int64_t seed = 1;
  LRNN_TRY(top.integer("seed", seed, 0, std::numeric_limits<int64_t>::max()));
  c.seed = static_cast<uint64_t>(seed);
  LRNN_TRY(top.integer("threads", c.threads, 0, 4096));
  LRNN_TRY(top.boolean("bf16", c.bf16));
  LRNN_TRY(top.no_unknown_keys());
  if (c.steps == 0 && c.minutes <= 0)
    return make_error(status_code::parse_error, "{}: set 'steps' (> 0) or 'minutes' (> 0): the run needs a length", source);
  return c;
}

result<train_config> load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  LRNN_ASSIGN_OR_RETURN(io::json j, io::read_json_file(path));
  for (const auto& o : overrides) LRNN_TRY(apply_override(j, o));
  return parse_train_config(j, path);
}

}  // namespace lrnn::train
