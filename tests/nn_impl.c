/* The one translation unit of the tests that holds the implementation. */
#define NN_IMPLEMENTATION
#include "nn.h"
