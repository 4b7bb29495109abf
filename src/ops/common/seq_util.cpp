// Shape checks, cu_seqlens parsing and the task-size heuristic shared by the channel-wise sequence
// ops (seq_util.h).
#include "ops/common/seq_util.h"

#include "lrnn/threads.h"

namespace lrnn::ops::seq_util {

status expect_float(const char* op, const char* name, const tensor& t, const shape_t& want, const char* why) {
  if (!t.defined())
    return make_error(status_code::invalid_argument, "{}: {} is missing, expected {} ({})", op, name, shape_to_string(want), why);
  if (t.shape() != want)
    return make_error(status_code::invalid_argument, "{}: {} is {}, expected {} ({})", op, name, t.describe(), shape_to_string(want), why);
  if (!is_floating(t.type()))
    return make_error(status_code::invalid_argument, "{}: {} has dtype {}, expected a float dtype", op, name, dtype_name(t.type()));
  if (!t.dev().is_cpu())
    return make_error(status_code::unsupported, "{}: {} is on {}; only CPU is supported so far", op, name, t.dev().to_string());
  return {};
}

result<std::vector<int64_t>> sequence_offsets(const char* op, const tensor& cu_seqlens, int64_t B, int64_t T) {
  std::vector<int64_t> offsets;
  if (!cu_seqlens.defined()) {
    for (int64_t n = 0; n <= B; ++n) offsets.push_back(n * T);
    return offsets;
  }
  const tensor& c = cu_seqlens;
  if (c.type() != dtype::i32 || c.dim() != 1 || c.size(0) < 2 || !c.dev().is_cpu())
    return make_error(status_code::invalid_argument, "{}: cu_seqlens is {}, expected i32[N + 1] with N >= 1 on the CPU", op, c.describe());
  if (B != 1)
    return make_error(status_code::invalid_argument, "{}: with cu_seqlens the input must be packed as [1, total_T, C], got B = {}", op, B);
  LRNN_ASSIGN_OR_RETURN(const tensor cc, c.contiguous());
  const int32_t* cp = cc.data<int32_t>();
  const int64_t N = c.size(0) - 1;
  for (int64_t n = 0; n <= N; ++n) {
    if ((n == 0 && cp[0] != 0) || (n > 0 && cp[n] < cp[n - 1]) || (n == N && cp[n] != T))
      return make_error(status_code::invalid_argument,
                        "{}: cu_seqlens must start at 0, never decrease and end at total_T = {} (entry {} is {})", op, T, n, cp[n]);
    offsets.push_back(cp[n]);
  }
  return offsets;
}

int64_t channel_block(int64_t N, int64_t C, int64_t max_block) {
  const int64_t want = 2 * static_cast<int64_t>(num_threads());
  int64_t block = max_block;
  while (block > 16 && N * ((C + block - 1) / block) < want) block /= 2;
  return block;
}

}  // namespace lrnn::ops::seq_util
