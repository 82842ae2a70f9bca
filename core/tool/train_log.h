/* `cnn train --log FILE.csv --plot FILE.png`: every step (and every epoch's validation) as a
 * CSV row, and the curves drawn at the end (core/plot.h).  CSV columns:
 *   kind,epoch,step,loss,accuracy,lr,images_per_s,val_loss,val_accuracy
 * kind "step": the step's own batch loss and accuracy, its learning rate, the epoch's images/s
 * so far, empty val_*; kind "epoch": the epoch's mean training loss and accuracy and its
 * validation loss and accuracy (empty without validation items).  epoch is 1-based, step
 * counts steps overall. */
#ifndef CNN_TOOL_TRAIN_LOG_H
#define CNN_TOOL_TRAIN_LOG_H

#include "train_loop.h"
#include "train_report.h"

#include <stdio.h>

struct train_log {
    struct train_report *report; /* also fed every call (the terminal output) */
    FILE *csv;                   /* NULL: no --log */
    int plot;                    /* keep points for --plot */
    double *step, *loss, *acc;   /* per step: loss and accuracy smoothed (EMA 0.05) */
    int n, cap;
    double *vstep, *vloss, *vacc; /* per epoch, validation */
    int nv, vcap;
    int nomem;
};

/* Opens csv_path (NULL: none) and writes the header; plot: keep the points.  TOOL_OK, or
 * prints why and returns TOOL_RUNTIME. */
int train_log_open(struct train_log *l, struct train_report *report, const char *csv_path,
                   int plot);
/* The cnn_loop_config progress callback (arg = struct train_log *). */
void train_log_progress(const struct cnn_train_progress *p, void *arg);
/* Writes the curves to png_path (when given), closes the CSV, frees.  TOOL_OK or
 * TOOL_RUNTIME (printed). */
int train_log_close(struct train_log *l, const char *png_path);

#endif
