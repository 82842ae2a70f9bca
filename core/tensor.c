/* Checked dimension products. */
#include "tensor.h"

int cnn_dims_count(const int *dims, int n, size_t *out)
{
    size_t total = 1;
    for (int i = 0; i < n; i++) {
        if (dims[i] < 0 || cnn_mul_size(total, (size_t)dims[i], &total))
            return -1;
    }
    *out = total;
    return 0;
}
