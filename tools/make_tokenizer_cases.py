#!/usr/bin/env python3
# Generates the tokenizer agreement cases under tests/data/tokenizer/: synthetic varied
# text (our own, seeded), tokenizer.json variants built from the tok_bpe fixture or trained
# on that text, their encodings by HF `tokenizers`, the tok_spm encodings by `sentencepiece`,
# and a small RWKV world vocabulary with greedy longest-match encodings.
# Needs: pip install tokenizers sentencepiece. Run from the repository root:
#   python3 tools/make_tokenizer_cases.py [--fuzz-seeds]
# Benchmark inputs only (bench/tokenizer_bench.sh): --bench-text FILE [--bench-mb N]
# [--bench-kind varied|english] and/or --bench-tokenizers DIR.
import argparse
import copy
import json
import os
import random
import unicodedata

OUT = "tests/data/tokenizer"
FIXTURE_BPE = "tests/data/tok_bpe/tokenizer.json"
FIXTURE_SPM = "tests/data/tok_spm/tokenizer.model"

LLAMA3_RE = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_RE = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

# ---------------------------------------------------------------------------------------
# Synthetic text

WORDS = """the a an of to and in is it that for on with as was be by this are or from at
have not but had his they you we she he her their there which when what who will would
can could should may might must shall do does did done make made take took give gave
time year people way day man woman child world life hand part place case week company
system program question work government number night point home water room mother area
money story fact month lot right study book eye job word business issue side kind head
house service friend father power hour game line end member law car city community name
president team minute idea kid body information back parent face others level office
door health person art war history party result change morning reason research girl guy
moment air teacher force education foot boy age policy process music market sense nation
plan college interest death experience effect use class control care field development
role effort rate heart drug show leader light voice wife police mind price report decision
son view relationship town road arm difference value building action model season society
tax director position player record paper space ground form event official matter center
couple site project activity star table need court oil situation cost industry figure
street image phone data picture practice piece land product doctor wall patient worker
news test movie north love support technology step baby computer type attention film
tree source organization hair window evidence population site quick brown fox jumps over
lazy dog tokenizer encode decode stream recurrent linear model chunk state gate decay
running walked talking jumped happily quickly beautiful wonderful unbelievable
internationalization antidisestablishmentarianism""".split()

CONTRACTIONS = ["it's", "don't", "they're", "we've", "I'm", "you'll", "he'd", "can't", "won't",
                "IT'S", "DON'T", "THEY'RE", "We'Ve", "I'M", "YOU'LL", "She'D", "y'all", "o'clock",
                "rock'n'roll", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE",
                "'ſ", "''s", "' s", "it’s", "don’t", "'''", "'x", "'1"]

PUNCT = list(".,;:!?-()[]{}\"'/\\@#$%^&*+=<>|~`_") + ["...", "--", "—", "–", "«", "»", "“", "”", "„", "¿", "¡", "§", "©", "®", "°", "±", "€", "£", "¥", "¢"]

SPECIAL = ["<|endoftext|>", "<s>", "</s>", "<unk>", "<pad>", "<|begin_of_text|>", "<|end_of_text|>",
           "<|eot_id|>", "<|im_start|>", "<|im_end|>", "<tool>", "<mask>", "<|endof", "<s", "</s >",
           "<|padding|>"]

SPACES = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n", "\n ", " \t ", "\u00a0",
          "\u3000", "\u2028", "\u2029", "\u0085", "\u2003", "\u200b", "\u202f", "\u205f", "\x0b", "\x0c",
          "\u1680", "\r", "  \n\n  "]

EMOJI_RANGES = [(0x1F600, 0x1F64F), (0x1F300, 0x1F5FF), (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF), (0x2600, 0x26FF),
                (0x2700, 0x27BF)]
EMOJI_SEQS = ["👨\u200d👩\u200d👧\u200d👦", "👩🏽\u200d💻", "👍🏿", "🇯🇵", "🇩🇪🇫🇷", "1\ufe0f\u20e3", "❤\ufe0f",
              "🏳\ufe0f\u200d🌈", "🙂", "😀😃😄", "🧑‍🤝‍🧑", "✋🏻", "#\ufe0f\u20e3"]

SCRIPTS = {
    "cjk": [(0x4E00, 0x9FFF)],
    "hiragana": [(0x3041, 0x3096)],
    "katakana": [(0x30A1, 0x30FA)],
    "hangul": [(0xAC00, 0xD7A3)],
    "arabic": [(0x0621, 0x064A)],
    "hebrew": [(0x05D0, 0x05EA)],
    "cyrillic": [(0x0410, 0x044F)],
    "greek": [(0x0391, 0x03A9), (0x03B1, 0x03C9)],
    "devanagari": [(0x0905, 0x0939), (0x093E, 0x094D)],
    "thai": [(0x0E01, 0x0E3A), (0x0E40, 0x0E4E)],
    "armenian": [(0x0531, 0x0556), (0x0561, 0x0586)],
    "georgian": [(0x10D0, 0x10FA)],
    "latin_ext": [(0x00C0, 0x024F)],
    "ethiopic": [(0x1200, 0x1248)],
    "tamil": [(0x0B85, 0x0BB9)],
}

DIGITS = ["٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵۶۷۸۹", "०१२३४५६७८९", "０１２３４５６７８９", "²³¹", "½¼¾⅓", "ⅠⅡⅢⅣⅫ", "①②③", "𝟎𝟏𝟐"]

CODE = [
    "def {f}(self, {a}, {b}=None):\n    return {a} + {b}  # {w}\n",
    "for (int i = 0; i < {n}; ++i) {{\n\tsum += x[i] * {n};\n}}\n",
    "if ({a} != nullptr && {a}->{f}()) {{ return {n}; }}",
    "const {f} = ({a}) => {{ console.log(`{w} ${{{a}}}`); }};\r\n",
    "SELECT {a}, COUNT(*) FROM {b} WHERE {a} > {n} GROUP BY {a};",
    "<div class=\"{w}\"><a href=\"https://example.com/{w}?q={n}&x={a}\">{w}</a></div>",
    "{{\"{a}\": [{n}, {n}.5, -{n}e-3], \"{b}\": {{\"ok\": true, \"s\": \"{w}\\n\"}}}}",
    "    # {w} {w} {w}\n    {a} = {b}[{n}:{n}]\n\n\n",
    "#include <{w}.h>\nint main(int argc, char** argv) {{ return {n}; }}",
    "$ ls -la /usr/{w} | grep -E '^d' > /tmp/{a}.txt 2>&1",
    "x_{n} = {a}_{b}__{w}___{n}",
    "λ x → x ∘ f ≤ ∞ ≠ ∑ ∫ √ ∂ ∇ ∈ ∀ ∃",
]


def rand_char(rng, ranges):
    while True:
        lo, hi = rng.choice(ranges)
        c = chr(rng.randint(lo, hi))
        if unicodedata.category(c) != "Cn":
            return c


def word(rng):
    w = rng.choice(WORDS)
    r = rng.random()
    if r < 0.1:
        w = w.capitalize()
    elif r < 0.13:
        w = w.upper()
    return w


def prose(rng):
    out = []
    for _ in range(rng.randint(3, 18)):
        r = rng.random()
        if r < 0.12:
            out.append(rng.choice(CONTRACTIONS))
        elif r < 0.2:
            out.append(word(rng) + rng.choice(PUNCT))
        else:
            out.append(word(rng))
    s = " ".join(out)
    return s[0].upper() + s[1:] + rng.choice([".", "!", "?", "", "...", ":"])


def code(rng):
    t = rng.choice(CODE)
    return t.format(f=rng.choice(WORDS), a=rng.choice(WORDS), b=rng.choice(WORDS), w=rng.choice(WORDS),
                    n=rng.randint(0, 100000))


def numbers(rng):
    parts = []
    for _ in range(rng.randint(1, 6)):
        r = rng.random()
        if r < 0.2:
            parts.append(str(rng.randint(0, 10 ** rng.randint(1, 12))))
        elif r < 0.35:
            parts.append(f"{rng.uniform(-1e4, 1e4):.{rng.randint(0, 6)}f}")
        elif r < 0.45:
            parts.append(f"{rng.randint(1, 999)},{rng.randint(0, 999):03d},{rng.randint(0, 999):03d}")
        elif r < 0.55:
            parts.append(f"{rng.randint(1900, 2100)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}")
        elif r < 0.62:
            parts.append(f"+1 ({rng.randint(100, 999)}) {rng.randint(100, 999)}-{rng.randint(1000, 9999)}")
        elif r < 0.7:
            parts.append(hex(rng.randint(0, 2 ** 64)))
        elif r < 0.78:
            parts.append(f"{rng.uniform(0, 10):.3e}")
        elif r < 0.88:
            d = rng.choice(DIGITS)
            parts.append("".join(rng.choice(d) for _ in range(rng.randint(1, 8))))
        else:
            parts.append("".join(rng.choice("0123456789") for _ in range(rng.randint(10, 60))))
    return rng.choice([" ", ", ", "; ", " + ", "\n", ""]).join(parts)


def whitespace(rng):
    out = []
    for _ in range(rng.randint(1, 8)):
        out.append(rng.choice(SPACES) * rng.randint(1, 3))
        if rng.random() < 0.6:
            out.append(word(rng))
    return "".join(out)


def emoji(rng):
    out = []
    for _ in range(rng.randint(1, 8)):
        r = rng.random()
        if r < 0.4:
            out.append(rand_char(rng, EMOJI_RANGES))
        elif r < 0.7:
            out.append(rng.choice(EMOJI_SEQS))
        else:
            out.append(word(rng))
        if rng.random() < 0.5:
            out.append(" ")
    return "".join(out)


def script(rng, name=None):
    name = name or rng.choice(list(SCRIPTS))
    out = []
    for _ in range(rng.randint(1, 8)):
        out.append("".join(rand_char(rng, SCRIPTS[name]) for _ in range(rng.randint(1, 7))))
    sep = "" if name in ("cjk", "hiragana", "katakana", "thai") and rng.random() < 0.6 else " "
    s = sep.join(out)
    if name == "arabic" and rng.random() < 0.5:  # harakat
        s = "".join(c + (chr(rng.randint(0x064B, 0x0652)) if rng.random() < 0.3 else "") for c in s)
    if name == "cjk" and rng.random() < 0.4:
        s += rng.choice(["。", "、", "「", "」", "！", "？", "（", "）"])
    return s


def combining(rng):
    out = []
    for _ in range(rng.randint(1, 10)):
        r = rng.random()
        if r < 0.35:  # base + combining marks, often in non-canonical order
            base = rng.choice("aeiouAEIOUnNcCsSzZyY")
            marks = "".join(chr(rng.randint(0x0300, 0x036F)) for _ in range(rng.randint(1, 3)))
            out.append(base + marks)
        elif r < 0.5:  # decomposed vs precomposed Latin
            c = rand_char(rng, [(0x00C0, 0x017F), (0x1E00, 0x1EFF)])
            out.append(unicodedata.normalize(rng.choice(["NFD", "NFC"]), c))
        elif r < 0.6:  # conjoining Hangul jamo (NFC composes them)
            out.append(chr(rng.randint(0x1100, 0x1112)) + chr(rng.randint(0x1161, 0x1175)) +
                       (chr(rng.randint(0x11A8, 0x11C2)) if rng.random() < 0.5 else ""))
        elif r < 0.7:  # compatibility characters (NFKC changes them)
            out.append(rng.choice(["ﬁ", "ﬀ", "℡", "㎏", "①", "Ⅻ", "ｶﾀｶﾅ", "ＡＢＣ", "™", "µ", "Å", "Ω", "ǅ", "…", "¼", "x²", "ℌ", "ｱ"]))
        elif r < 0.8:
            out.append(rng.choice(["ê̄", "ệ", "ṩ", "क़", "ড়", "각", "å", "é", "Å", "ñ", "ö", "ﬃ", "ẛ̣"]))
        else:
            out.append(word(rng))
        out.append(rng.choice([" ", "", "", "-"]))
    return "".join(out)


def mixed(rng):
    gens = [prose, code, numbers, whitespace, emoji, script, combining]
    return rng.choice(["", " ", "\n"]).join(rng.choice(gens)(rng) for _ in range(rng.randint(2, 4)))


def specials(rng):
    out = []
    for _ in range(rng.randint(1, 6)):
        r = rng.random()
        if r < 0.4:
            out.append(rng.choice(SPECIAL))
        elif r < 0.6:
            out.append(rng.choice(SPACES))
        else:
            out.append(word(rng))
    return rng.choice(["", " ", ""]).join(out)


def controls(rng):
    cs = [chr(c) for c in range(0, 32)] + ["\x7f", "\ufeff", "\ufffd", "\u200d", "\u200c", "\u2060", "\u00ad", "\ue000", "\U000f0000"]
    return "".join(rng.choice(cs) if rng.random() < 0.5 else word(rng) for _ in range(rng.randint(1, 10)))


def random_unicode(rng):
    out = []
    for _ in range(rng.randint(1, 20)):
        while True:
            cp = rng.randint(0x20, 0x2FFFF) if rng.random() < 0.3 else rng.randint(0x20, 0xFFFF)
            if 0xD800 <= cp <= 0xDFFF:
                continue
            c = chr(cp)
            if unicodedata.category(c) not in ("Cn", "Cs"):
                break
        out.append(c)
    return "".join(out)


def long_runs(rng):
    r = rng.random()
    n = rng.randint(50, 1500)
    if r < 0.25:
        return rng.choice("abxyz") * n
    if r < 0.45:
        return "".join(rng.choice("abcdefghij") for _ in range(n))
    if r < 0.6:
        return rng.choice([" ", "\n", "\t", " \n"]) * (n // 4)
    if r < 0.75:
        return "".join(rng.choice("0123456789") for _ in range(n))
    if r < 0.9:
        return "".join(rand_char(rng, SCRIPTS["cjk"]) for _ in range(n // 3))
    return "".join(rng.choice(PUNCT) for _ in range(n // 3))


GENERATORS = [(prose, 22), (code, 10), (numbers, 8), (whitespace, 8), (emoji, 7), (script, 10), (combining, 8),
              (mixed, 10), (specials, 6), (controls, 3), (random_unicode, 5), (long_runs, 3)]


def make_texts(rng, n):
    texts = ["", " ", "  ", "\n", "a", "'s", "Hello, world!", "   spaces   and\ttabs\n\n", "🙂", "日本語", "é", "e\u0301",
             "\u3000", "<|endoftext|>", "<s>Hello</s>", "Hello<|endoftext|>world", " <|endoftext|> ", "I'M DON'T 'ſ",
             "12345678901234567890", "\r\n\r\n", "x" * 3000]
    funcs = [g for g, _ in GENERATORS]
    weights = [w for _, w in GENERATORS]
    while len(texts) < n:
        texts.append(rng.choices(funcs, weights)[0](rng))
    return texts


def bench_text(rng, mb, kind):
    parts, size = [], 0
    if kind == "english":  # prose and code: the word cache's good case
        funcs = [prose, prose, prose, prose, code]
    else:
        funcs = [prose, prose, prose, code, numbers, whitespace, emoji, script, combining, mixed]
    while size < mb * 1_000_000:
        t = rng.choice(funcs)(rng) + "\n"
        parts.append(t)
        size += len(t.encode())
    return "".join(parts)


# ---------------------------------------------------------------------------------------
# Tokenizer variants


def variants_from_fixture():
    base = json.load(open(FIXTURE_BPE, encoding="utf-8"))
    vocab_n = max(base["model"]["vocab"].values()) + 1

    def added(i, content, special=True, normalized=False, lstrip=False, rstrip=False, single_word=False):
        return {"id": vocab_n + i, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
                "normalized": normalized, "special": special}

    out = {}
    t = copy.deepcopy(base)
    t["model"]["ignore_merges"] = True
    t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_RE}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    t["added_tokens"] = [added(0, "<|begin_of_text|>"), added(1, "<|end_of_text|>"), added(2, "<|eot_id|>"),
                         added(3, "<tool>", special=False)]
    t["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                                                  {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [vocab_n], "tokens": ["<|begin_of_text|>"]}}}]}
    out["bpe_llama3"] = t

    t = copy.deepcopy(base)
    t["normalizer"] = {"type": "NFC"}
    t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN2_RE}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
    t["added_tokens"] = [added(0, "<|endoftext|>"), added(1, "<|im_start|>"), added(2, "<|im_end|>")]
    out["bpe_qwen2_nfc"] = t

    t = copy.deepcopy(base)
    t["normalizer"] = {"type": "NFC"}
    t["added_tokens"] = [added(0, "<|endoftext|>"), added(1, "<|padding|>"),
                         added(2, "  ", special=False, normalized=True), added(3, "    ", special=False, normalized=True),
                         added(4, "\t\t", special=False, normalized=True), added(5, "<mask>", lstrip=True, rstrip=True),
                         added(6, "dog", special=False, single_word=True)]
    # A token that is also a vocabulary entry: HF keeps the vocabulary's id for it.
    t["added_tokens"].append(dict(added(7, "é", special=False, normalized=True), id=base["model"]["vocab"]["é"]))
    t["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    out["bpe_neox"] = t

    t = copy.deepcopy(base)
    t["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Strip", "strip_left": False, "strip_right": True}]}
    t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]}
    t["added_tokens"] = [added(0, "</s>"), added(1, "<pad>")]
    t["post_processor"] = {"type": "RobertaProcessing", "sep": ["</s>", vocab_n], "cls": ["<pad>", vocab_n + 1],
                           "trim_offsets": True, "add_prefix_space": True}
    out["bpe_digits_nfkc"] = t
    return out


def variants_trained(texts):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=900, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=120,
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    trained = json.loads(tok.to_str())
    vocab = trained["model"]["vocab"]
    n = max(vocab.values()) + 1
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = n + b
    specials = [{"id": vocab[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": False, "special": True} for s in ["<unk>", "<s>", "</s>"]]
    bos = vocab["<s>"]
    template = {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                                         {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [bos], "tokens": ["<s>"]}}}
    model = trained["model"]
    model["byte_fallback"], model["fuse_unk"], model["unk_token"] = True, True, "<unk>"

    llama2 = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": specials,
              "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                                 {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
              "pre_tokenizer": None, "post_processor": template,
              "decoder": {"type": "Sequence", "decoders": [
                  {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
                  {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
              "model": model}
    metaspace = copy.deepcopy(llama2)
    metaspace["normalizer"] = None
    metaspace["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}
    metaspace["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"}, {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}]}
    return {"bpe_llama2": llama2, "bpe_metaspace": metaspace}


def train_bench_tokenizer(texts, vocab_size, pattern):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    if pattern == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


# ---------------------------------------------------------------------------------------
# RWKV world test vocabulary (our own, in the rwkv_vocab_v20230424.txt line format)


def rwkv_vocab(rng, texts):
    tokens = [bytes([b]) for b in range(256)]
    extra = set()
    for w in WORDS:
        for form in (w, " " + w, w.capitalize(), " " + w.capitalize()):
            extra.add(form.encode())
        for k in range(2, min(len(w), 5)):
            extra.add(w[:k].encode())
            extra.add(w[-k:].encode())
    for s in ["    ", "        ", "\n\n", "\t", "\r\n", "def ", "return", "it's", "don't", "\"", "'s", "\\n", "\\",
              "日本", "日本語", "中", "文", "🙂", "😀", "👍", "é", "ü", "\u200b", "\x7f", "<|endoftext|>", "...", " --",
              "ing", "tion", " the", "\u3000", "ab\"c'd", "0", "00", "000", "123", "2024"]:
        extra.add(s.encode())
    extra.add(b"\xe6\x97")       # the first two bytes of a CJK character: not UTF-8 on its own
    extra.add(b"\xf0\x9f\x98")   # a partial emoji
    extra.add(b"\x80\x81")
    extra.add(b"quote'\"both")
    extra = sorted(e for e in extra if len(e) > 1)
    tokens += extra
    lines = []
    for i, t in enumerate(tokens, start=1):
        try:
            s = t.decode("utf-8")
            lit = repr(s)
        except UnicodeDecodeError:
            lit = repr(t)
        lines.append(f"{i} {lit} {len(t)}")
    return tokens, "\n".join(lines) + "\n"


def rwkv_encode(token_to_id, max_len, data):
    ids, i = [], 0
    while i < len(data):
        for n in range(min(max_len, len(data) - i), 0, -1):
            tid = token_to_id.get(data[i:i + n])
            if tid is not None:
                ids.append(tid)
                i += n
                break
    return ids


# ---------------------------------------------------------------------------------------


def dump(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def hf_cases(tok, texts, name, file, extra_modes=True):
    """ids for every text; decode results where they differ from the text."""
    from tokenizers import Tokenizer
    cases = {"tokenizer": file, "count": len(texts), "ids": [], "decoded": {}, "decoded_skip_special": {}}
    for i, t in enumerate(texts):
        enc = tok.encode(t, add_special_tokens=False)
        ids = enc.ids
        cases["ids"].append(ids)
        d = tok.decode(ids, skip_special_tokens=False)
        if d != t:
            cases["decoded"][str(i)] = d
        ds = tok.decode(ids, skip_special_tokens=True)
        if ds != d:
            cases["decoded_skip_special"][str(i)] = ds
    if extra_modes:
        sub = texts[: len(texts) // 4]
        cases["add_special_ids"] = [tok.encode(t, add_special_tokens=True).ids for t in sub]
        tok.encode_special_tokens = True
        cases["no_parse_special_ids"] = [tok.encode(t, add_special_tokens=False).ids for t in sub]
        tok.encode_special_tokens = False
    return cases


def fuzz_seeds():
    """Small seed files for fuzz/corpus/tokenizer_json and fuzz/corpus/bpe_encode."""
    byte_chars = []
    for b in list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100)):
        byte_chars.append(chr(b))
    n = 0
    for b in range(256):
        if not (ord("!") <= b <= ord("~") or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF):
            byte_chars.append(chr(256 + n))
            n += 1
    vocab = {c: i for i, c in enumerate(sorted(set(byte_chars)))}
    merges = [["Ġ", "t"], ["h", "e"], ["Ġt", "he"], ["i", "n"], ["in", "g"], ["Ġ", "Ġ"]]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    model = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": merges}
    base = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "post_processor": None, "decoder": {"type": "ByteLevel"}, "model": model}
    seeds = {"bytelevel": base}
    t = copy.deepcopy(base)
    t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_RE}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}]}
    t["model"]["ignore_merges"] = True
    t["added_tokens"] = [{"id": len(vocab), "content": "<|eot|>", "single_word": False, "lstrip": True, "rstrip": True,
                          "normalized": False, "special": True},
                         {"id": len(vocab) + 1, "content": "  ", "single_word": True, "lstrip": False, "rstrip": False,
                          "normalized": True, "special": False}]
    t["post_processor"] = {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|eot|>", "type_id": 0}},
                                                                    {"Sequence": {"id": "A", "type_id": 0}}],
                           "special_tokens": {"<|eot|>": {"id": "<|eot|>", "ids": [len(vocab)], "tokens": ["<|eot|>"]}}}
    t["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Strip", "strip_left": True, "strip_right": True}]}
    seeds["llama3_added"] = t
    t = copy.deepcopy(base)
    t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": False},
        {"type": "Split", "pattern": {"Regex": QWEN2_RE}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": True, "use_regex": True}]}
    t["normalizer"] = {"type": "NFC"}
    t["post_processor"] = {"type": "RobertaProcessing", "sep": ["h", vocab["h"]], "cls": ["e", vocab["e"]]}
    seeds["qwen2_digits"] = t
    sp_vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3, "a": 4, "b": 5, "▁a": 6, "ab": 7}
    for b in range(256):
        sp_vocab[f"<0x{b:02X}>"] = 8 + b
    seeds["llama2_fallback"] = {
        "added_tokens": [{"id": 1, "content": "<s>", "special": True, "normalized": False}],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                           {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": None,
        "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                                                     {"type": "ByteFallback"}, {"type": "Fuse"},
                                                     {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True, "vocab": sp_vocab,
                  "merges": ["▁ a", "a b"]}}
    seeds["metaspace"] = copy.deepcopy(seeds["llama2_fallback"])
    seeds["metaspace"]["normalizer"] = None
    seeds["metaspace"]["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}
    seeds["metaspace"]["decoder"] = {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True}
    seeds["unsupported"] = dict(copy.deepcopy(base), normalizer={"type": "Lowercase"})
    os.makedirs("fuzz/corpus/tokenizer_json", exist_ok=True)
    for name, spec in seeds.items():
        with open(f"fuzz/corpus/tokenizer_json/{name}.json", "w", encoding="utf-8") as f:
            json.dump(spec, f, ensure_ascii=False, separators=(",", ":"))
    texts = {"english": "The quick brown fox doesn't jump; it's 12345 times lazier.\n",
             "code": "def f(x):\n\treturn x  # comment\r\n    if a != b: pass\n",
             "cjk_emoji": "日本語のテキスト 🙂👨\u200d👩\u200d👧 한국어 e\u0301",
             "special": "<|begin_of_text|>hi<|eot_id|> <tool> <|end_of_text|>",
             "spaces": "   \t\t\n\n  \u3000\u00a0 x  "}
    os.makedirs("fuzz/corpus/bpe_encode", exist_ok=True)
    for name, text in texts.items():
        with open(f"fuzz/corpus/bpe_encode/{name}.txt", "w", encoding="utf-8") as f:
            f.write(text)
    with open("fuzz/corpus/bpe_encode/invalid.bin", "wb") as f:
        f.write(b"ok\xe2\x82 then\xff\xfe end \xf0\x9f\xc0\xaf\xed\xa0\x80")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--variant-count", type=int, default=400)
    ap.add_argument("--bench-text", help="also write a benchmark text of --bench-mb MB here")
    ap.add_argument("--bench-mb", type=float, default=4.0)
    ap.add_argument("--bench-kind", choices=["varied", "english"], default="varied")
    ap.add_argument("--bench-tokenizers", help="also train benchmark tokenizers (not committed) into this folder")
    ap.add_argument("--fuzz-seeds", action="store_true", help="also write the fuzz seed corpora")
    args = ap.parse_args()

    import sentencepiece as spm
    import tokenizers
    from tokenizers import Tokenizer

    if args.bench_text or args.bench_tokenizers:  # benchmark inputs only; the test data is left alone
        if args.bench_text:
            with open(args.bench_text, "w", encoding="utf-8") as f:
                f.write(bench_text(random.Random(66), args.bench_mb, args.bench_kind))
        if args.bench_tokenizers:
            os.makedirs(args.bench_tokenizers, exist_ok=True)
            train = make_texts(random.Random(666), 20000)
            for name, vs, pat in [("bpe_gpt2_32k", 32000, "gpt2"), ("bpe_llama3_32k", 32000, "llama3")]:
                train_bench_tokenizer(train, vs, pat).save(os.path.join(args.bench_tokenizers, name + ".json"))
        return
    if args.fuzz_seeds:
        fuzz_seeds()
    rng = random.Random(6)
    texts = make_texts(rng, args.count)
    os.makedirs(OUT, exist_ok=True)
    dump(os.path.join(OUT, "texts.json"), {"generator": "tools/make_tokenizer_cases.py", "seed": 6,
                                           "tokenizers_version": tokenizers.__version__,
                                           "sentencepiece_version": spm.__version__, "texts": texts})

    tok = Tokenizer.from_file(FIXTURE_BPE)
    dump(os.path.join(OUT, "cases_tok_bpe.json"), hf_cases(tok, texts, "tok_bpe", "../tok_bpe/tokenizer.json", extra_modes=False))

    vtexts = texts[: args.variant_count]
    variants = variants_from_fixture()
    variants.update(variants_trained(texts))
    for name, spec in variants.items():
        path = os.path.join(OUT, name + ".json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(spec, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        tok = Tokenizer.from_file(path)
        dump(os.path.join(OUT, f"cases_{name}.json"), hf_cases(tok, vtexts, name, name + ".json"))

    sp = spm.SentencePieceProcessor(model_file=FIXTURE_SPM)
    cases = {"tokenizer": "../tok_spm/tokenizer.model", "count": len(texts), "ids": [], "decoded": {}, "decode_checked": 1000}
    for i, t in enumerate(texts):
        ids = sp.encode(t)
        cases["ids"].append(ids)
        d = sp.decode(ids)
        if d != t and i < 1000:  # decoding is checked on the first 1000 (size of the file)
            cases["decoded"][str(i)] = d
    dump(os.path.join(OUT, "cases_tok_spm.json"), cases)

    tokens, vocab_text = rwkv_vocab(rng, texts)
    with open(os.path.join(OUT, "rwkv_vocab_test.txt"), "w", encoding="utf-8") as f:
        f.write(vocab_text)
    token_to_id = {t: i for i, t in enumerate(tokens, start=1)}
    max_len = max(len(t) for t in tokens)
    dump(os.path.join(OUT, "cases_rwkv.json"), {"tokenizer": "rwkv_vocab_test.txt", "count": len(vtexts),
                                                 "ids": [rwkv_encode(token_to_id, max_len, t.encode()) for t in vtexts]})


if __name__ == "__main__":
    main()
