/* lrnn C ABI: the decay_attn operator and the CUDA allocator for other languages (Python ctypes,
 * Rust, ...), on raw pointers. Every function returns an lrnn_status (0 = LRNN_OK); after an error
 * lrnn_last_error() holds the message of the calling thread's last failure. Nothing aborts on bad
 * input. Pointers are device pointers when `device` >= 0 (CUDA device index; work goes on that
 * device's current stream, see lrnn_cuda_set_stream) and host pointers when `device` is -1 (the
 * CPU implementation). Activations are contiguous [B, T, H, D] (D fastest), states fp32. */
#ifndef LRNN_LRNN_H_
#define LRNN_LRNN_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LRNN_ABI_VERSION 3

typedef enum lrnn_status {
  LRNN_OK = 0,
  LRNN_ERROR_INVALID_ARGUMENT = 1,
  LRNN_ERROR_NOT_FOUND = 2,
  LRNN_ERROR_IO = 3,
  LRNN_ERROR_PARSE = 4,
  LRNN_ERROR_UNSUPPORTED = 5, /* valid but not implemented here (e.g. no CUDA kernel for it) */
  LRNN_ERROR_OUT_OF_MEMORY = 6,
  LRNN_ERROR_INTERNAL = 7
} lrnn_status;

typedef enum lrnn_dtype { LRNN_F32 = 0, LRNN_BF16 = 1, LRNN_F16 = 2 } lrnn_dtype;

typedef enum lrnn_decay_kind {
  LRNN_DECAY_NONE = 0,
  LRNN_DECAY_PER_HEAD_CONST = 1,   /* g [H] */
  LRNN_DECAY_PER_TOKEN_SCALAR = 2, /* g [B, T, H] */
  LRNN_DECAY_PER_TOKEN_KEY = 3     /* g [B, T, H, K] */
} lrnn_decay_kind;

typedef enum lrnn_input_gate_kind {
  LRNN_INPUT_GATE_NONE = 0,
  LRNN_INPUT_GATE_EXPONENTIAL = 1, /* mLSTM: i is the pre-activation, stabiliser m in the state */
  LRNN_INPUT_GATE_SIGMOID = 2      /* i is the log input gate */
} lrnn_input_gate_kind;

/* Named models of the family; lrnn_decay_attn_spec_for fills the matching spec. */
typedef enum lrnn_decay_attn_variant {
  LRNN_VARIANT_RETNET = 0,     /* per_head_const */
  LRNN_VARIANT_SIMPLE_GLA = 1, /* per_token_scalar (Mamba-2 style) */
  LRNN_VARIANT_GLA = 2,        /* per_token_key */
  LRNN_VARIANT_RWKV6 = 3,      /* per_token_key + bonus u, scale 1 */
  LRNN_VARIANT_MLSTM = 4,      /* per_token_scalar + exponential input gate + normaliser */
  LRNN_VARIANT_MLSTM_SIG = 5   /* per_token_scalar + sigmoid input gate + normaliser */
} lrnn_decay_attn_variant;

typedef struct lrnn_decay_attn_spec {
  int32_t decay;      /* lrnn_decay_kind */
  int32_t bonus;      /* 0 / 1 */
  int32_t input_gate; /* lrnn_input_gate_kind */
  int32_t normalizer; /* 0 / 1 */
  double scale;       /* q scaling; <= 0 means 1/sqrt(K) */
  double eps;         /* normaliser epsilon (1e-6) */
} lrnn_decay_attn_spec;

/* The tensors of one call. q, k [B, T, H, K] and v [B, T, H, V] in `dtype`; g, i, u in
 * `gate_dtype` (LRNN_F32 usually): g as its decay kind says, i [B, T, H], u [H, K]; null where
 * the spec has none. With cu_seqlens (int32 [N + 1], on the same device) B must be 1 and the N
 * sequences are packed along T; without, N = B. chunk_size: tokens per chunk (0: 64). */
typedef struct lrnn_decay_attn_args {
  int64_t B, T, H, K, V;
  int32_t dtype;      /* lrnn_dtype */
  int32_t gate_dtype; /* lrnn_dtype */
  int32_t device;     /* CUDA device index, or -1: host pointers */
  int32_t reserved;
  const void* q;
  const void* k;
  const void* v;
  const void* g;
  const void* i;
  const void* u;
  const int32_t* cu_seqlens;
  int64_t N; /* sequences when cu_seqlens is given */
  int64_t chunk_size;
  /* The normaliser's saved forward (specs with the normaliser; null otherwise or to opt out): the
   * forward writes den (fp32 [B, T, H], s n_t . q_t) there; the backward reads den and fwd_o (the
   * forward's o, in `dtype`) and then need not recompute the forward. Both or neither. */
  float* den;
  const void* fwd_o;
  /* The forward's context for the backward (CUDA; null to opt out): ctx_bytes bytes of device memory,
   * as lrnn_decay_attn_ctx_bytes gives (0: nothing to keep, ctx may be null). The forward writes it;
   * the backward of the same inputs reads it instead of recomputing what it holds (mLSTM's stabiliser,
   * the states at the segment boundaries of long sequences). Only its size is checked. */
  void* ctx;
  int64_t ctx_bytes;
} lrnn_decay_attn_args;

/* Optional fp32 states: s [N, H, K, V], n [N, H, K] (normaliser), m [N, H] (exponential gate). */
typedef struct lrnn_decay_attn_state {
  float* s;
  float* n;
  float* m;
} lrnn_decay_attn_state;

typedef struct lrnn_memory_stats {
  uint64_t bytes_in_use;
  uint64_t peak_bytes_in_use;
  uint64_t bytes_cached;
  uint64_t bytes_reserved;
  uint64_t num_cuda_malloc;
  uint64_t num_reused;
  uint64_t num_cuda_free;
} lrnn_memory_stats;

const char* lrnn_version(void);    /* "0.1.0" */
int32_t lrnn_abi_version(void);    /* LRNN_ABI_VERSION */
const char* lrnn_last_error(void); /* "" when the thread's last call succeeded */
int32_t lrnn_cuda_built(void);
int32_t lrnn_cuda_device_count(void);

int32_t lrnn_decay_attn_spec_for(int32_t variant, lrnn_decay_attn_spec* spec);

/* Bytes of args->ctx for these args (ctx, ctx_bytes themselves ignored) into *bytes: 0 on the CPU and
 * where the forward keeps nothing. */
int32_t lrnn_decay_attn_ctx_bytes(const lrnn_decay_attn_spec* spec, const lrnn_decay_attn_args* args, int64_t* bytes);

/* Chunk-form forward: o [B, T, H, V] in `dtype`. initial_state / final_state may be null (absent:
 * zeros / not written); their n, m are needed as the spec says. On a CUDA device the kernels write
 * o (and the backward dq, dk, dv) in place, so these must not overlap the inputs. */
int32_t lrnn_decay_attn_forward(const lrnn_decay_attn_spec* spec, const lrnn_decay_attn_args* args,
                                const lrnn_decay_attn_state* initial_state, void* o,
                                lrnn_decay_attn_state* final_state);

/* Backward: d_o like o; d_final_state may be null or hold null parts (zero upstream gradient).
 * dq, dk, dv in `dtype` (like q, k, v); dg (like g), di, du in fp32, null where the spec has none;
 * d_initial_state (fp32) written when initial_state and it are given. */
int32_t lrnn_decay_attn_backward(const lrnn_decay_attn_spec* spec, const lrnn_decay_attn_args* args,
                                 const lrnn_decay_attn_state* initial_state, const void* d_o,
                                 const lrnn_decay_attn_state* d_final_state, void* dq, void* dk, void* dv, float* dg,
                                 float* di, float* du, lrnn_decay_attn_state* d_initial_state);

/* One decoding step for B sequences: q, k [B, H, K], v [B, H, V] in `dtype`; g [B, H, K] /
 * [B, H] / [H], i [B, H], u [H, K] in `gate_dtype`; the state (s required, n, m as the spec says)
 * is updated in place; o [B, H, V] in `dtype`. */
int32_t lrnn_decay_attn_step(const lrnn_decay_attn_spec* spec, int32_t dtype, int32_t gate_dtype, int32_t device,
                             int64_t B, int64_t H, int64_t K, int64_t V, const void* q, const void* k, const void* v,
                             const void* g, const void* i, const void* u, lrnn_decay_attn_state* state, void* o);

/* The CUDA caching allocator of a device. */
int32_t lrnn_cuda_memory_stats(int32_t device, lrnn_memory_stats* stats);
int32_t lrnn_cuda_empty_cache(int32_t device); /* frees cached blocks (cudaFree) */
/* Sets the calling thread's current stream on a device (a cudaStream_t; null: the default
 * stream), e.g. torch.cuda.current_stream().cuda_stream. */
int32_t lrnn_cuda_set_stream(int32_t device, void* stream);
int32_t lrnn_cuda_synchronize(int32_t device);

#ifdef __cplusplus
}
#endif

#endif /* LRNN_LRNN_H_ */
