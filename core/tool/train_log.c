/* The training log and curves of `cnn train` (see train_log.h). */
#include "train_log.h"

#include "image.h"
#include "plot.h"
#include "tool.h"

#include <math.h>
#include <stdlib.h>

int train_log_open(struct train_log *l, struct train_report *report, const char *csv_path,
                   int plot)
{
    *l = (struct train_log){.report = report, .plot = plot};
    if (!csv_path)
        return TOOL_OK;
    if (!(l->csv = fopen(csv_path, "w")))
        return tool_fail("train", "--log %s: cannot open for writing", csv_path);
    fprintf(l->csv, "kind,epoch,step,loss,accuracy,lr,images_per_s,val_loss,val_accuracy\n");
    return TOOL_OK;
}

/* Appends (x, a, b, c) to three parallel arrays of capacity *cap. */
static int push(double **x, double **a, double **b, int *n, int *cap, double vx, double va,
                double vb)
{
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 1024;
        double *nx = realloc(*x, (size_t)nc * sizeof **x);
        if (nx)
            *x = nx;
        double *na = nx ? realloc(*a, (size_t)nc * sizeof **a) : NULL;
        if (na)
            *a = na;
        double *nb = na ? realloc(*b, (size_t)nc * sizeof **b) : NULL;
        if (!nb)
            return -1;
        *b = nb;
        *cap = nc;
    }
    (*x)[*n] = vx, (*a)[*n] = va, (*b)[*n] = vb;
    (*n)++;
    return 0;
}

static void csv_num(FILE *f, double v, int last)
{
    if (isfinite(v))
        fprintf(f, "%.6g", v);
    fputc(last ? '\n' : ',', f);
}

void train_log_progress(const struct cnn_train_progress *p, void *arg)
{
    struct train_log *l = arg;
    train_report_progress(p, l->report);
    const struct cnn_epoch_result *e = p->epoch_done;
    if (l->csv) {
        fprintf(l->csv, "%s,%d,%ld,", e ? "epoch" : "step", p->epoch + 1, p->total_step);
        csv_num(l->csv, e ? e->train_loss : p->step_loss, 0);
        csv_num(l->csv, e ? e->train_acc : p->step_accuracy, 0);
        csv_num(l->csv, p->lr, 0);
        csv_num(l->csv, p->items_per_s, 0);
        csv_num(l->csv, e ? e->val_loss : NAN, 0);
        csv_num(l->csv, e ? e->val_acc : NAN, 1);
    }
    if (!l->plot || l->nomem)
        return;
    if (e) {
        l->nomem = push(&l->vstep, &l->vloss, &l->vacc, &l->nv, &l->vcap, (double)p->total_step,
                        e->val_loss, e->val_acc);
        return;
    }
    double sl = p->step_loss, sa = p->step_accuracy; /* exponential moving average */
    if (l->n > 0 && isfinite(l->loss[l->n - 1]))
        sl = 0.95 * l->loss[l->n - 1] + 0.05 * sl, sa = 0.95 * l->acc[l->n - 1] + 0.05 * sa;
    l->nomem = push(&l->step, &l->loss, &l->acc, &l->n, &l->cap, (double)p->total_step, sl, sa);
}

int train_log_close(struct train_log *l, const char *png_path)
{
    int rc = TOOL_OK;
    if (l->csv && fclose(l->csv) != 0)
        rc = tool_fail("train", "--log: write failed");
    if (png_path && rc == TOOL_OK) {
        struct cnn_image img;
        struct cnn_err err = {0};
        if (l->nomem || l->n == 0)
            rc = tool_fail("train", "--plot: %s", l->nomem ? "out of memory" : "no steps ran");
        else if (cnn_plot_curves(l->step, l->loss, l->acc, l->n, l->vstep, l->vloss, l->vacc,
                                 l->nv, &img, &err) != 0)
            rc = tool_fail("train", "--plot: %s", err.msg);
        else
            rc = tool_write_png("train", png_path, &img);
    }
    free(l->step), free(l->loss), free(l->acc);
    free(l->vstep), free(l->vloss), free(l->vacc);
    *l = (struct train_log){0};
    return rc;
}
