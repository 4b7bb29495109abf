// Atomic checkpoint writing and reading (checkpoint.h).
#include "train/checkpoint.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <stdio.h>  // renameat2, RENAME_EXCHANGE (glibc 2.28+)
#include <unistd.h>

namespace lrnn::train {

namespace fs = std::filesystem;

namespace {

std::function<status(const std::string&)>& fault_hook() {
  static std::function<status(const std::string&)> h;
  return h;
}

status fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) return make_error(status_code::io_error, "{}: cannot open for fsync ({})", path, std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && directory && (err == EINVAL || err == EROFS)) return {};  // some filesystems cannot sync folders
  if (rc != 0) return make_error(status_code::io_error, "{}: fsync failed ({})", path, std::strerror(err));
  return {};
}

std::string parent_of(const std::string& path) {
  const fs::path p = fs::path(path).parent_path();
  return p.empty() ? "." : p.string();
}

std::atomic<uint64_t> temp_counter{0};

result<std::string> read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error(status_code::not_found, "{}: cannot open ({})", path, std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

result<std::string> finish_checkpoint(const std::string& out_dir, const std::string& name, const std::string& final_dir, int64_t keep);

}  // namespace

void set_checkpoint_fault_hook(std::function<status(const std::string& file)> hook) { fault_hook() = std::move(hook); }

status write_file_atomic(const std::string& path, std::string_view bytes) {
  const std::string tmp = fmt::format("{}.tmp.{}.{}", path, ::getpid(), temp_counter++);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return make_error(status_code::io_error, "{}: cannot create ({})", tmp, std::strerror(errno));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return make_error(status_code::io_error, "{}: write failed ({})", tmp, std::strerror(err));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return make_error(status_code::io_error, "{}: fsync/close failed ({})", tmp, std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return make_error(status_code::io_error, "{}: rename to {} failed ({})", tmp, path, std::strerror(err));
  }
  return fsync_path(parent_of(path), true);
}

result<std::string> save_checkpoint(const std::string& out_dir, trainable_model& model, const checkpoint_contents& c, int64_t keep) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return make_error(status_code::io_error, "{}: cannot create ({})", out_dir, ec.message());
  const std::string last = out_dir + "/last";
  if (fs::exists(fs::symlink_status(last)) && !fs::is_symlink(fs::symlink_status(last)))
    return make_error(status_code::invalid_argument, "{}: exists and is not a symbolic link; not replacing it", last);
  // Leftovers of killed runs.
  for (const auto& e : fs::directory_iterator(out_dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind(".checkpoint-", 0) == 0 && n.find(".tmp-") != std::string::npos) fs::remove_all(e.path(), ec);
    if (n.rfind(".last.tmp-", 0) == 0) fs::remove(e.path(), ec);
  }

  const std::string name = fmt::format("checkpoint-{}", c.step);
  const std::string final_dir = out_dir + "/" + name;
  const std::string tmp_dir = fmt::format("{}/.{}.tmp-{}", out_dir, name, ::getpid());
  fs::remove_all(tmp_dir, ec);
  fs::create_directories(tmp_dir, ec);
  if (ec) return make_error(status_code::io_error, "{}: cannot create ({})", tmp_dir, ec.message());
  auto fail = [&](status s) -> status {
    std::error_code ec2;
    fs::remove_all(tmp_dir, ec2);
    return s;
  };
  auto hook = [&](const std::string& file) -> status { return fault_hook() ? fault_hook()(file) : status{}; };

  if (status s = save_trainable(model, tmp_dir); !s.ok()) return fail(s);
  if (status s = hook("model.safetensors"); !s.ok()) return fail(s);
  if (status s = write_file_atomic(tmp_dir + "/tokenizer.json", c.tokenizer_json); !s.ok()) return fail(s);
  if (status s = hook("tokenizer.json"); !s.ok()) return fail(s);
  if (status s = io::write_safetensors(tmp_dir + "/optimizer.safetensors", c.optimizer_state, {{"format", "lrnn-adamw-v1"}}); !s.ok())
    return fail(s);
  if (status s = hook("optimizer.safetensors"); !s.ok()) return fail(s);
  if (status s = write_file_atomic(tmp_dir + "/trainer_state.json", c.trainer_state.dump(1) + "\n"); !s.ok()) return fail(s);
  if (status s = hook("trainer_state.json"); !s.ok()) return fail(s);

  // Into place. An existing checkpoint of the same step (a rerun, e.g. `--resume` of a finished
  // run saves its last step again) may be what `last` points at: it is swapped with the new one
  // in one step (renameat2 RENAME_EXCHANGE), so that `last` never dangles; the old one then sits
  // under the temporary name and is removed (or, after a kill, removed by the next save as a
  // leftover). Only where the filesystem cannot exchange is the old one moved aside first, which
  // leaves a short window in which `last` names a missing folder.
  std::string aside;
  if (fs::exists(fs::symlink_status(final_dir))) {
    if (::renameat2(AT_FDCWD, tmp_dir.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) == 0) {
      LRNN_TRY(fsync_path(out_dir, true));
      LRNN_ASSIGN_OR_RETURN(std::string dir, finish_checkpoint(out_dir, name, final_dir, keep));
      fs::remove_all(tmp_dir, ec);  // now the old checkpoint
      return dir;
    }
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
      return fail(make_error(status_code::io_error, "{}: cannot exchange with {} ({})", tmp_dir, final_dir, std::strerror(errno)));
    aside = fmt::format("{}/.{}.old-{}.tmp-{}", out_dir, name, ::getpid(), temp_counter++);
    if (::rename(final_dir.c_str(), aside.c_str()) != 0)
      return fail(make_error(status_code::io_error, "{}: cannot move aside ({})", final_dir, std::strerror(errno)));
  }
  if (::rename(tmp_dir.c_str(), final_dir.c_str()) != 0) {
    const int err = errno;
    if (!aside.empty()) ::rename(aside.c_str(), final_dir.c_str());
    return fail(make_error(status_code::io_error, "{}: rename to {} failed ({})", tmp_dir, final_dir, std::strerror(err)));
  }
  LRNN_TRY(fsync_path(out_dir, true));
  LRNN_ASSIGN_OR_RETURN(std::string dir, finish_checkpoint(out_dir, name, final_dir, keep));
  if (!aside.empty()) fs::remove_all(aside, ec);
  return dir;
}

namespace {

// Points <out>/last at checkpoint `name` (symlink under a temporary name, rename over `last`,
// fsync of the folder), then keeps the `keep` newest numbered checkpoints (0 = all).
result<std::string> finish_checkpoint(const std::string& out_dir, const std::string& name, const std::string& final_dir, int64_t keep) {
  std::error_code ec;
  const std::string last = out_dir + "/last";
  const std::string last_tmp = fmt::format("{}/.last.tmp-{}", out_dir, ::getpid());
  ::unlink(last_tmp.c_str());
  if (::symlink(name.c_str(), last_tmp.c_str()) != 0)
    return make_error(status_code::io_error, "{}: cannot create link ({})", last_tmp, std::strerror(errno));
  if (::rename(last_tmp.c_str(), last.c_str()) != 0) {
    const int err = errno;
    ::unlink(last_tmp.c_str());
    return make_error(status_code::io_error, "{}: cannot replace ({})", last, std::strerror(err));
  }
  LRNN_TRY(fsync_path(out_dir, true));

  if (keep > 0) {
    std::vector<std::pair<int64_t, std::string>> numbered;
    for (const auto& e : fs::directory_iterator(out_dir, ec)) {
      const std::string n = e.path().filename().string();
      if (n.rfind("checkpoint-", 0) != 0 || !e.is_directory()) continue;
      char* end = nullptr;
      const long long s = std::strtoll(n.c_str() + 11, &end, 10);
      if (*end == '\0') numbered.emplace_back(s, e.path().string());
    }
    std::sort(numbered.begin(), numbered.end());
    // An old checkpoint is first renamed to a temporary name, then deleted: a kill in the middle
    // of deleting its files must not leave a half-deleted checkpoint under a final name (the next
    // save removes the leftover).
    for (std::size_t i = 0; i + static_cast<std::size_t>(keep) < numbered.size(); ++i) {
      if (numbered[i].second == final_dir) continue;
      const std::string doomed =
          fmt::format("{}/.{}.del-{}.tmp-{}", out_dir, fs::path(numbered[i].second).filename().string(), ::getpid(), temp_counter++);
      if (::rename(numbered[i].second.c_str(), doomed.c_str()) == 0) fs::remove_all(doomed, ec);
    }
  }
  return final_dir;
}

}  // namespace

result<loaded_checkpoint> load_checkpoint(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return make_error(status_code::not_found, "--resume '{}': no such checkpoint or output folder", path);
  loaded_checkpoint c;
  c.dir = path;
  if (!fs::exists(path + "/trainer_state.json") && fs::exists(path + "/last/trainer_state.json")) c.dir = path + "/last";
  if (!fs::exists(c.dir + "/trainer_state.json"))
    return make_error(status_code::not_found, "--resume '{}': not a training checkpoint (no trainer_state.json here or in last/)", path);
  c.dir = fs::canonical(c.dir, ec).string();
  LRNN_ASSIGN_OR_RETURN(c.trainer_state, io::read_json_file(c.dir + "/trainer_state.json"));
  if (!c.trainer_state.is_object() || !c.trainer_state.contains("step") || !c.trainer_state["step"].is_number_integer() ||
      !c.trainer_state.contains("config") || !c.trainer_state["config"].is_object())
    return make_error(status_code::parse_error, "{}/trainer_state.json: expected an object with integer 'step' and object 'config'", c.dir);
  LRNN_ASSIGN_OR_RETURN(c.tokenizer_json, read_text(c.dir + "/tokenizer.json"));
  LRNN_ASSIGN_OR_RETURN(const io::safetensors_file f, io::safetensors_file::open(c.dir + "/optimizer.safetensors"));
  for (const auto& info : f.tensors()) {
    LRNN_ASSIGN_OR_RETURN(tensor t, f.get(info.name));
    LRNN_ASSIGN_OR_RETURN(t, t.clone());
    c.optimizer_state.emplace_back(info.name, std::move(t));
  }
  return c;
}

}  // namespace lrnn::train
