// strata inspect MODEL.pt [--json]: the module tree with qualified names, types and tensor shapes.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>

#include <strata/model/model.h>

#include "cli_common.h"

namespace strata::cli {

namespace {
std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}
}  // namespace

void add_inspect(CLI::App& app, int& status) {
  auto* cmd = app.add_subcommand("inspect", "list a TorchScript model's modules and parameters");
  auto model_path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("model", *model_path, "TorchScript file (.pt)")->required();
  cmd->add_flag("--json", *json, "print JSON instead of a table");
  cmd->callback([model_path, json, &status] {
    Model model = Model::load(*model_path);
    if (*json) {
      nlohmann::json out;
      out["model"] = *model_path;
      out["hooked_call_sites"] = model.instrument_stats().call_sites;
      out["modules"] = nlohmann::json::array();
      for (const auto& m : model.modules()) {
        nlohmann::json j{{"name", m.name}, {"type", m.type_name}, {"qualified_type", m.qualified_type},
                         {"depth", m.depth}};
        j["tensors"] = nlohmann::json::array();
        for (const auto& t : m.tensors) {
          j["tensors"].push_back({{"name", t.name}, {"shape", t.shape}, {"dtype", t.dtype},
                                  {"buffer", t.is_buffer}});
        }
        out["modules"].push_back(j);
      }
      std::cout << out.dump(2) << "\n";
    } else {
      int64_t params = 0;
      for (const auto& m : model.modules()) {
        std::string tensors;
        for (const auto& t : m.tensors) {
          if (!t.is_buffer) {
            int64_t n = 1;
            for (auto d : t.shape) n *= d;
            params += n;
          }
          tensors += fmt::format("{}{}{} {}", tensors.empty() ? "" : "  ", t.is_buffer ? "(buffer) " : "",
                                 t.name, shape_text(t.shape));
        }
        const std::string indent(2 * m.depth, ' ');
        std::cout << fmt::format("{:<40} {:<22} {}\n", indent + (m.name.empty() ? "(root)" : m.name),
                                 m.type_name, tensors);
      }
      std::cout << fmt::format("{} modules, {} parameters, {} hooked submodule calls\n",
                               model.modules().size(), params, model.instrument_stats().call_sites);
    }
    status = 0;
  });
}

}  // namespace strata::cli
