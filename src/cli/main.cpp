// The `strata` command: one subcommand per analysis. Exit status 0 on success, 2 on usage errors,
// 1 on runtime errors, with one line "strata: error: ..." on stderr.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdio>
#include <thread>

#include <strata/core/error.h>
#include <strata/core/memory.h>
#include <strata/core/torch_error.h>

#include "cli_common.h"

int main(int argc, char** argv) {
  CLI::App app{"strata: layer-wise interpretability for TorchScript models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "strata 0.1.0");
  // Captures free and re-allocate large blocks every pass; keep them instead of paying page
  // faults (docs/benchmarks.md).
  strata::retain_freed_memory();
  // LibTorch here defaults to one intra-op thread; use the machine unless told otherwise.
  at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  app.add_option_function<int>(
         "--threads", [](const int& n) { at::set_num_threads(n); },
         "intra-op threads (default: all cores)")
      ->check(CLI::Range(1, 4096));
  int status = 0;
  strata::cli::add_inspect(app, status);
  strata::cli::add_capture(app, status);
  strata::cli::add_stats(app, status);
  strata::cli::add_lens(app, status);
  strata::cli::add_lens_train(app, status);
  strata::cli::add_lrp(app, status);
  strata::cli::add_probe(app, status);
  strata::cli::add_modality(app, status);
  // Name an unknown subcommand (CLI11 would only say that one is required).
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--threads") {
      ++i;
      continue;
    }
    if (arg.empty() || arg[0] == '-') continue;
    const auto known = app.get_subcommands([&arg](const CLI::App* sub) { return sub->get_name() == arg; });
    if (known.empty()) {
      std::fprintf(stderr, "strata: error: unknown subcommand '%s' (use inspect, capture, stats, lens, lens-train, lrp, modality or probe; "
                   "see strata --help)\n", arg.c_str());
      return 2;
    }
    break;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "strata: error: %s (see strata --help)\n", e.what());
    return 2;
  } catch (const strata::cli::UsageError& e) {
    std::fprintf(stderr, "strata: error: %s\n", e.what());
    return 2;
  } catch (const strata::Error& e) {
    std::fprintf(stderr, "strata: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "strata: error: %s\n", strata::condense_torch_message(e).c_str());
    return 1;
  }
  return status;
}
