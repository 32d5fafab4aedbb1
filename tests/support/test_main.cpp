// Shared main for strata's test binaries: one intra-op thread, so results compare exactly with
// the PyTorch references (recorded with torch.set_num_threads(1)).
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

int main(int argc, char** argv) {
  at::set_num_threads(1);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
