/* Writing a drawn picture (core/plot.h) to a PNG file for `cnn explain`, `cnn eval --plot`
 * and `cnn train --plot`. */
#include "image.h"
#include "tool.h"

#include <stdio.h>
#include <stdlib.h>

int tool_write_png(const char *cmd, const char *path, struct cnn_image *img)
{
    void *png = NULL;
    size_t len = 0;
    struct cnn_err err = {0};
    int rc = cnn_image_encode_png(img, &png, &len, &err);
    cnn_image_free(img);
    if (rc)
        return tool_fail(cmd, "%s: %s", path, err.msg);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(png, 1, len, f) == len;
    if (f && fclose(f) != 0)
        ok = 0;
    free(png);
    return ok ? TOOL_OK : tool_fail(cmd, "%s: cannot write the picture", path);
}
