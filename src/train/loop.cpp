// The training loop (loop.h).
#include "train/loop.h"

#include "io/config.h"
#include "lrnn/autograd.h"
#include "lrnn/threads.h"
#include "ops/dense/autograd.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/log.h"
#include "train/optimizer.h"
#include "train/schedule.h"
#include "train/trainable.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <numbers>

#include <unistd.h>

namespace lrnn::train {

namespace fs = std::filesystem;

namespace {

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t0) { return std::chrono::duration<double>(clock_type::now() - t0).count(); }

void round_to_bf16(tensor& t) {
  if (t.type() != dtype::f32) return;
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(bf16(p[i]));
}

// First difference between two JSON values, as "key: a vs b".
std::string first_difference(const io::json& a, const io::json& b, const std::string& path) {
  if (a.is_object() && b.is_object()) {
    for (auto it = a.begin(); it != a.end(); ++it) {
      const std::string p = path.empty() ? it.key() : path + "." + it.key();
      if (!b.contains(it.key())) return fmt::format("'{}' is {} in one and absent in the other", p, it.value().dump());
      std::string d = first_difference(it.value(), b[it.key()], p);
      if (!d.empty()) return d;
    }
    for (auto it = b.begin(); it != b.end(); ++it)
      if (!a.contains(it.key())) return fmt::format("'{}' is absent in one and {} in the other", path.empty() ? it.key() : path + "." + it.key(), it.value().dump());
    return {};
  }
  if (a != b) return fmt::format("'{}' is {} vs {}", path, a.dump(), b.dump());
  return {};
}

struct eval_result {
  double loss = NAN;
};

result<double> evaluate(trainable_model& m, const dataset& d, const train_config& c) {
  ag::no_grad_guard ng;
  double sum = 0;
  tensor ids, targets;
  for (int64_t i = 0; i < c.eval_batches; ++i) {
    LRNN_TRY(validation_batch(d.val, c.batch.sequences, c.batch.seq_len, i, c.eval_batches, ids, targets));
    LRNN_ASSIGN_OR_RETURN(ag::var logits, m.forward(ids, models::compute_form::chunk));
    LRNN_ASSIGN_OR_RETURN(ag::var loss, ag::cross_entropy(logits, targets));
    sum += loss.value().to_doubles()[0];
  }
  return sum / static_cast<double>(c.eval_batches);
}

}  // namespace

double measure_sgemm_gflops(int repeats) {
  const int n = 1024;
  std::vector<float> a(static_cast<std::size_t>(n) * n, 0.5f), b(a.size(), 0.25f), cc(a.size(), 0.0f);
  double best = 0;
  for (int r = 0; r < repeats + 1; ++r) {
    const auto t0 = clock_type::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, cc.data(), n);
    const double s = seconds_since(t0);
    if (r > 0) best = std::max(best, 2.0 * n * n * n / s / 1e9);  // the first run warms up
  }
  return best;
}

result<io::json> model_json_for(const train_config& c, int64_t vocab_size) {
  io::json m = c.model;
  if (m.contains("vocab_size") && !m["vocab_size"].is_null()) {
    if (!m["vocab_size"].is_number_integer() || m["vocab_size"].get<int64_t>() != vocab_size)
      return make_error(status_code::invalid_argument, "model.vocab_size is {} but the tokenizer has {} tokens (leave it out: it is filled in)",
                        m["vocab_size"].dump(), vocab_size);
  }
  m["vocab_size"] = vocab_size;
  return m;
}

result<train_summary> run_training(const train_options& opt) {
  const auto t_start = clock_type::now();
  train_config c = opt.config;
  if (c.threads > 0) set_num_threads(static_cast<int>(c.threads));
  train_summary sum;
  sum.threads = num_threads();
  const std::string& out = opt.out_dir;
  const bool tty = opt.tty < 0 ? (opt.progress && ::isatty(::fileno(opt.progress))) : opt.tty != 0;
  progress_display prog(opt.progress ? opt.progress : stderr, tty, c.steps, c.minutes * 60);
  auto say = [&](const std::string& s) {
    if (opt.progress) prog.message(s);
  };

  // Resume: everything is checked before anything is written.
  loaded_checkpoint ck;
  const bool resuming = !opt.resume.empty();
  if (resuming) {
    LRNN_ASSIGN_OR_RETURN(ck, load_checkpoint(opt.resume));
    LRNN_ASSIGN_OR_RETURN(const train_config stored, parse_train_config(ck.trainer_state["config"], ck.dir + "/trainer_state.json"));
    const std::string dm = first_difference(stored.model, c.model, "model");
    if (!dm.empty())
      return make_error(status_code::invalid_argument, "--resume {}: incompatible checkpoint: {} (checkpoint vs config)", ck.dir, dm);
    io::json stored_data = stored.to_json()["data"], requested_data = c.to_json()["data"];
    stored_data.erase("path");  // the corpus may move: its content is checked below
    requested_data.erase("path");
    const std::string dd = first_difference(stored_data, requested_data, "data");
    if (!dd.empty())
      return make_error(status_code::invalid_argument, "--resume {}: incompatible checkpoint: {} (checkpoint vs config)", ck.dir, dd);
    if (stored.batch.seq_len != c.batch.seq_len || stored.seed != c.seed)
      say("note: seq_len or seed differ from the checkpoint's: the run continues but is not the one it would have been");
  } else {
    std::error_code ec;
    if (fs::exists(out + "/last", ec) || fs::exists(fs::symlink_status(out + "/last")))
      return make_error(status_code::invalid_argument, "--out {}: already holds a training run (last/); pass --resume {} or choose another --out", out,
                        out);
  }
  // The data (corpus errors come before anything is written).
  {
    LRNN_ASSIGN_OR_RETURN(const corpus probe, read_corpus(c.data.path));
    if (resuming) {
      const std::string want = ck.trainer_state.contains("data") && ck.trainer_state["data"].is_object()
                                   ? ck.trainer_state["data"].value("fingerprint", "")
                                   : "";
      if (want != dataset_fingerprint(probe, c.data))
        return make_error(status_code::invalid_argument,
                          "--resume {}: incompatible checkpoint: the corpus at data.path '{}' is not the one this run was trained on "
                          "(fingerprint {} vs {})",
                          ck.dir, c.data.path, dataset_fingerprint(probe, c.data), want);
    }
  }
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) return make_error(status_code::io_error, "--out {}: cannot create ({})", out, ec.message());
  const auto t_data = clock_type::now();
  LRNN_ASSIGN_OR_RETURN(dataset data, prepare_dataset(c.data, out + "/data", resuming ? ck.tokenizer_json : std::string()));
  say(fmt::format("data: {} train + {} validation tokens, vocabulary {} ({}{}, {:.1f}s)", data.train.size(), data.val.size(), data.vocab_size,
                  c.data.tokenizer, data.reused ? ", shards reused" : "", seconds_since(t_data)));
  if (static_cast<int64_t>(data.train.size()) < c.batch.seq_len + 1 || static_cast<int64_t>(data.val.size()) < c.batch.seq_len + 1)
    return make_error(status_code::invalid_argument,
                      "data.path '{}': {} training / {} validation tokens, each split needs more than batch.seq_len = {} (a larger corpus, a shorter "
                      "seq_len or a larger data.val_fraction)",
                      c.data.path, data.train.size(), data.val.size(), c.batch.seq_len);

  // The model.
  LRNN_ASSIGN_OR_RETURN(const io::json mj, model_json_for(c, data.vocab_size));
  std::unique_ptr<trainable_model> model;
  if (resuming) {
    LRNN_ASSIGN_OR_RETURN(model, load_trainable(ck.dir));
    if (model->vocab_size() != data.vocab_size)
      return make_error(status_code::invalid_argument, "--resume {}: the model has {} tokens, the data {}", ck.dir, model->vocab_size(), data.vocab_size);
  } else {
    LRNN_ASSIGN_OR_RETURN(const io::config mc, io::config::from_json(mj, "model"));
    LRNN_ASSIGN_OR_RETURN(model, create_trainable(mc, c.seed));
  }
  std::vector<parameter>& params = model->parameters();
  int64_t hidden = 0;
  if (mj.contains("hidden_size") && mj["hidden_size"].is_number_integer()) hidden = mj["hidden_size"].get<int64_t>();
  bool tied = true;
  for (const parameter& p : params) {
    const int64_t n = p.v.value().numel();
    sum.parameters += n;
    const bool embed = p.name.find("embed") != std::string::npos && p.name.find("lm_head") == std::string::npos;
    if (p.v.dim() >= 2 && !embed) sum.matmul_parameters += n;
    if (p.name.find("lm_head") != std::string::npos) tied = false;
  }
  if (tied) sum.matmul_parameters += hidden * data.vocab_size;  // the output projection reuses the embedding
  sum.flops_per_token = 6.0 * static_cast<double>(sum.matmul_parameters);

  adamw optim(&params, {c.optimizer.beta1, c.optimizer.beta2, c.optimizer.eps, c.optimizer.weight_decay});
  int64_t step = 0, tokens_total = 0;
  double elapsed_before = 0;
  std::vector<log_row> history;
  if (resuming) {
    LRNN_TRY(optim.load_state(ck.optimizer_state));
    step = ck.trainer_state["step"].get<int64_t>();
    tokens_total = ck.trainer_state.value("tokens", int64_t{0});
    elapsed_before = ck.trainer_state.value("elapsed_s", 0.0);
    if (ck.trainer_state.contains("history") && ck.trainer_state["history"].is_array())
      for (const auto& r : ck.trainer_state["history"]) history.push_back(log_row::from_json(r));
    if (optim.steps_done() != step)
      return make_error(status_code::parse_error, "--resume {}: optimizer state is at step {}, trainer_state.json at {}", ck.dir, optim.steps_done(), step);
    say(fmt::format("resuming from {} at step {}", ck.dir, step));
  }
  sum.start_step = step;
  train_log log;
  LRNN_TRY(log.open(out, history));
  say(fmt::format("model: {} with {} parameters ({} in matmuls); {} threads; batch {} x {} x {} accumulation{}", model->model_type(), sum.parameters,
                  sum.matmul_parameters, sum.threads, c.batch.sequences, c.batch.seq_len, c.batch.accumulation, c.bf16 ? "; bf16 autocast (emulated)" : ""));

  const double budget_s = c.minutes * 60;
  const bool time_schedule = c.steps == 0;
  const int64_t tokens_per_step = c.batch.sequences * c.batch.seq_len * c.batch.accumulation;
  const double ln2 = std::numbers::ln2;
  auto bits_per_byte = [&](double val_loss) {
    return data.val_bytes > 0 ? val_loss * static_cast<double>(data.val.size()) / data.val_bytes / ln2 : NAN;
  };
  const auto t_train0 = clock_type::now();
  auto elapsed = [&] { return elapsed_before + seconds_since(t_train0); };

  auto save = [&](int64_t at_step) -> status {
    checkpoint_contents cc;
    cc.step = at_step;
    cc.tokenizer_json = data.tokenizer_json;
    cc.optimizer_state = optim.state();
    io::json hist = io::json::array();
    for (const auto& r : log.rows()) hist.push_back(r.to_json());
    cc.trainer_state = {{"format", "lrnn-trainer-v1"},
                        {"step", at_step},
                        {"tokens", tokens_total},
                        {"elapsed_s", elapsed()},
                        {"data", {{"fingerprint", data.fingerprint}, {"next_step", at_step}, {"sampler", "splitmix64(seed, step, micro, row)"}}},
                        {"seed", c.seed},
                        {"threads", sum.threads},
                        {"config", c.to_json()},
                        {"history", hist}};
    LRNN_ASSIGN_OR_RETURN(sum.checkpoint, save_checkpoint(out, *model, cc, c.checkpoint_keep));
    return log.write_svg(fmt::format("{} ({} parameters)", model->model_type(), sum.parameters));
  };

  tensor ids, targets;
  std::vector<tensor> masters;
  double interval_loss = 0, interval_norm = 0;
  int64_t interval_steps = 0, run_tokens = 0;
  double train_s = 0;
  double last_val = NAN;
  int64_t last_eval_step = -1;
  auto t_interval = clock_type::now();
  int64_t interval_tokens = 0;
  sum.stop_reason = "steps";
  while (true) {
    if (c.steps > 0 && step >= c.steps) break;
    if (budget_s > 0 && elapsed() >= budget_s) {
      sum.stop_reason = "time budget";
      break;
    }
    const auto t_step = clock_type::now();
    const double lr = time_schedule ? cosine_lr_at_fraction(step, c.schedule.warmup_steps, elapsed() / budget_s, c.optimizer.lr, c.schedule.min_lr)
                                    : cosine_lr(step, c.schedule.warmup_steps, c.steps, c.optimizer.lr, c.schedule.min_lr);
    optim.zero_grad();
    double step_loss = 0;
    for (int64_t micro = 0; micro < c.batch.accumulation; ++micro) {
      LRNN_TRY(sample_batch(data.train, c.batch.sequences, c.batch.seq_len, c.seed, step, micro, ids, targets));
      if (c.bf16) {
        masters.clear();
        for (parameter& p : params) {
          LRNN_ASSIGN_OR_RETURN(tensor m, p.v.value().clone());
          masters.push_back(std::move(m));
          round_to_bf16(p.v.mutable_value());
        }
      }
      LRNN_ASSIGN_OR_RETURN(ag::var logits, model->forward(ids, models::compute_form::chunk));
      LRNN_ASSIGN_OR_RETURN(ag::var loss, ag::cross_entropy(logits, targets));
      const double lv = loss.value().to_doubles()[0];
      if (!std::isfinite(lv))
        return make_error(status_code::internal, "training diverged: loss is {} at step {} (try a lower optimizer.lr)", lv, step);
      step_loss += lv / static_cast<double>(c.batch.accumulation);
      LRNN_ASSIGN_OR_RETURN(ag::var scaled, ag::scale(loss, 1.0 / static_cast<double>(c.batch.accumulation)));
      LRNN_TRY(ag::backward(scaled));
      if (c.bf16)
        for (std::size_t i = 0; i < params.size(); ++i) LRNN_TRY(params[i].v.mutable_value().copy_from(masters[i]));
    }
    LRNN_ASSIGN_OR_RETURN(const double norm, clip_grad_norm(params, c.optimizer.grad_clip));
    LRNN_TRY(optim.step(lr));
    optim.zero_grad();
    ++step;
    tokens_total += tokens_per_step;
    run_tokens += tokens_per_step;
    interval_tokens += tokens_per_step;
    train_s += seconds_since(t_step);
    sum.step_losses.push_back(step_loss);
    sum.step_lrs.push_back(lr);
    interval_loss += step_loss;
    interval_norm += norm;
    ++interval_steps;

    const bool last_step = (c.steps > 0 && step >= c.steps) || (opt.stop_after_step > 0 && step >= opt.stop_after_step);
    const bool do_eval = (c.eval_interval > 0 && step % c.eval_interval == 0) || last_step;
    const bool do_log = step % c.log_interval == 0 || do_eval;
    const double tps = train_s > 0 ? static_cast<double>(run_tokens) / train_s : 0;
    if (opt.progress) prog.update(step, step_loss, lr, tps, elapsed(), false);
    if (do_log) {
      log_row r;
      r.step = step;
      r.tokens = tokens_total;
      r.elapsed_s = elapsed();
      r.lr = lr;
      r.train_loss = interval_loss / static_cast<double>(interval_steps);
      r.grad_norm = interval_norm / static_cast<double>(interval_steps);
      r.tokens_per_s = static_cast<double>(interval_tokens) / std::max(1e-9, seconds_since(t_interval));
      if (do_eval) {
        LRNN_ASSIGN_OR_RETURN(last_val, evaluate(*model, data, c));
        last_eval_step = step;
        r.val_loss = last_val;
        if (c.data.tokenizer == "byte" || data.val_bytes > 0) r.val_bits_per_byte = bits_per_byte(last_val);
      }
      LRNN_TRY(log.append(r));
      if (opt.progress) {
        prog.update(step, r.train_loss, lr, tps, elapsed(), true);
        if (do_eval)
          say(fmt::format("step {}: validation loss {:.4f} nats/token, perplexity {:.3f}, {:.4f} bits/byte", step, last_val, std::exp(last_val),
                          bits_per_byte(last_val)));
      }
      sum.train_loss = r.train_loss;
      interval_loss = interval_norm = 0;
      interval_steps = 0;
      interval_tokens = 0;
      t_interval = clock_type::now();
    }
    if (c.checkpoint_interval > 0 && step % c.checkpoint_interval == 0 && !last_step) LRNN_TRY(save(step));
    if (opt.stop_after_step > 0 && step >= opt.stop_after_step) {
      sum.stop_reason = "stop_after_step";
      break;
    }
  }
  if (last_eval_step != step) {  // stopped by the clock between evaluations
    if (interval_steps > 0) {
      log_row r;
      r.step = step;
      r.tokens = tokens_total;
      r.elapsed_s = elapsed();
      r.lr = sum.step_lrs.empty() ? 0 : sum.step_lrs.back();
      r.train_loss = interval_loss / static_cast<double>(interval_steps);
      r.grad_norm = interval_norm / static_cast<double>(interval_steps);
      r.tokens_per_s = static_cast<double>(interval_tokens) / std::max(1e-9, seconds_since(t_interval));
      LRNN_ASSIGN_OR_RETURN(last_val, evaluate(*model, data, c));
      r.val_loss = last_val;
      r.val_bits_per_byte = bits_per_byte(last_val);
      LRNN_TRY(log.append(r));
      sum.train_loss = r.train_loss;
      if (opt.progress)
        say(fmt::format("step {}: validation loss {:.4f} nats/token, perplexity {:.3f}, {:.4f} bits/byte", step, last_val, std::exp(last_val),
                        bits_per_byte(last_val)));
    } else if (step > 0 || resuming) {
      LRNN_ASSIGN_OR_RETURN(last_val, evaluate(*model, data, c));
    }
  }
  if (opt.progress) prog.finish();
  LRNN_TRY(save(step));
  sum.steps = step;
  sum.tokens = run_tokens;
  sum.val_loss = last_val;
  sum.val_ppl = std::exp(last_val);
  sum.val_bits_per_byte = bits_per_byte(last_val);
  sum.train_s = train_s;
  sum.tokens_per_s = train_s > 0 ? static_cast<double>(run_tokens) / train_s : 0;
  sum.model_gflops = sum.flops_per_token * sum.tokens_per_s / 1e9;
  if (opt.measure_sgemm) sum.sgemm_gflops = measure_sgemm_gflops();
  sum.elapsed_s = seconds_since(t_start);
  return sum;
}

}  // namespace lrnn::train
