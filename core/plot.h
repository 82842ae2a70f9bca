/* Pictures drawn into 8-bit RGB images (struct cnn_image, c = 3) for cnn_image_encode_png():
 * a saliency heatmap over the model's input, the first conv layer's filters as a grid, a
 * confusion matrix and training curves.  Plain raster drawing with a built-in 3x5 pixel font
 * (digits, upper-case letters, a little punctuation); no fonts or libraries beyond libc.
 * Every function allocates out->pix (owned by the caller: cnn_image_free()). */
#ifndef CNN_PLOT_H
#define CNN_PLOT_H

#include "err.h"
#include "image.h"
#include "model.h"

/* The model input (C, H, W) as a picture (mean/std undone, invert undone, gray or RGB),
 * each pixel a scale x scale block, with map (H, W) (>= 0, any range) over it: the map is
 * normalised to its 99th percentile and drawn in a black-red-yellow-white scale whose
 * opacity grows with the value.  scale 1..64. */
int cnn_plot_heatmap(const float *input, const struct cnn_preproc *pp, const float *map,
                     int scale, struct cnn_image *out, struct cnn_err *err);

/* The first conv layer's filters (OC tiles in a near-square grid, each KH x KW weight drawn
 * as a block, min-max normalised per filter; RGB when the layer has 3 input channels, else
 * the first channel in gray).  CNN_ENOENT when the model has no conv layer. */
int cnn_plot_filters(const struct cnn_model *m, struct cnn_image *out, struct cnn_err *err);

/* Confusion matrix cm[true * K + predicted] (K 1..100): cells shaded by the row's fraction,
 * counts written in the cells when they fit, class numbers along both axes. */
int cnn_plot_confusion(const long *cm, int K, struct cnn_image *out, struct cnn_err *err);

/* Training curves: the top panel loss, the bottom accuracy (0..1), x = step.  n points of
 * the training run (step[i], loss[i], acc[i]) as lines; n_val per-epoch validation points
 * (val_step, val_loss, val_acc; NULL when n_val = 0) as dots.  Non-finite values are
 * skipped.  n >= 1. */
int cnn_plot_curves(const double *step, const double *loss, const double *acc, int n,
                    const double *val_step, const double *val_loss, const double *val_acc,
                    int n_val, struct cnn_image *out, struct cnn_err *err);

#endif
