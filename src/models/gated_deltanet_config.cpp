#include "models/gated_deltanet_config.h"

#include <cmath>
#include <string>

namespace lrnn::models {

result<gdn_config> read_gdn_config(const io::config& cfg) {
  gdn_config c;
  LRNN_ASSIGN_OR_RETURN(auto common, io::read_common_model_config(cfg));
  c.D = common.hidden_size;
  LRNN_ASSIGN_OR_RETURN(c.H, cfg.get_int("num_heads", 6, 1, 4096));
  LRNN_ASSIGN_OR_RETURN(c.Kh, cfg.get_int("head_dim", 256, 1, 1 << 16));
  LRNN_ASSIGN_OR_RETURN(auto hv, cfg.get_optional_int("num_v_heads"));
  c.HV = hv ? *hv : c.H;
  if (c.HV < c.H || c.HV % c.H != 0)
    return make_error(status_code::unsupported, "{}: num_v_heads={} must be a multiple of num_heads={} (grouped value heads)",
                      cfg.source(), c.HV, c.H);
  LRNN_ASSIGN_OR_RETURN(c.expand_v, cfg.get_float("expand_v", 2.0));
  const double vh = static_cast<double>(c.Kh) * c.expand_v;
  c.Vh = static_cast<int64_t>(vh);
  if (c.Vh < 1 || std::abs(vh - static_cast<double>(c.Vh)) > 1e-5 * vh)
    return make_error(status_code::invalid_argument, "{}: head_dim={} * expand_v={} is not a positive integer head value dim",
                      cfg.source(), c.Kh, c.expand_v);
  c.key_dim = c.H * c.Kh;
  c.value_dim = c.HV * c.Vh;
  LRNN_ASSIGN_OR_RETURN(c.eps, cfg.get_float("norm_eps", 1e-6));
  LRNN_ASSIGN_OR_RETURN(c.use_gate, cfg.get_bool("use_gate", true));
  LRNN_ASSIGN_OR_RETURN(c.short_conv, cfg.get_bool("use_short_conv", true));
  LRNN_ASSIGN_OR_RETURN(c.conv_size, cfg.get_int("conv_size", 4, 1, 64));
  LRNN_ASSIGN_OR_RETURN(c.conv_bias, cfg.get_bool("conv_bias", false));
  LRNN_ASSIGN_OR_RETURN(c.allow_neg_eigval, cfg.get_bool("allow_neg_eigval", false));
  LRNN_ASSIGN_OR_RETURN(std::string act, cfg.get_string("hidden_act", "swish"));
  if (act != "swish" && act != "silu")
    return make_error(status_code::unsupported, "{}: hidden_act '{}' is not supported (swish only)", cfg.source(), act);
  return c;
}

}  // namespace lrnn::models
