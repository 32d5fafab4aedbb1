#include <strata/core/torch_error.h>

#include <c10/util/Exception.h>

#include <sstream>
#include <vector>

namespace strata {

namespace {
std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}
}  // namespace

std::string condense_torch_message(const std::exception& e) {
  std::string text;
  if (auto* c10e = dynamic_cast<const c10::Error*>(&e)) {
    text = c10e->what_without_backtrace();
  } else {
    text = e.what();
  }
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    line = trim(line);
    if (!line.empty()) lines.push_back(line);
  }
  if (lines.empty()) return "unknown error";
  // TorchScript errors end with the original exception ("RuntimeError: mat1 and mat2 ...").
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    const auto pos = it->find("Error: ");
    if (pos != std::string::npos && pos < 40) return *it;
  }
  // Schema mismatches ("Expected a value of type ... for argument 'x'") are on the first line.
  std::string first = lines.front();
  if (first.size() > 600) first = first.substr(0, 600) + "...";
  return first;
}

}  // namespace strata
