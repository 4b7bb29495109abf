// The CLI's subcommand table. Each subcommand lives in its own file and registers itself
// with LRNN_CLI_COMMAND; main.cpp builds the CLI11 app from this table.
#pragma once

#include "lrnn/status.h"

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace lrnn::cli {

// Global options every subcommand sees (set before run()).
struct global_options {
  int threads = 0;  // 0: all hardware threads
  std::string log_level = "warn";
};

// setup() declares the subcommand's options on `app` and returns the function that runs it.
// The runner returns a status; main prints an error status as one line and exits non-zero.
using runner = std::function<status()>;
using setup_fn = std::function<runner(CLI::App& app, const global_options& globals)>;

struct command {
  std::string name;
  std::string description;
  setup_fn setup;
};

std::vector<command>& command_table();

struct command_registration {
  command_registration(std::string name, std::string description, setup_fn setup) {
    command_table().push_back({std::move(name), std::move(description), std::move(setup)});
  }
};

}  // namespace lrnn::cli

#define LRNN_CLI_COMMAND(ident, name, description, setup) \
  static ::lrnn::cli::command_registration lrnn_cli_cmd_##ident(name, description, setup)
