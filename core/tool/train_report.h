/* What `cnn train` prints while training: on a terminal a progress bar redrawn with \r
 * (epoch, percentage, loss, accuracy, images/s, ETA), else nothing between epochs; one
 * summary line per epoch either way; and the throughput of the steady-state steps. */
#ifndef CNN_TOOL_TRAIN_REPORT_H
#define CNN_TOOL_TRAIN_REPORT_H

#include "train_loop.h"

#include <stdio.h>

struct train_report {
    FILE *out;
    int tty;            /* draw the \r progress bar */
    int quiet;          /* no per-epoch lines */
    double last_draw_s; /* when the bar was last drawn (elapsed seconds) */
    int bar_len;        /* characters of the bar on screen, 0 when none */
    long warm_steps;    /* steps before the throughput clock starts */
    double warm_t_s;    /* elapsed seconds when it started, < 0 before */
    long warm_items;    /* items done by then */
    long items;         /* training items done so far */
    double end_t_s;     /* elapsed seconds at the last step */
};

/* Sets up r for printing to out; warm_steps: steps left out of the throughput figure. */
void train_report_init(struct train_report *r, FILE *out, int quiet, long warm_steps);

/* The cnn_loop_config progress callback (arg = struct train_report *). */
void train_report_progress(const struct cnn_train_progress *p, void *arg);

/* Clears a bar still on screen (after an error or interrupt). */
void train_report_clear(struct train_report *r);

/* Steady-state throughput: items/s after the warm-up steps (all steps when too few); 0
 * when nothing ran.  *items and *seconds get what it was measured over (may be NULL). */
double train_report_items_per_s(const struct train_report *r, long *items, double *seconds);

/* "1:02:03" or "4:05" into buf. */
void train_report_hms(double s, char *buf, size_t n);

#endif
