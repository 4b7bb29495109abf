// `lrnn generate`: text or token generation with sampling, streaming output, batches of
// prompts, saved/restored recurrent states, and tokens/s + peak memory at the end.
#include "command.h"

#include "generate/generate.h"
#include "io/json.h"
#include "io/npy.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"

#include <cstdio>
#include <optional>
#include <sstream>

namespace lrnn::cli {
namespace {

struct generate_cli_options {
  std::string model, ids, ids_npy, tokenizer, save_state, load_state, form = "auto", stop_ids;
  std::vector<std::string> prompts;
  gen::sampling_options sampling;
  int64_t max_new_tokens = 64;
  bool json = false, no_stream = false;
};

result<std::vector<int64_t>> parse_id_list(const std::string& s, const char* what) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t pos = 0;
      const long long v = std::stoll(item, &pos);
      if (pos != item.size()) throw std::invalid_argument(item);
      out.push_back(v);
    } catch (...) {
      return make_error(status_code::invalid_argument, "{}: '{}' is not an integer token id", what, item);
    }
  }
  return out;
}

status run_generate(const generate_cli_options& o) {
  LRNN_TRY(gen::validate(o.sampling));
  LRNN_ASSIGN_OR_RETURN(models::compute_form form, models::compute_form_from_name(o.form));
  LRNN_ASSIGN_OR_RETURN(auto m, models::load_model(o.model));

  std::unique_ptr<tok::tokenizer> tk;
  if (!o.prompts.empty() || !o.tokenizer.empty()) {
    std::optional<std::string> explicit_path;
    if (!o.tokenizer.empty()) explicit_path = o.tokenizer;
    LRNN_ASSIGN_OR_RETURN(tk, tok::load_tokenizer_for_model_dir(o.model, explicit_path));
  }

  std::vector<std::vector<int64_t>> prompts;
  if (!o.ids.empty()) {
    LRNN_ASSIGN_OR_RETURN(auto v, parse_id_list(o.ids, "--ids"));
    prompts.push_back(v);
  }
  if (!o.ids_npy.empty()) {
    LRNN_ASSIGN_OR_RETURN(tensor t, io::read_npy(o.ids_npy));
    if (t.dim() == 1) {
      LRNN_ASSIGN_OR_RETURN(t, t.unsqueeze(0));
    }
    if (t.dim() != 2 || is_floating(t.type()))
      return make_error(status_code::invalid_argument, "{}: expected integer token ids [B, T], got {}", o.ids_npy, t.describe());
    for (int64_t b = 0; b < t.size(0); ++b) {
      std::vector<int64_t> p;
      for (int64_t i = 0; i < t.size(1); ++i) p.push_back(static_cast<int64_t>(t.at({b, i})));
      prompts.push_back(std::move(p));
    }
  }
  for (const std::string& text : o.prompts) {
    LRNN_ASSIGN_OR_RETURN(auto ids, tk->encode(text));
    prompts.emplace_back(ids.begin(), ids.end());
  }
  std::optional<models::model_state> start;
  if (!o.load_state.empty()) {
    LRNN_ASSIGN_OR_RETURN(auto st, models::load_state(o.load_state, m->model_type(), m->config_fingerprint()));
    start = std::move(st);
    if (prompts.empty()) prompts.resize(static_cast<size_t>(start->batch));
  }
  if (prompts.empty())
    return make_error(status_code::invalid_argument, "no prompt: give --prompt TEXT, --ids 1,2,3, --ids-npy FILE or --load-state FILE");
  for (size_t b = 0; b < prompts.size(); ++b)
    if (prompts[b].empty() && !start)
      return make_error(status_code::invalid_argument, "prompt {} is empty", b);

  gen::generate_options go;
  go.max_new_tokens = o.max_new_tokens;
  go.sampling = o.sampling;
  go.prefill_form = form;
  if (!o.stop_ids.empty()) {
    LRNN_ASSIGN_OR_RETURN(go.stop_ids, parse_id_list(o.stop_ids, "--stop-ids"));
  }

  // Streaming: one prompt streams text (or ids) as produced; a batch prints at the end.
  const bool stream = !o.json && !o.no_stream && prompts.size() == 1;
  std::optional<tok::stream_decoder> sd;
  if (tk) sd.emplace(*tk);
  status stream_error;
  if (stream) {
    go.on_token = [&](int64_t, int64_t id) {
      if (sd) {
        auto piece = sd->put(static_cast<tok::token_id>(id));
        if (!piece.ok()) {
          stream_error = piece.get_status();
          return;
        }
        std::fputs(piece->c_str(), stdout);
      } else {
        std::printf("%lld ", static_cast<long long>(id));
      }
      std::fflush(stdout);
    };
  }
  models::model_state after;
  LRNN_ASSIGN_OR_RETURN(auto res, gen::generate(*m, prompts, go, start ? &*start : nullptr,
                                                 o.save_state.empty() ? nullptr : &after));
  LRNN_TRY(stream_error);
  if (!o.save_state.empty()) LRNN_TRY(models::save_state(o.save_state, after, m->model_type(), m->config_fingerprint()));

  const auto& s = res.stats;
  const double prefill_tps = s.prefill_seconds > 0 ? static_cast<double>(s.prefill_tokens) / s.prefill_seconds : 0;
  const double decode_tps = s.decode_seconds > 0 ? static_cast<double>(s.decode_tokens) / s.decode_seconds : 0;
  if (o.json) {
    io::json j;
    j["model_type"] = m->model_type();
    j["ids"] = res.ids;
    if (tk) {
      io::json texts = io::json::array();
      for (const auto& ids : res.ids) {
        std::vector<tok::token_id> t(ids.begin(), ids.end());
        LRNN_ASSIGN_OR_RETURN(std::string text, tk->decode(t));
        texts.push_back(text);
      }
      j["text"] = texts;
    }
    j["prefill_tokens"] = s.prefill_tokens;
    j["prefill_seconds"] = s.prefill_seconds;
    j["prefill_tokens_per_second"] = prefill_tps;
    j["decode_tokens"] = s.decode_tokens;
    j["decode_seconds"] = s.decode_seconds;
    j["decode_tokens_per_second"] = decode_tps;
    j["peak_rss_bytes"] = s.peak_rss_bytes;
    io::json at = io::json::object();
    for (const auto& [n, bytes] : s.peak_rss_at_tokens) at[std::to_string(n)] = bytes;
    j["peak_rss_at_tokens"] = at;
    j["state_bytes"] = s.state_bytes;
    std::printf("%s\n", j.dump(-1, ' ', false, io::json::error_handler_t::replace).c_str());
    return {};
  }
  if (stream) {
    if (sd) std::fputs(sd->flush().c_str(), stdout);
    std::printf("\n");
  } else {
    for (size_t b = 0; b < res.ids.size(); ++b) {
      if (tk) {
        std::vector<tok::token_id> t(res.ids[b].begin(), res.ids[b].end());
        LRNN_ASSIGN_OR_RETURN(std::string text, tk->decode(t));
        std::printf("[%zu] %s\n", b, text.c_str());
      } else {
        std::printf("[%zu]", b);
        for (int64_t id : res.ids[b]) std::printf(" %lld", static_cast<long long>(id));
        std::printf("\n");
      }
    }
  }
  std::fflush(stdout);  // the generated text (and its final newline) before the statistics on stderr
  std::fprintf(stderr, "prefill: %lld tokens, %.1f tokens/s | decode: %lld tokens, %.1f tokens/s | peak memory %.1f MiB, state %.1f KiB\n",
               static_cast<long long>(s.prefill_tokens), prefill_tps, static_cast<long long>(s.decode_tokens), decode_tps,
               static_cast<double>(s.peak_rss_bytes) / (1 << 20), static_cast<double>(s.state_bytes) / 1024);
  return {};
}

runner setup(CLI::App& app, const global_options&) {
  auto o = std::make_shared<generate_cli_options>();
  app.add_option("--model", o->model, "model directory (config.json + safetensors)")->required();
  app.add_option("--prompt", o->prompts, "prompt text (repeat for a batch); needs a tokenizer");
  app.add_option("--ids", o->ids, "prompt as comma-separated token ids, e.g. 1,2,3");
  app.add_option("--ids-npy", o->ids_npy, "prompts as an integer .npy [B, T] (or [T])");
  app.add_option("--tokenizer", o->tokenizer, "tokenizer file or directory (default: found in the model directory)");
  app.add_option("--max-new-tokens,-n", o->max_new_tokens, "tokens to generate per prompt")->check(CLI::NonNegativeNumber);
  app.add_flag("--greedy", o->sampling.greedy, "always take the most likely token");
  app.add_option("--temperature", o->sampling.temperature, "sampling temperature (0 = greedy)");
  app.add_option("--top-k", o->sampling.top_k, "keep the k most likely tokens (0 = off)");
  app.add_option("--top-p", o->sampling.top_p, "nucleus sampling: keep the smallest set with probability >= p");
  app.add_option("--min-p", o->sampling.min_p, "drop tokens with probability < min-p * the top probability");
  app.add_option("--repetition-penalty", o->sampling.repetition_penalty, "penalise tokens already seen (1 = off)");
  app.add_option("--seed", o->sampling.seed, "random seed (prompt b uses seed + b)");
  app.add_option("--stop-ids", o->stop_ids, "comma-separated token ids that end a sequence");
  app.add_option("--form", o->form, "prefill form: auto | chunk | recurrent | parallel (decoding is recurrent)")
      ->check(CLI::IsMember({"auto", "chunk", "recurrent", "parallel"}));
  app.add_option("--save-state", o->save_state, "write the recurrent state after the prompt to this file");
  app.add_option("--load-state", o->load_state, "continue from a state saved with --save-state (the prompt may be empty)");
  app.add_flag("--json", o->json, "print one JSON object: generated ids (and text), timings, memory");
  app.add_flag("--no-stream", o->no_stream, "print the result at the end instead of streaming");
  return [o] { return run_generate(*o); };
}

}  // namespace

LRNN_CLI_COMMAND(generate, "generate", "Generate tokens or text from a model (greedy or sampled, streamed)", setup);

}  // namespace lrnn::cli
