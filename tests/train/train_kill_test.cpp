// Checkpoints survive SIGKILL (issue #8): `lrnn train` runs as a child process on a tiny GLA with
// a checkpoint every step (keep 2) and is killed with SIGKILL at seeded pseudo-random moments,
// tied to the child's observed progress (a random gap of steps after its start point, plus a
// random fraction of the step time measured on the child), so that kills spread over the run
// and most land inside or around a checkpoint save whatever the machine's load. After every kill:
//   - every checkpoint under a final name (checkpoint-N/) is complete: models::load_model,
//     train::load_trainable and train::load_checkpoint read it, its optimizer state loads into
//     AdamW at the checkpoint's step, and no temporary file sits inside it; the data shards
//     described by data/data.json have their full size;
//   - out/last, when present, is a link to such a checkpoint (never dangling);
//   - a copy of the output folder resumed with `lrnn train --resume` runs to completion and ends
//     bit-identical to an uninterrupted run (same weights, optimizer state, per-step losses and
//     final validation loss).
// The killed run itself is resumed again and again (each resume killed too) and run to the end;
// then `--resume` of the finished run, which saves its last step again over the checkpoint that
// `last` points at, is killed during that save a few times. The end state equals the
// uninterrupted run's bit for bit. Prints where each kill landed.
#include "io/json.h"
#include "models/model.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"
#include "train/trainable.h"

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace {

namespace fs = std::filesystem;
using namespace lrnn;
using clock_type = std::chrono::steady_clock;

std::string read_text(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_text(const std::string& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

struct child_result {
  bool killed = false;  // SIGKILLed by us (false: it exited on its own first)
  int code = -1;        // exit status when not killed
  double seconds = 0;
  std::string out, err;
};

// Runs LRNN_CLI_PATH with `args`. While it runs, `poll` (optional) is called about every 0.2 ms
// with the elapsed seconds and the child's pid; when it returns true the child gets SIGKILL.
child_result run_cli(const std::vector<std::string>& args, const std::string& log_prefix,
                     const std::function<bool(double, pid_t)>& poll = nullptr) {
  std::vector<std::string> all = {LRNN_CLI_PATH};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string out_path = log_prefix + ".out", err_path = log_prefix + ".err";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  child_result r;
  pid_t pid = -1;
  const auto t0 = clock_type::now();
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    r.err = "posix_spawn failed";
    return r;
  }
  int st = 0;
  while (true) {
    const pid_t w = ::waitpid(pid, &st, poll ? WNOHANG : 0);
    if (w == pid) break;
    if (poll && poll(std::chrono::duration<double>(clock_type::now() - t0).count(), pid)) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &st, 0);
      r.killed = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  r.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
  if (!r.killed) r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = read_text(out_path);
  r.err = read_text(err_path);
  return r;
}

// What a run ends with, for bit-exact comparison.
struct final_state {
  std::string model_bytes, optimizer_bytes;
  std::vector<std::string> history;  // step, lr, train_loss, grad_norm, val_loss of each row, as JSON text
  int64_t step = -1;
};

final_state final_of(const std::string& out) {
  final_state f;
  f.model_bytes = read_text(out + "/last/model.safetensors");
  f.optimizer_bytes = read_text(out + "/last/optimizer.safetensors");
  auto ts = io::read_json_file(out + "/last/trainer_state.json");
  if (!ts.ok()) return f;
  f.step = ts.value().value("step", int64_t{-1});
  for (const auto& r : ts.value()["history"]) {
    io::json k = io::json::object();
    for (const char* key : {"step", "lr", "train_loss", "grad_norm", "val_loss"})
      if (r.contains(key)) k[key] = r[key];
    f.history.push_back(k.dump());
  }
  return f;
}

// Checks everything under a final name in `out`; returns "" or the first problem. `checkpoints`
// gets the steps of the numbered checkpoints found.
std::string check_output_folder(const std::string& out, std::vector<int64_t>* checkpoints) {
  std::error_code ec;
  if (!fs::exists(out)) return "";
  for (const auto& e : fs::directory_iterator(out, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("checkpoint-", 0) != 0) continue;
    const std::string dir = e.path().string();
    if (!fs::is_directory(e.symlink_status())) return dir + ": not a directory";
    for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "optimizer.safetensors", "trainer_state.json"})
      if (!fs::is_regular_file(dir + "/" + f)) return dir + ": missing " + f;
    for (const auto& g : fs::directory_iterator(dir, ec))
      if (g.path().filename().string().find(".tmp") != std::string::npos) return dir + ": temporary file " + g.path().string();
    auto m = models::load_model(dir);
    if (!m.ok()) return dir + ": load_model: " + m.error().message();
    auto t = train::load_trainable(dir);
    if (!t.ok()) return dir + ": load_trainable: " + t.error().message();
    auto ck = train::load_checkpoint(dir);
    if (!ck.ok()) return dir + ": load_checkpoint: " + ck.error().message();
    const int64_t step = ck.value().trainer_state["step"].get<int64_t>();
    if (n != "checkpoint-" + std::to_string(step)) return dir + ": trainer_state.json says step " + std::to_string(step);
    train::adamw opt(&t.value()->parameters(), {0.9, 0.95, 1e-8, 0.1});
    if (status s = opt.load_state(ck.value().optimizer_state); !s.ok()) return dir + ": optimizer state: " + s.message();
    if (opt.steps_done() != step) return dir + ": optimizer at step " + std::to_string(opt.steps_done());
    if (checkpoints) checkpoints->push_back(step);
  }
  const std::string last = out + "/last";
  if (fs::exists(fs::symlink_status(last))) {
    if (!fs::is_symlink(fs::symlink_status(last))) return last + ": not a symbolic link";
    const std::string target = fs::read_symlink(last, ec).string();
    if (target.rfind("checkpoint-", 0) != 0) return last + " -> " + target + ": not a numbered checkpoint";
    if (!fs::is_directory(out + "/" + target)) return last + " -> " + target + ": dangling";
  }
  // Data shards: once data.json (written last) exists, the shards it describes are whole.
  if (fs::exists(out + "/data/data.json")) {
    auto meta = io::read_json_file(out + "/data/data.json");
    if (!meta.ok()) return out + "/data/data.json: " + meta.error().message();
    const int64_t width = meta.value().value("dtype", "") == "uint16" ? 2 : 4;
    for (const char* s : {"train", "val"}) {
      const int64_t want = meta.value().value(std::string(s) + "_tokens", int64_t{-1}) * width;
      const auto got = static_cast<int64_t>(fs::file_size(out + "/data/" + s + ".bin", ec));
      if (got != want) return out + "/data/" + s + ".bin: " + std::to_string(got) + " bytes, data.json says " + std::to_string(want);
    }
  }
  return "";
}

// Where a kill landed, from what it left behind.
std::string landing(const std::string& out) {
  std::error_code ec;
  bool tmp_dir = false, tmp_link = false;
  if (fs::exists(out))
    for (const auto& e : fs::directory_iterator(out, ec)) {
      const std::string n = e.path().filename().string();
      if (n.rfind(".checkpoint-", 0) == 0 && n.find(".tmp-") != std::string::npos) tmp_dir = true;
      if (n.rfind(".last.tmp-", 0) == 0) tmp_link = true;
    }
  if (tmp_dir) return "inside a checkpoint save (temporary folder left)";
  if (tmp_link) return "between the new link and its rename over last";
  if (!fs::exists(fs::symlink_status(out + "/last"))) return "before the first checkpoint";
  return "outside a checkpoint's temporary folder (training step, log, link swap or cleanup)";
}

TEST(TrainKill, SigkillAtRandomMomentsNeverCorruptsAndResumesBitExact) {
  const fs::path dir = fs::temp_directory_path() / ("lrnn_kill_test_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string d = dir.string();
  {
    std::string s;
    const char* lines[] = {"the cat sat on the mat.\n", "a dog ate the bone.\n", "the sun is hot today.\n", "we like to read books.\n"};
    for (int i = 0; i < 600; ++i) s += lines[(i * 7 + i / 3) % 4];
    write_text(d + "/c.txt", s);
  }
  const int64_t steps = 30;
  io::json cfg = {
      {"model",
       {{"model_type", "gla"}, {"hidden_size", 16}, {"num_hidden_layers", 1}, {"num_heads", 2}, {"intermediate_size", 32}, {"gate_low_rank_dim", 4},
        {"tie_word_embeddings", false}}},
      {"data", {{"path", d + "/c.txt"}}},
      {"batch", {{"sequences", 2}, {"seq_len", 32}, {"accumulation", 1}}},
      {"steps", steps},  // a step-based schedule: the learning rate of a step does not depend on time
      {"schedule", {{"warmup_steps", 2}, {"min_lr", 1e-3}}},
      {"optimizer", {{"lr", 1e-2}}},
      {"eval", {{"interval", 0}, {"batches", 1}}},
      {"checkpoint", {{"interval", 1}, {"keep", 2}}},  // every step; keep 2 exercises the cleanup of old ones
      {"log", {{"interval", 1}}},
      {"threads", 1}};
  write_text(d + "/cfg.json", cfg.dump(1));
  auto fresh_args = [&](const std::string& out) {
    return std::vector<std::string>{"--threads", "1", "train", "--config", d + "/cfg.json", "--out", out, "--quiet", "--json"};
  };
  auto resume_args = [&](const std::string& out) {
    return std::vector<std::string>{"--threads", "1", "train", "--resume", out, "--quiet", "--json"};
  };
  // Resumes (or starts, when no checkpoint was made yet) the run in `out`.
  auto continue_args = [&](const std::string& out) {
    return fs::exists(fs::symlink_status(out + "/last")) ? resume_args(out) : fresh_args(out);
  };
  auto val_loss_of = [](const child_result& r) -> std::string {
    auto j = io::parse_json(r.out, "train --json");
    return j.ok() && j.value().contains("val_loss") ? j.value()["val_loss"].dump() : "(none: " + r.out + ")";
  };

  // The uninterrupted run, watched: when its first checkpoint and its last appear.
  double t_first = -1, t_final = -1;
  const std::string final_name = "checkpoint-" + std::to_string(steps);
  const child_result ref = run_cli(fresh_args(d + "/ref"), d + "/ref", [&](double t, pid_t) {
    std::error_code ec;
    const std::string target = fs::read_symlink(d + "/ref/last", ec).string();
    if (ec) return false;
    if (t_first < 0) t_first = t;
    if (t_final < 0 && target == final_name) t_final = t;
    return false;
  });
  ASSERT_EQ(ref.code, 0) << ref.err;
  const final_state want = final_of(d + "/ref");
  ASSERT_EQ(want.step, steps);
  ASSERT_EQ(want.history.size(), static_cast<std::size_t>(steps));
  const std::string want_val = val_loss_of(ref);
  const double t_ref = ref.seconds;
  ASSERT_GT(t_first, 0);
  ASSERT_GE(t_final, t_first);

  std::mt19937_64 rng(20260523);
  std::map<std::string, int> landed;
  int kills = 0, kills_in_save = 0, verified = 0;
  std::vector<std::string> trace;
  const std::string out = d + "/out";
  auto after_kill = [&](int i, const std::string& when) {
    const std::string where = landing(out);
    ++landed[where];
    if (where.rfind("inside", 0) == 0) ++kills_in_save;
    std::vector<int64_t> cks;
    const std::string problem = check_output_folder(out, &cks);
    ASSERT_EQ(problem, "") << "after kill " << i;
    std::string last = fs::exists(fs::symlink_status(out + "/last")) ? fs::read_symlink(out + "/last").string() : "(none)";
    trace.push_back(fmt::format("kill {} ({}): last -> {}; {}", i, when, last, where));
    // A copy of this state resumed to the end gives the uninterrupted run's result.
    const std::string copy = fmt::format("{}/copy{}", d, i);
    fs::create_directories(copy);
    if (fs::exists(out)) fs::copy(out, copy, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    const child_result r = run_cli(continue_args(copy), copy);
    ASSERT_EQ(r.code, 0) << "resume after kill " << i << ":\n" << r.err;
    ASSERT_EQ(check_output_folder(copy, nullptr), "");
    const final_state got = final_of(copy);
    EXPECT_EQ(got.step, steps) << "kill " << i;
    EXPECT_EQ(got.history, want.history) << "kill " << i;
    EXPECT_TRUE(got.model_bytes == want.model_bytes) << "kill " << i << ": final weights differ";
    EXPECT_TRUE(got.optimizer_bytes == want.optimizer_bytes) << "kill " << i << ": final optimizer state differs";
    EXPECT_EQ(val_loss_of(r), want_val) << "kill " << i;
    ++verified;
    fs::remove_all(copy);
  };

  // Kill moments are seeded but tied to the child's progress, not to the clock alone (a loaded
  // machine changes the speed several-fold): the first incarnation is killed during its start-up
  // (data preparation, before any checkpoint); each later one a random 0-1.5 step times after
  // `last` reached its start step + a random gap of 0-6 steps (0: during start-up), the step time
  // being measured on the child itself, so that eight
  // resumes cover about the whole run and most kills land inside or around a checkpoint save.
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const double step_s = (t_final - t_first) / static_cast<double>(steps - 1);
  auto last_step = [&](const std::string& o) -> int64_t {
    std::error_code ec;
    const std::string t = fs::read_symlink(o + "/last", ec).string();
    return ec || t.rfind("checkpoint-", 0) != 0 ? -1 : std::strtoll(t.c_str() + 11, nullptr, 10);
  };
  // The current step time, from the child being watched (the machine's speed changes under load):
  // updated whenever `last` is seen to advance by one step.
  double live_step_s = step_s;
  struct watch_state {
    int64_t seen = -2;
    double at = -1;
  };
  auto watch_last = [&](const std::shared_ptr<watch_state>& w, double t) {
    const int64_t now = last_step(out);
    if (now != w->seen) {
      if (w->seen >= 0 && now == w->seen + 1 && w->at >= 0) live_step_s = t - w->at;
      w->seen = now;
      w->at = t;
    }
    return now;
  };
  // Kills once `ready(t, pid)` holds and then u * 1.5 current step times have passed.
  auto kill_when = [&](std::function<bool(double, pid_t)> ready, double u, double* jitter_out) {
    auto armed = std::make_shared<double>(-1.0);
    return [ready, u, armed, jitter_out, &live_step_s](double t, pid_t pid) {
      if (*armed < 0 && ready(t, pid)) {
        *armed = t;
        *jitter_out = u * 1.5 * live_step_s;
      }
      return *armed >= 0 && t >= *armed + *jitter_out;
    };
  };
  bool finished = false;
  int attempt = 0;
  for (; kills < 9 && !finished && attempt < 14; ++attempt) {
    const int i = attempt;
    std::function<bool(double, pid_t)> poll;
    std::string when;
    double jitter = 0;
    if (i == 0) {
      const double delay = 0.9 * t_first * unit(rng);
      poll = [delay](double t, pid_t) { return t >= delay; };
      when = fmt::format("{:.0f} ms after start", delay * 1000);
    } else {
      const int64_t from = std::max<int64_t>(last_step(out), 0), gap = std::uniform_int_distribution<int64_t>(0, 6)(rng);
      auto w = std::make_shared<watch_state>();
      poll = kill_when([&, w, from, gap](double t, pid_t) { return watch_last(w, t) >= from + gap || gap == 0; }, unit(rng), &jitter);
      when = fmt::format("after last reached step {}", from + gap);
    }
    const child_result r = run_cli(continue_args(out), fmt::format("{}/run{}", d, i), poll);
    if (i > 0) when = fmt::format("{:.1f} ms {}", jitter * 1000, when);
    if (!r.killed) {
      ASSERT_EQ(r.code, 0) << r.err;
      finished = true;
      trace.push_back(fmt::format("run {} finished before its kill ({})", i, when));
      break;
    }
    ++kills;
    after_kill(i, when);
    if (HasFatalFailure()) return;
  }
  if (!finished) {
    const child_result r = run_cli(continue_args(out), d + "/final");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(val_loss_of(r), want_val);
    trace.push_back("resumed to the end");
  }
  // `--resume` of the finished run evaluates and saves its last step again, over the checkpoint
  // that `last` points at: killed a random 0-1.5 step times after its save began (its temporary
  // folder appeared).
  for (int tries = 0; kills < 12 && tries < 8; ++tries, ++attempt) {
    const int i = attempt;
    double jitter = 0;
    const std::string tmp_prefix = fmt::format("{}/.checkpoint-{}.tmp-", out, steps);
    auto poll = kill_when([tmp_prefix](double, pid_t pid) { return fs::exists(tmp_prefix + std::to_string(pid)); }, unit(rng), &jitter);
    const child_result r = run_cli(resume_args(out), fmt::format("{}/run{}", d, i), poll);
    const std::string when = fmt::format("{:.1f} ms after the save of step {} began", jitter * 1000, steps);
    if (!r.killed) {
      ASSERT_EQ(r.code, 0) << r.err;
      trace.push_back(fmt::format("resume {} of the finished run exited before its kill ({})", i, when));
      continue;
    }
    ++kills;
    after_kill(i, when);
    if (HasFatalFailure()) return;
  }
  const child_result fin = run_cli(resume_args(out), d + "/final2");
  ASSERT_EQ(fin.code, 0) << fin.err;
  ASSERT_EQ(check_output_folder(out, nullptr), "");
  const final_state got = final_of(out);
  EXPECT_EQ(got.step, steps);
  EXPECT_EQ(got.history, want.history);
  EXPECT_TRUE(got.model_bytes == want.model_bytes) << "final weights differ from the uninterrupted run's";
  EXPECT_TRUE(got.optimizer_bytes == want.optimizer_bytes) << "final optimizer state differs from the uninterrupted run's";
  EXPECT_EQ(val_loss_of(fin), want_val) << "final validation loss differs from the uninterrupted run's";

  std::string summary = fmt::format(
      "uninterrupted run {:.2f} s (first checkpoint at {:.2f} s, last at {:.2f} s); {} kills ({} inside a checkpoint save), {} resumed copies "
      "verified\n",
      t_ref, t_first, t_final, kills, kills_in_save, verified);
  for (const auto& t : trace) summary += "  " + t + "\n";
  std::printf("%s", summary.c_str());
  EXPECT_GE(kills, 10) << summary;
  EXPECT_GE(kills_in_save, 1) << summary;
  fs::remove_all(dir);
}

}  // namespace
