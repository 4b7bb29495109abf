// Training checkpoints, written so that a kill at any moment never leaves a corrupt one:
//   <out>/checkpoint-<step>/   config.json, model.safetensors   (what `lrnn generate --model` reads)
//                              tokenizer.json                    (the training tokenizer)
//                              optimizer.safetensors             (AdamW m, v, step)
//                              trainer_state.json                (step, data position, RNG seed,
//                                                                 the resolved training config, history)
//   <out>/last -> checkpoint-<step>   (a symbolic link, replaced atomically)
// Every file is written to a temporary name, fsynced and renamed; the whole directory is
// first assembled as <out>/.checkpoint-<step>.tmp-<pid> and renamed into place only when
// complete, then `last` is switched with rename(2). A checkpoint saved again at the same step
// (e.g. `--resume` of a finished run) is swapped in with renameat2(RENAME_EXCHANGE), so `last`
// never names a missing folder; old checkpoints beyond `keep` are renamed to a temporary name
// before their files are deleted, so no half-deleted checkpoint is ever visible. Leftover
// temporary directories from a killed run are removed by the next save.
#pragma once

#include "io/json.h"
#include "io/safetensors.h"
#include "lrnn/status.h"
#include "train/trainable.h"

#include <functional>
#include <string>

namespace lrnn::train {

// Writes `bytes` to `path` atomically (temporary file in the same folder, fsync, rename, fsync
// of the folder). On error the temporary file is removed and `path` is untouched.
status write_file_atomic(const std::string& path, std::string_view bytes);

struct checkpoint_contents {
  int64_t step = 0;
  io::json trainer_state;  // written as trainer_state.json
  std::string tokenizer_json;
  io::named_tensors optimizer_state;
};

// Writes <out>/checkpoint-<step> and points <out>/last at it; keeps the `keep` newest numbered
// checkpoints (0 = all). Returns the checkpoint's path.
result<std::string> save_checkpoint(const std::string& out_dir, trainable_model& model, const checkpoint_contents& c, int64_t keep);

// For tests: called after each file of a checkpoint is written into the temporary directory
// (with the file's name); a non-ok status aborts the save as a write error would.
void set_checkpoint_fault_hook(std::function<status(const std::string& file)> hook);

struct loaded_checkpoint {
  std::string dir;  // the resolved checkpoint directory
  io::json trainer_state;
  std::string tokenizer_json;
  io::named_tensors optimizer_state;
};

// `path` is a checkpoint directory or an output directory with `last`. Errors name the file.
result<loaded_checkpoint> load_checkpoint(const std::string& path);

}  // namespace lrnn::train
