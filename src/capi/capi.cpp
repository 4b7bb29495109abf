// The C ABI (include/lrnn/lrnn.h): raw pointers wrapped as non-owning tensors, the C++ entry
// points called, results copied into the caller's buffers, every failure turned into a status
// code plus a per-thread message. No C++ exception or abort crosses the boundary on bad input.
#include "lrnn/lrnn.h"

#include "backend/cuda/cuda_backend.h"
#include "ops/decay_attn/decay_attn.h"

#include <exception>
#include <string>

namespace lrnn::capi {
namespace {

thread_local std::string t_last_error;

int32_t code_of(status_code c) {
  switch (c) {
    case status_code::ok: return LRNN_OK;
    case status_code::invalid_argument: return LRNN_ERROR_INVALID_ARGUMENT;
    case status_code::not_found: return LRNN_ERROR_NOT_FOUND;
    case status_code::io_error: return LRNN_ERROR_IO;
    case status_code::parse_error: return LRNN_ERROR_PARSE;
    case status_code::unsupported: return LRNN_ERROR_UNSUPPORTED;
    case status_code::out_of_memory: return LRNN_ERROR_OUT_OF_MEMORY;
    case status_code::internal: return LRNN_ERROR_INTERNAL;
  }
  return LRNN_ERROR_INTERNAL;
}

int32_t finish(const status& s) {
  if (s.ok()) {
    t_last_error.clear();
    return LRNN_OK;
  }
  t_last_error = s.message();
  return code_of(s.code());
}

template <typename F>
int32_t guarded(const char* what, F&& f) {
  try {
    return finish(f());
  } catch (const std::exception& e) {
    return finish(status(status_code::internal, std::string(what) + ": " + e.what()));
  } catch (...) {
    return finish(status(status_code::internal, std::string(what) + ": unknown C++ exception"));
  }
}

result<dtype> dtype_from(int32_t d, const char* what) {
  switch (d) {
    case LRNN_F32: return dtype::f32;
    case LRNN_BF16: return dtype::bf16;
    case LRNN_F16: return dtype::f16;
    default: break;
  }
  return make_error(status_code::invalid_argument, "{} is {}, expected LRNN_F32 (0), LRNN_BF16 (1) or LRNN_F16 (2)", what, d);
}

result<device> device_from(int32_t d) {
  if (d == -1) return device::cpu();
  if (d < 0) return make_error(status_code::invalid_argument, "device is {}, expected -1 (host) or a CUDA device index", d);
  if (!cuda::built())
    return make_error(status_code::unsupported, "device {} is a CUDA device, but this lrnn was built without CUDA", d);
  if (d >= cuda::device_count())
    return make_error(status_code::invalid_argument, "CUDA device {} does not exist ({} visible)", d, cuda::device_count());
  return device::cuda(d);
}

// A non-owning tensor over caller memory.
tensor wrap(const void* p, const shape_t& shape, dtype t, device dev) {
  const size_t nbytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(t);
  auto st = std::make_shared<storage>(const_cast<void*>(p), nbytes, dev, nullptr);
  return tensor(std::move(st), 0, shape, contiguous_strides(shape), t);
}

result<tensor> wrap_required(const void* p, const char* name, const shape_t& shape, dtype t, device dev) {
  if (!p) return make_error(status_code::invalid_argument, "{} is a null pointer, expected {} {}", name, dtype_name(t), shape_to_string(shape));
  return wrap(p, shape, t, dev);
}

tensor wrap_optional(const void* p, const shape_t& shape, dtype t, device dev) {
  return p ? wrap(p, shape, t, dev) : tensor();
}

status check_dims(std::initializer_list<std::pair<const char*, int64_t>> dims) {
  for (auto [name, v] : dims)
    if (v < 0 || v > (int64_t(1) << 40)) return make_error(status_code::invalid_argument, "{} is {}, expected 0 <= {} < 2^40", name, v, name);
  return {};
}

result<ops::decay_attn_spec> spec_from(const lrnn_decay_attn_spec* s) {
  if (!s) return make_error(status_code::invalid_argument, "spec is a null pointer");
  ops::decay_attn_spec out;
  switch (s->decay) {
    case LRNN_DECAY_NONE: out.decay = ops::decay_kind::none; break;
    case LRNN_DECAY_PER_HEAD_CONST: out.decay = ops::decay_kind::per_head_const; break;
    case LRNN_DECAY_PER_TOKEN_SCALAR: out.decay = ops::decay_kind::per_token_scalar; break;
    case LRNN_DECAY_PER_TOKEN_KEY: out.decay = ops::decay_kind::per_token_key; break;
    default: return make_error(status_code::invalid_argument, "spec.decay is {}, expected 0..3 (lrnn_decay_kind)", s->decay);
  }
  switch (s->input_gate) {
    case LRNN_INPUT_GATE_NONE: out.input_gate = ops::input_gate_kind::none; break;
    case LRNN_INPUT_GATE_EXPONENTIAL: out.input_gate = ops::input_gate_kind::exponential; break;
    case LRNN_INPUT_GATE_SIGMOID: out.input_gate = ops::input_gate_kind::sigmoid; break;
    default: return make_error(status_code::invalid_argument, "spec.input_gate is {}, expected 0..2 (lrnn_input_gate_kind)", s->input_gate);
  }
  out.bonus = s->bonus != 0;
  out.normalizer = s->normalizer != 0;
  out.scale = s->scale;
  out.eps = s->eps;
  return out;
}

struct call {
  ops::decay_attn_spec spec;
  ops::decay_attn_inputs in;
  ops::decay_attn_state init;
  ops::decay_attn_options options;
  dtype dt = dtype::f32, gdt = dtype::f32;
  device dev;
  int64_t B = 0, T = 0, H = 0, K = 0, V = 0, N = 0;
};

shape_t g_shape(ops::decay_kind kind, int64_t B, int64_t T, int64_t H, int64_t K) {
  switch (kind) {
    case ops::decay_kind::none: return {};
    case ops::decay_kind::per_head_const: return {H};
    case ops::decay_kind::per_token_scalar: return {B, T, H};
    case ops::decay_kind::per_token_key: return {B, T, H, K};
  }
  return {};
}

result<call> make_call(const lrnn_decay_attn_spec* spec, const lrnn_decay_attn_args* a,
                       const lrnn_decay_attn_state* initial_state) {
  call c;
  LRNN_ASSIGN_OR_RETURN(c.spec, spec_from(spec));
  if (!a) return make_error(status_code::invalid_argument, "args is a null pointer");
  LRNN_TRY(check_dims({{"B", a->B}, {"T", a->T}, {"H", a->H}, {"K", a->K}, {"V", a->V}, {"N", a->N}}));
  LRNN_ASSIGN_OR_RETURN(c.dt, dtype_from(a->dtype, "args.dtype"));
  LRNN_ASSIGN_OR_RETURN(c.gdt, dtype_from(a->gate_dtype, "args.gate_dtype"));
  LRNN_ASSIGN_OR_RETURN(c.dev, device_from(a->device));
  c.B = a->B, c.T = a->T, c.H = a->H, c.K = a->K, c.V = a->V;
  c.N = a->cu_seqlens ? a->N : a->B;
  if (a->cu_seqlens && c.N < 1) return make_error(status_code::invalid_argument, "args.N is {}: with cu_seqlens, N (sequences) must be >= 1", c.N);
  const shape_t qk = {c.B, c.T, c.H, c.K};
  LRNN_ASSIGN_OR_RETURN(c.in.q, wrap_required(a->q, "q", qk, c.dt, c.dev));
  LRNN_ASSIGN_OR_RETURN(c.in.k, wrap_required(a->k, "k", qk, c.dt, c.dev));
  LRNN_ASSIGN_OR_RETURN(c.in.v, wrap_required(a->v, "v", {c.B, c.T, c.H, c.V}, c.dt, c.dev));
  if (c.spec.decay != ops::decay_kind::none) {
    LRNN_ASSIGN_OR_RETURN(c.in.g, wrap_required(a->g, "g", g_shape(c.spec.decay, c.B, c.T, c.H, c.K), c.gdt, c.dev));
  }
  if (c.spec.input_gate != ops::input_gate_kind::none) {
    LRNN_ASSIGN_OR_RETURN(c.in.i, wrap_required(a->i, "i", {c.B, c.T, c.H}, c.gdt, c.dev));
  }
  if (c.spec.bonus) {
    LRNN_ASSIGN_OR_RETURN(c.in.u, wrap_required(a->u, "u", {c.H, c.K}, c.gdt, c.dev));
  }
  if (a->cu_seqlens) c.in.cu_seqlens = wrap(a->cu_seqlens, {c.N + 1}, dtype::i32, c.dev);
  if (initial_state && initial_state->s) {
    c.init.s = wrap(initial_state->s, {c.N, c.H, c.K, c.V}, dtype::f32, c.dev);
    if (c.spec.normalizer) c.init.n = wrap_optional(initial_state->n, {c.N, c.H, c.K}, dtype::f32, c.dev);
    if (c.spec.input_gate == ops::input_gate_kind::exponential)
      c.init.m = wrap_optional(initial_state->m, {c.N, c.H}, dtype::f32, c.dev);
  }
  if (a->chunk_size < 0) return make_error(status_code::invalid_argument, "args.chunk_size is {}, expected 0 (default) or > 0", a->chunk_size);
  if (a->chunk_size > 0) c.options.chunk_size = a->chunk_size;
  return c;
}

// args.ctx as decay_attn_options::ctx: f32 [ctx_bytes / 4], of the size the call needs.
status attach_ctx(call& c, const lrnn_decay_attn_args* a) {
  if (!a->ctx && a->ctx_bytes == 0) return {};
  LRNN_ASSIGN_OR_RETURN(int64_t n, ops::decay_attn_ctx_floats(c.spec, c.in));
  if (!a->ctx || a->ctx_bytes != 4 * n)
    return make_error(status_code::invalid_argument, "args.ctx is {} with ctx_bytes {}, expected {} bytes (lrnn_decay_attn_ctx_bytes){}",
                      a->ctx ? "given" : "null", a->ctx_bytes, 4 * n, n == 0 ? " or ctx null" : "");
  if (n > 0) c.options.ctx = wrap(a->ctx, {n}, dtype::f32, c.dev);
  return {};
}

status ctx_bytes(const lrnn_decay_attn_spec* spec, const lrnn_decay_attn_args* args, int64_t* bytes) {
  if (!bytes) return make_error(status_code::invalid_argument, "bytes is a null pointer");
  LRNN_ASSIGN_OR_RETURN(call c, make_call(spec, args, nullptr));
  LRNN_ASSIGN_OR_RETURN(int64_t n, ops::decay_attn_ctx_floats(c.spec, c.in));
  *bytes = 4 * n;
  return {};
}

// Copies `src` (any dtype) into caller memory `dst` of dtype t and src's shape, when both exist.
// Copies a result to the caller's buffer (nothing to do when the op wrote it there: options.into_*).
status copy_out(void* dst, const tensor& src, dtype t, device dev) {
  if (!dst || !src.defined() || src.raw_data() == dst) return {};
  tensor d = wrap(dst, src.shape(), t, dev);
  return d.copy_from(src);
}

status forward(const lrnn_decay_attn_spec* spec, const lrnn_decay_attn_args* args, const lrnn_decay_attn_state* init,
               void* o, lrnn_decay_attn_state* final_state) {
  LRNN_ASSIGN_OR_RETURN(call c, make_call(spec, args, init));
  if (!o) return make_error(status_code::invalid_argument, "o is a null pointer, expected {} [B, T, H, V]", dtype_name(c.dt));
  c.options.output_final_state = final_state && final_state->s;
  c.options.into_o = wrap(o, {c.B, c.T, c.H, c.V}, c.dt, c.dev);
  if (args->den && !c.spec.normalizer) return make_error(status_code::invalid_argument, "args.den is given, but the spec has no normaliser");
  c.options.output_den = args->den != nullptr;
  LRNN_TRY(attach_ctx(c, args));
  LRNN_ASSIGN_OR_RETURN(auto out, ops::decay_attn_forward(c.spec, c.in, c.init, ops::decay_attn_form::chunk, c.options));
  LRNN_TRY(copy_out(o, out.o, c.dt, c.dev));
  LRNN_TRY(copy_out(args->den, out.den, dtype::f32, c.dev));
  if (c.options.output_final_state) {
    LRNN_TRY(copy_out(final_state->s, out.final_state.s, dtype::f32, c.dev));
    LRNN_TRY(copy_out(final_state->n, out.final_state.n, dtype::f32, c.dev));
    LRNN_TRY(copy_out(final_state->m, out.final_state.m, dtype::f32, c.dev));
  }
  return {};
}

status backward(const lrnn_decay_attn_spec* spec, const lrnn_decay_attn_args* args, const lrnn_decay_attn_state* init,
                const void* d_o, const lrnn_decay_attn_state* d_final, void* dq, void* dk, void* dv, float* dg,
                float* di, float* du, lrnn_decay_attn_state* d_init) {
  LRNN_ASSIGN_OR_RETURN(call c, make_call(spec, args, init));
  LRNN_ASSIGN_OR_RETURN(tensor dO, wrap_required(d_o, "d_o", {c.B, c.T, c.H, c.V}, c.dt, c.dev));
  ops::decay_attn_state dfin;
  if (d_final) {
    dfin.s = wrap_optional(d_final->s, {c.N, c.H, c.K, c.V}, dtype::f32, c.dev);
    if (c.spec.normalizer) dfin.n = wrap_optional(d_final->n, {c.N, c.H, c.K}, dtype::f32, c.dev);
    if (c.spec.input_gate == ops::input_gate_kind::exponential) dfin.m = wrap_optional(d_final->m, {c.N, c.H}, dtype::f32, c.dev);
  }
  const shape_t qk = {c.B, c.T, c.H, c.K};
  if (dq) c.options.into_dq = wrap(dq, qk, c.dt, c.dev);
  if (dk) c.options.into_dk = wrap(dk, qk, c.dt, c.dev);
  if (dv) c.options.into_dv = wrap(dv, {c.B, c.T, c.H, c.V}, c.dt, c.dev);
  if (dg && c.in.g.defined()) c.options.into_dg = wrap(dg, c.in.g.shape(), dtype::f32, c.dev);
  if (di && c.in.i.defined()) c.options.into_di = wrap(di, c.in.i.shape(), dtype::f32, c.dev);
  if (args->den || args->fwd_o) {
    c.options.saved_o = args->fwd_o ? wrap(args->fwd_o, {c.B, c.T, c.H, c.V}, c.dt, c.dev) : tensor();
    c.options.saved_den = args->den ? wrap(args->den, {c.B, c.T, c.H}, dtype::f32, c.dev) : tensor();
  }
  LRNN_TRY(attach_ctx(c, args));
  LRNN_ASSIGN_OR_RETURN(auto gr, ops::decay_attn_backward(c.spec, c.in, c.init, dO, dfin, ops::decay_attn_form::chunk, c.options));
  LRNN_TRY(copy_out(dq, gr.dq, c.dt, c.dev));
  LRNN_TRY(copy_out(dk, gr.dk, c.dt, c.dev));
  LRNN_TRY(copy_out(dv, gr.dv, c.dt, c.dev));
  LRNN_TRY(copy_out(dg, gr.dg, dtype::f32, c.dev));
  LRNN_TRY(copy_out(di, gr.di, dtype::f32, c.dev));
  LRNN_TRY(copy_out(du, gr.du, dtype::f32, c.dev));
  if (d_init) {
    LRNN_TRY(copy_out(d_init->s, gr.d_initial_state.s, dtype::f32, c.dev));
    LRNN_TRY(copy_out(d_init->n, gr.d_initial_state.n, dtype::f32, c.dev));
    LRNN_TRY(copy_out(d_init->m, gr.d_initial_state.m, dtype::f32, c.dev));
  }
  return {};
}

status step(const lrnn_decay_attn_spec* spec_in, int32_t dt_in, int32_t gdt_in, int32_t dev_in, int64_t B, int64_t H,
            int64_t K, int64_t V, const void* q, const void* k, const void* v, const void* g, const void* i,
            const void* u, lrnn_decay_attn_state* state, void* o) {
  LRNN_ASSIGN_OR_RETURN(auto spec, spec_from(spec_in));
  LRNN_TRY(check_dims({{"B", B}, {"H", H}, {"K", K}, {"V", V}}));
  LRNN_ASSIGN_OR_RETURN(dtype dt, dtype_from(dt_in, "dtype"));
  LRNN_ASSIGN_OR_RETURN(dtype gdt, dtype_from(gdt_in, "gate_dtype"));
  LRNN_ASSIGN_OR_RETURN(device dev, device_from(dev_in));
  if (!state || !state->s) return make_error(status_code::invalid_argument, "state.s is a null pointer, expected f32 [B, H, K, V] (updated in place)");
  if (!o) return make_error(status_code::invalid_argument, "o is a null pointer, expected {} [B, H, V]", dtype_name(dt));
  ops::decay_attn_inputs tok;
  LRNN_ASSIGN_OR_RETURN(tok.q, wrap_required(q, "q", {B, H, K}, dt, dev));
  LRNN_ASSIGN_OR_RETURN(tok.k, wrap_required(k, "k", {B, H, K}, dt, dev));
  LRNN_ASSIGN_OR_RETURN(tok.v, wrap_required(v, "v", {B, H, V}, dt, dev));
  switch (spec.decay) {
    case ops::decay_kind::none: break;
    case ops::decay_kind::per_head_const:
    case ops::decay_kind::per_token_scalar:
    case ops::decay_kind::per_token_key: {
      const shape_t gs = spec.decay == ops::decay_kind::per_head_const     ? shape_t{H}
                         : spec.decay == ops::decay_kind::per_token_scalar ? shape_t{B, H}
                                                                           : shape_t{B, H, K};
      LRNN_ASSIGN_OR_RETURN(tok.g, wrap_required(g, "g", gs, gdt, dev));
      break;
    }
  }
  if (spec.input_gate != ops::input_gate_kind::none) {
    LRNN_ASSIGN_OR_RETURN(tok.i, wrap_required(i, "i", {B, H}, gdt, dev));
  }
  if (spec.bonus) {
    LRNN_ASSIGN_OR_RETURN(tok.u, wrap_required(u, "u", {H, K}, gdt, dev));
  }
  ops::decay_attn_state st;
  st.s = wrap(state->s, {B, H, K, V}, dtype::f32, dev);
  if (spec.normalizer) {
    LRNN_ASSIGN_OR_RETURN(st.n, wrap_required(state->n, "state.n", {B, H, K}, dtype::f32, dev));
  }
  if (spec.input_gate == ops::input_gate_kind::exponential) {
    LRNN_ASSIGN_OR_RETURN(st.m, wrap_required(state->m, "state.m", {B, H}, dtype::f32, dev));
  }
  LRNN_ASSIGN_OR_RETURN(tensor out, ops::decay_attn_step(spec, tok, st));
  LRNN_TRY(copy_out(o, out, dt, dev));
  // The CUDA step updates the caller's state in place; the CPU step returns new tensors.
  if (st.s.raw_data() != state->s) LRNN_TRY(copy_out(state->s, st.s, dtype::f32, dev));
  if (st.n.defined() && st.n.raw_data() != state->n) LRNN_TRY(copy_out(state->n, st.n, dtype::f32, dev));
  if (st.m.defined() && st.m.raw_data() != state->m) LRNN_TRY(copy_out(state->m, st.m, dtype::f32, dev));
  return {};
}

status spec_for(int32_t variant, lrnn_decay_attn_spec* s) {
  if (!s) return make_error(status_code::invalid_argument, "spec is a null pointer");
  *s = lrnn_decay_attn_spec{LRNN_DECAY_PER_TOKEN_KEY, 0, LRNN_INPUT_GATE_NONE, 0, 0.0, 1e-6};
  switch (variant) {
    case LRNN_VARIANT_RETNET: s->decay = LRNN_DECAY_PER_HEAD_CONST; break;
    case LRNN_VARIANT_SIMPLE_GLA: s->decay = LRNN_DECAY_PER_TOKEN_SCALAR; break;
    case LRNN_VARIANT_GLA: break;
    case LRNN_VARIANT_RWKV6: s->bonus = 1, s->scale = 1.0; break;
    case LRNN_VARIANT_MLSTM:
      s->decay = LRNN_DECAY_PER_TOKEN_SCALAR, s->input_gate = LRNN_INPUT_GATE_EXPONENTIAL, s->normalizer = 1;
      break;
    case LRNN_VARIANT_MLSTM_SIG:
      s->decay = LRNN_DECAY_PER_TOKEN_SCALAR, s->input_gate = LRNN_INPUT_GATE_SIGMOID, s->normalizer = 1;
      break;
    default: return make_error(status_code::invalid_argument, "variant is {}, expected 0..5 (lrnn_decay_attn_variant)", variant);
  }
  return {};
}

status cuda_device(int32_t device) {
  if (!cuda::built()) return status(status_code::unsupported, "this lrnn was built without CUDA");
  if (device < 0 || device >= cuda::device_count())
    return make_error(status_code::invalid_argument, "CUDA device {} does not exist ({} visible)", device, cuda::device_count());
  return {};
}

}  // namespace
}  // namespace lrnn::capi

using namespace lrnn;
using namespace lrnn::capi;

extern "C" {

const char* lrnn_version(void) { return LRNN_VERSION; }
int32_t lrnn_abi_version(void) { return LRNN_ABI_VERSION; }
const char* lrnn_last_error(void) { return t_last_error.c_str(); }
int32_t lrnn_cuda_built(void) { return cuda::built() ? 1 : 0; }
int32_t lrnn_cuda_device_count(void) { return cuda::device_count(); }

int32_t lrnn_decay_attn_spec_for(int32_t variant, lrnn_decay_attn_spec* spec) {
  return guarded("lrnn_decay_attn_spec_for", [&] { return spec_for(variant, spec); });
}

int32_t lrnn_decay_attn_ctx_bytes(const lrnn_decay_attn_spec* spec, const lrnn_decay_attn_args* args, int64_t* bytes) {
  return guarded("lrnn_decay_attn_ctx_bytes", [&] { return ctx_bytes(spec, args, bytes).with_context("lrnn_decay_attn_ctx_bytes"); });
}

int32_t lrnn_decay_attn_forward(const lrnn_decay_attn_spec* spec, const lrnn_decay_attn_args* args,
                                const lrnn_decay_attn_state* initial_state, void* o, lrnn_decay_attn_state* final_state) {
  return guarded("lrnn_decay_attn_forward", [&] {
    return forward(spec, args, initial_state, o, final_state).with_context("lrnn_decay_attn_forward");
  });
}

int32_t lrnn_decay_attn_backward(const lrnn_decay_attn_spec* spec, const lrnn_decay_attn_args* args,
                                 const lrnn_decay_attn_state* initial_state, const void* d_o,
                                 const lrnn_decay_attn_state* d_final_state, void* dq, void* dk, void* dv, float* dg,
                                 float* di, float* du, lrnn_decay_attn_state* d_initial_state) {
  return guarded("lrnn_decay_attn_backward", [&] {
    return backward(spec, args, initial_state, d_o, d_final_state, dq, dk, dv, dg, di, du, d_initial_state)
        .with_context("lrnn_decay_attn_backward");
  });
}

int32_t lrnn_decay_attn_step(const lrnn_decay_attn_spec* spec, int32_t dtype, int32_t gate_dtype, int32_t device,
                             int64_t B, int64_t H, int64_t K, int64_t V, const void* q, const void* k, const void* v,
                             const void* g, const void* i, const void* u, lrnn_decay_attn_state* state, void* o) {
  return guarded("lrnn_decay_attn_step", [&] {
    return step(spec, dtype, gate_dtype, device, B, H, K, V, q, k, v, g, i, u, state, o).with_context("lrnn_decay_attn_step");
  });
}

int32_t lrnn_cuda_memory_stats(int32_t device, lrnn_memory_stats* stats) {
  return guarded("lrnn_cuda_memory_stats", [&]() -> status {
    LRNN_TRY(cuda_device(device));
    if (!stats) return status(status_code::invalid_argument, "lrnn_cuda_memory_stats: stats is a null pointer");
    const cuda::allocator_stats s = cuda::get_allocator_stats(device);
    *stats = lrnn_memory_stats{s.bytes_in_use, s.peak_bytes_in_use, s.bytes_cached, s.bytes_reserved,
                               s.num_cuda_malloc, s.num_reused, s.num_cuda_free};
    return {};
  });
}

int32_t lrnn_cuda_empty_cache(int32_t device) {
  return guarded("lrnn_cuda_empty_cache", [&]() -> status {
    LRNN_TRY(cuda_device(device));
    cuda::trim(device);
    return {};
  });
}

int32_t lrnn_cuda_set_stream(int32_t device, void* stream) {
  return guarded("lrnn_cuda_set_stream", [&]() -> status {
    LRNN_TRY(cuda_device(device));
    cuda::set_current_stream(device, stream);
    return {};
  });
}

int32_t lrnn_cuda_synchronize(int32_t device) {
  return guarded("lrnn_cuda_synchronize", [&]() -> status {
    LRNN_TRY(cuda_device(device));
    return cuda::synchronize(device);
  });
}

}  // extern "C"
