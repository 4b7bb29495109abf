// `lrnn`: the command-line tool. Subcommands register themselves (command.h); this file
// adds the global options, parses, runs the chosen subcommand and maps errors to exit codes.
#include "command.h"

#include "lrnn/log.h"
#include "lrnn/threads.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace lrnn::cli {

std::vector<command>& command_table() {
  static std::vector<command> table;
  return table;
}

// Exit codes: 0 ok, 1 runtime error (bad file, bad input), 2 usage error (CLI11's own).
static int exit_code_for(const status& s) {
  switch (s.code()) {
    case status_code::ok: return 0;
    case status_code::invalid_argument:
    case status_code::not_found:
    case status_code::io_error:
    case status_code::parse_error:
    case status_code::unsupported:
    case status_code::out_of_memory:
    case status_code::internal: return 1;
  }
  return 1;
}

static int run_main(int argc, char** argv) {
  CLI::App app{"lrnn: linear-recurrent language models (RetNet, GLA, RWKV, Griffin, xLSTM, DeltaNet) "
               "in native code.\nRun `lrnn <command> --help` for each command's options."};
  app.set_version_flag("--version", std::string("lrnn ") + LRNN_VERSION);
  app.require_subcommand(1);
  global_options globals;
  app.add_option("--threads", globals.threads, "CPU threads for compute (0 = all cores)")
      ->check(CLI::NonNegativeNumber)
      ->envname("LRNN_THREADS");
  app.add_option("--log-level", globals.log_level, "error | warn | info | debug")
      ->check(CLI::IsMember({"error", "warn", "info", "debug"}));

  auto& table = command_table();
  std::sort(table.begin(), table.end(), [](const command& a, const command& b) { return a.name < b.name; });
  std::vector<std::pair<CLI::App*, runner>> runners;
  for (const command& c : table) {
    CLI::App* sub = app.add_subcommand(c.name, c.description);
    runners.emplace_back(sub, c.setup(*sub, globals));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);  // prints help, version or the usage error
    return rc == 0 ? 0 : 2;
  }
  set_log_level(*log_level_from_name(globals.log_level));
  set_num_threads(globals.threads);
  for (auto& [sub, run] : runners) {
    if (!sub->parsed()) continue;
    const status s = run();
    if (!s.ok()) {
      std::fprintf(stderr, "lrnn %s: error: %s\n", sub->get_name().c_str(), s.message().c_str());
      return exit_code_for(s);
    }
    return 0;
  }
  return 2;
}

}  // namespace lrnn::cli

// Training mixes OpenMP loops with OpenBLAS's own threads. With libgomp's default wait policy the
// OpenMP workers keep spinning after each parallel region and take the cores OpenBLAS needs: a
// 2-thread training step measured 834 ms spinning vs 244 ms passive (bench/training_step.md).
// libgomp reads OMP_WAIT_POLICY when it is loaded, before main, so for the training commands the
// tool sets it and re-executes itself once — unless the user chose a policy. Decoding keeps the
// default (its many short parallel regions were measured with it).
static void use_passive_openmp_wait_for_training(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  bool training = false;
  for (char** a = argv + 1; *a != nullptr; ++a)
    training = training || std::strcmp(*a, "train") == 0 || std::strcmp(*a, "train-step") == 0;
  if (!training) return;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: then run on with the default policy
}

int main(int argc, char** argv) {
  use_passive_openmp_wait_for_training(argv);
  return lrnn::cli::run_main(argc, argv);
}
