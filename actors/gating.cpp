#include "actors/gating.hpp"

#include "base/error.hpp"
#include "model/forward.hpp"

namespace volt {

gating_actor::behavior_type
gating(gating_actor::pointer, std::shared_ptr<const dense_weights> weights) {
  return {
    [weights](route_atom, uint32_t layer,
              const wire_tensor& rows) -> caf::result<routing_result> {
      const auto& cfg = weights->config;
      if (layer >= cfg.num_hidden_layers)
        return make_volt_error(
          volt_errc::invalid_request,
          "route: layer " + std::to_string(layer) + " is outside the model ("
            + std::to_string(cfg.num_hidden_layers) + " layers)");
      if (auto err = check_wire_tensor(rows, dtype::f32, {-1, cfg.hidden_size},
                                       "route: rows"))
        return err;
      std::vector<float> x;
      unpack_f32(rows, x);
      const auto n = rows.shape[0];
      std::vector<int32_t> ids;
      std::vector<float> wgts;
      route(*weights, layer, x.data(), n, ids, wgts);
      const auto k = cfg.num_experts_per_tok;
      return routing_result{pack_i32(ids.data(), {n, k}),
                            pack_f32(wgts.data(), {n, k})};
    },
  };
}

} // namespace volt
