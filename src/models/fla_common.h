// Pieces shared by the fla-format models (GLA, RetNet, Gated DeltaNet, RWKV-7): pre-norm
// residual blocks, the gated (SwiGLU) MLP, short convolutions, embeddings and the LM head,
// and the mapping of a model-level compute_form onto an op's form.
#pragma once

#include "models/model.h"
#include "models/weights.h"
#include "ops/conv1d/conv1d.h"
#include "ops/decay_attn/decay_attn.h"

#include <functional>
#include <memory>
#include <string>

namespace lrnn::models::fla {

// The gated MLP's intermediate size (see gated_mlp) and a why-string for shape errors.
result<std::pair<int64_t, std::string>> mlp_intermediate_size(const io::config& c, int64_t hidden);

// Rejects the fla LM options not supported yet: hybrid softmax attention layers ('attn'),
// attnres_block_size, use_l2warp=true.
status check_lm_options(const io::config& c);

// fla's GatedMLP: down(silu(gate(x)) * up(x)); intermediate_size from the config or
// 256-rounded 2/3 * hidden_ratio * hidden_size.
struct gated_mlp {
  tensor gate, up, down;
  static result<gated_mlp> load(weight_loader& w, const io::config& c, const std::string& prefix, int64_t hidden);
  result<tensor> forward(const tensor& x) const;
};

// fla's ShortConvolution (depthwise causal conv + optional SiLU): torch weight [C, 1, W]
// loaded as [W, C]; the cache lives in the model state under `key`.
struct short_conv {
  tensor weight, bias;
  int64_t channels = 0, width = 0;
  static result<short_conv> load(weight_loader& w, const std::string& prefix, int64_t channels, int64_t width, bool bias);
  // x [B, T, C]; updates state.tensors[key] ([B, W - 1, C]).
  result<tensor> forward(const tensor& x, model_state& st, const std::string& key) const;
};

// Embedding, final RMSNorm and LM head (tied to the embedding when the config says so).
struct lm_frame {
  tensor embed, final_norm, lm_head;
  double norm_eps = 1e-6;
  static result<lm_frame> load(weight_loader& w, const io::config& c, int64_t vocab, int64_t hidden, double eps);
  result<tensor> embed_tokens(const tensor& ids) const;
  result<tensor> logits(const tensor& h) const;  // [B, T, D] -> [B, T, vocab]
  // What a token reads beyond the weight_loader's count minus the table: one row, and the
  // table again when the head is tied to it.
  uint64_t bytes_not_loaded_per_token() const;
};

result<tensor> rms_norm(const tensor& x, const tensor& w, double eps);

// fla's mixer output stage: per-head RMSNorm of o ([B, T, heads * V]; weight [V] or undefined),
// times silu(x g_proj^T) when g_proj is defined, then o_proj.
result<tensor> gated_head_output(const tensor& o, int64_t heads, const tensor& norm_w, double eps, const tensor& x,
                                 const tensor& g_proj, const tensor& o_proj);

// automatic -> recurrent for one token, parallel for a few, chunk otherwise.
ops::decay_attn_form decay_form(compute_form f, int64_t T);

// Reads `key` from the state or makes zeros of `shape` (f32).
result<tensor> state_tensor(model_state& st, const std::string& key, const shape_t& shape);

// Checks the ids tensor: int64 [B, T] on CPU with B == state batch.
status check_ids(const tensor& ids, const model_state& st, int64_t vocab);

}  // namespace lrnn::models::fla

namespace lrnn::models::fla {

// A token mixer of an fla block (GLA attention, retention, gated delta net, ...). State
// tensors live in the model_state under the layer prefix ("layers.3.").
class mixer {
 public:
  virtual ~mixer() = default;
  // Adds the zero state of `batch` sequences under `prefix`.
  virtual status init_state(model_state& st, int64_t batch, const std::string& prefix) const = 0;
  // x [B, T, D] (already normed) -> [B, T, D]; advances the state.
  virtual result<tensor> forward(const tensor& x, model_state& st, const std::string& prefix, compute_form form) const = 0;
};

// The fla causal LM: embeddings -> N x (x += mixer(norm(x)); x += mlp(norm(x))) -> norm -> head.
class causal_lm final : public model {
 public:
  struct layer {
    tensor attn_norm, mlp_norm;
    std::unique_ptr<mixer> mix;
    gated_mlp mlp;
  };
  using mixer_loader = std::function<result<std::unique_ptr<mixer>>(weight_loader& w, const std::string& prefix)>;

  // Loads frame, norms and MLPs; `load_mixer` loads each layer's mixer from "model.layers.{i}.attn.".
  static result<std::unique_ptr<model>> build(const load_context& ctx, const std::string& type, const mixer_loader& load_mixer);

  const std::string& model_type() const override { return type_; }
  int64_t vocab_size() const override { return vocab_; }
  uint64_t weight_bytes() const override { return weight_bytes_; }
  result<model_state> initial_state(int64_t batch) const override;
  result<tensor> forward(const tensor& ids, model_state& st, compute_form form) override;

 private:
  std::string type_;
  int64_t vocab_ = 0;
  double eps_ = 1e-6;
  lm_frame frame_;
  std::vector<layer> layers_;
  uint64_t weight_bytes_ = 0;
};

// Rotary embedding as fla's RotaryEmbedding (half-split, base 10000, rotary dim = head dim):
// x [B, T, H, D] rotated in place for positions start[b] + t.
void apply_rotary(tensor& x, const std::vector<int64_t>& start, double base);

// Per-sequence token counters kept in the state as "<key>" i64 [B].
result<std::vector<int64_t>> positions(model_state& st, const std::string& key, int64_t batch);
void advance_positions(model_state& st, const std::string& key, int64_t by);

}  // namespace lrnn::models::fla
