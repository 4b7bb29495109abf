# (wip/nmma only: the A/B of its switches; copy to .c8/next11.sh and delete this file at the merge)
# Session 12's first device call (written in session 11): `bash .c8/next11.sh` with carry [".c8"]
# (only this pack + py.tar.xz fit: the carry limit counts the tracked tree too).
# Pack gpu27 = wip/nmma head: (1) mLSTM's n on the state's mma (LRNN_DA_NORM_THREADS=1: old path),
# (2) pageable H2D copies without the stream wait (LRNN_CUDA_H2D_SYNC=1: old), (3) tc_seg's run-time
# stages (LRNN_DA_SEG_STAGES=3: old), (4) per-key key_prep / key_post without an exp per pair where the
# block's decays allow (LRNN_DA_KEY_EXACT=1: old), (5) the scalar decay's gradient scan over blocks of
# 256 tokens (LRNN_DA_SCAN_ONE=1: old). All compile-checked only. If .c8/gpu27.tar.xz is
# missing: git checkout wip/nmma && export PATH=$PATH:/usr/local/cuda/bin && LRNN_WERROR=ON
#   BUILD_DIR=build/cuda-release PACK_NAME=gpu27 TEST_TARGET=lrnn_gpu_tests bash scripts/gpu/pack.sh
#   && mv .carry/gpu27.tar.xz .c8/
set -u
pk=${1:-gpu27}
C=$PWD/.c8
cd .c8 && tar -xJf $pk.tar.xz && tar -xJf py.tar.xz && cd ..
export LD_LIBRARY_PATH=$C/$pk/lib:/usr/local/cuda/lib64
{
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
t0=$(date +%s)
$C/$pk/lrnn_tests --gtest_filter='cuda*:*cuda*:capi*:*Cuda*:*CUDA*' > /tmp/tests.log 2>&1
echo "== tests rc=$? $(grep -c '^\[       OK \]' /tmp/tests.log) OK $(( $(date +%s)-t0 ))s"; grep -E '^\[  FAILED  \]' /tmp/tests.log | head -20
for env in LRNN_DA_SEGMENTS=3 "LRNN_DA_NORM_THREADS=1 LRNN_DA_KEY_EXACT=1 LRNN_DA_SEG_STAGES=3 LRNN_DA_SCAN_ONE=1 LRNN_CUDA_H2D_SYNC=1"; do
  env $env $C/$pk/lrnn_tests --gtest_filter='decay_attn_cuda*' > /tmp/t_x.log 2>&1
  echo "== tests ($env) rc=$? $(grep -c '^\[       OK \]' /tmp/t_x.log) OK"; grep -E '^\[  FAILED  \]' /tmp/t_x.log | head -10
  grep -h -B3 -A25 "Failure" /tmp/t_x.log | head -60 >> $OUT/fail.txt
done
} 2>&1 | tee $OUT/tests.txt
grep -h -B3 -A25 "Failure" /tmp/tests.log | head -120 >> $OUT/fail.txt
t0=$(date +%s)
LRNN_DA_SEGMENTS=3 timeout 60 /usr/local/cuda/bin/compute-sanitizer --tool racecheck --racecheck-report hazard --print-limit 5 --error-exitcode 3 $C/$pk/lrnn_tests --gtest_filter='decay_attn_cuda_mlstm.t200_init_k128_v128:decay_attn_cuda_gla.t200_init_k128_v128' > /tmp/rc.log 2>&1
echo "== racecheck (segments) rc=$? $(( $(date +%s)-t0 ))s $(grep -hE 'RACECHECK SUMMARY' /tmp/rc.log | head -3)" >> $OUT/tests.txt
SKA=fla_chunk_simple_gla,fla_chunk_gla,sdpa_flash_causal,lrnn_retnet,lrnn_mlstm_recompute,lrnn_simple_gla_recompute
for env in X=0 LRNN_DA_NORM_THREADS=1 LRNN_DA_KEY_EXACT=1 LRNN_DA_SEG_STAGES=3 LRNN_DA_SCAN_ONE=1 LRNN_CUDA_H2D_SYNC=1 X=1; do
  t0=$(date +%s)
  env $env PYTHONPATH=$C/py timeout 70 python3 bench/gpu/bench_decay_attn.py --lib $C/$pk/lib/liblrnn.so --out /tmp/b_$env \
    --triton-cache $C/tc --skip-tfla --skip $SKA --profile lrnn_mlstm,lrnn_simple_gla,lrnn_gla > /tmp/bench_p.log 2>&1
  echo "== bench $env rc=$? $(( $(date +%s)-t0 ))s"; grep -E '^\| lrnn_(simple|mlstm|gla)' /tmp/b_$env/bench.md
  for f in /tmp/b_$env/profile_*; do echo "## $f"; head -8 $f | cut -c1-120; done
done 2>&1 | tee $OUT/ab.txt
# Then (second call, same warm machine if possible): the full table, e.g.
#   PYTHONPATH=$C/py python3 bench/gpu/bench_decay_attn.py --lib $C/$pk/lib/liblrnn.so --out $OUT/full --triton-cache $C/tc --skip-tfla
