#!/usr/bin/env python3
# Single-threaded encode throughput of the reference libraries (HF tokenizers for
# tokenizer.json, sentencepiece for .model) on a text file, for comparison with
# `lrnn tokenize --bench` in the same run (bench/tokenizer_bench.sh). Also checks that
# both produce the same ids when given --lrnn-ids.
#   TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 python3 bench/tokenizer_bench.py TOKENIZER TEXT [SECONDS] [LRNN_IDS_JSON]
import os
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")


def bench(fn, seconds):
    t0 = time.perf_counter()
    fn()  # the first pass, on a freshly loaded tokenizer, fills the caches ("cold")
    cold = time.perf_counter() - t0
    best, total, reps = float("inf"), 0.0, 0
    while total < seconds or reps < 3:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, total, reps = min(best, dt), total + dt, reps + 1
    return cold, best, total / reps, reps


def main():
    path, text_path = sys.argv[1], sys.argv[2]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    text = open(text_path, encoding="utf-8", newline="").read()  # keep \r\n as written
    mb = len(text.encode()) / 1e6
    lines = text.splitlines(keepends=True)
    def load():
        if path.endswith(".model"):
            import sentencepiece as spm
            sp = spm.SentencePieceProcessor(model_file=path)
            return (lambda: sp.encode(text), lambda: [sp.encode(l) for l in lines],
                    lambda: sp.encode(text), f"sentencepiece {spm.__version__}")
        import tokenizers
        tok = tokenizers.Tokenizer.from_file(path)
        return (lambda: tok.encode(text, add_special_tokens=False),
                lambda: [tok.encode(l, add_special_tokens=False) for l in lines],
                lambda: tok.encode(text, add_special_tokens=False).ids, f"tokenizers {tokenizers.__version__}")

    if len(sys.argv) > 4:  # same ids as lrnn on the whole text?
        import json
        theirs = json.load(open(sys.argv[4]))["ids"]
        ours = load()[2]()
        same = theirs == ours
        print(f"ids identical to lrnn: {same} ({len(ours)} tokens)")
        if not same:
            sys.exit(1)
    for mode, k in (("whole text", 0), ("line by line", 1)):
        fns = load()  # fresh caches
        c, b, m, r = bench(fns[k], seconds)
        print(f"{fns[3]}: {mode}: cold {mb / c:.2f} MB/s, warm best {mb / b:.2f} MB/s, mean {mb / m:.2f} MB/s ({r} reps)")


if __name__ == "__main__":
    main()
