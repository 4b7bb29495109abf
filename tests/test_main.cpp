// Test entry point: fresh buffers are NaN-poisoned in every test run.
#include "lrnn/tensor.h"

#include <gtest/gtest.h>

int main(int argc, char** argv) {
  lrnn::set_poison_fresh_buffers(true);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
