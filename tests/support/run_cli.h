// Runs the `lrnn` binary built with the tests (LRNN_CLI_PATH) through the shell and collects what
// it prints: for the end-to-end CLI tests.
#pragma once

#include <array>
#include <cstdio>
#include <string>
#include <sys/wait.h>

namespace lrnn::testing {

struct run_result {
  int code = -1;    // exit status (-1: did not exit normally or could not start)
  std::string out;  // stdout and stderr together
};

inline run_result run_cli(const std::string& args) {
  const std::string cmd = std::string(LRNN_CLI_PATH) + " " + args + " 2>&1";
  run_result r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

}  // namespace lrnn::testing
