/* `cnn train` output: a \r-redrawn progress bar on a terminal (at most 5 redraws a second),
 * one line per epoch, and the steady-state images/s the training benchmark reads. */
#include "train_report.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#define BAR_WIDTH 24

void train_report_init(struct train_report *r, FILE *out, int quiet, long warm_steps)
{
    memset(r, 0, sizeof *r);
    r->out = out;
    r->tty = isatty(fileno(out));
    r->quiet = quiet;
    r->warm_steps = warm_steps;
    r->warm_t_s = -1;
    r->last_draw_s = -1;
}

void train_report_hms(double s, char *buf, size_t n)
{
    if (!isfinite(s) || s < 0) {
        snprintf(buf, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

void train_report_clear(struct train_report *r)
{
    if (r->bar_len > 0) {
        fprintf(r->out, "\r%*s\r", r->bar_len, "");
        fflush(r->out);
        r->bar_len = 0;
    }
}

static void draw_bar(struct train_report *r, const struct cnn_train_progress *p)
{
    double frac = p->steps_per_epoch ? (double)p->step / p->steps_per_epoch : 0;
    int fill = (int)(frac * BAR_WIDTH);
    char bar[BAR_WIDTH + 1], eta[32];
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    train_report_hms(p->eta_s, eta, sizeof eta);
    int len = fprintf(r->out,
                      "\repoch %d/%d [%s] %3.0f%% %ld/%ld  loss %.4f  acc %.2f%%  %.0f img/s  "
                      "ETA %s ",
                      p->epoch + 1, p->epochs, bar, 100 * frac, p->step, p->steps_per_epoch,
                      p->loss, 100 * p->accuracy, p->items_per_s, eta);
    if (len > 1 && len - 1 < r->bar_len) /* pad over a longer previous line */
        fprintf(r->out, "%*s", r->bar_len - (len - 1), "");
    if (len - 1 > r->bar_len)
        r->bar_len = len - 1;
    fflush(r->out);
}

static void epoch_line(struct train_report *r, const struct cnn_train_progress *p)
{
    const struct cnn_epoch_result *e = p->epoch_done;
    train_report_clear(r);
    if (r->quiet)
        return;
    fprintf(r->out, "epoch %d/%d  train loss %.4f acc %.2f%%", e->epoch + 1, p->epochs,
            e->train_loss, 100 * e->train_acc);
    if (isnan(e->val_acc))
        fprintf(r->out, "  val -");
    else
        fprintf(r->out, "  val loss %.4f acc %.2f%%", e->val_loss, 100 * e->val_acc);
    fprintf(r->out, "  lr %.4g  %.1f s  %.0f img/s\n", (double)p->lr, e->seconds, e->items_per_s);
    fflush(r->out);
}

void train_report_progress(const struct cnn_train_progress *p, void *arg)
{
    struct train_report *r = arg;
    if (p->epoch_done) {
        epoch_line(r, p);
        return;
    }
    r->items = p->total_items;
    r->end_t_s = p->elapsed_s;
    if (p->total_step == r->warm_steps) {
        r->warm_t_s = p->elapsed_s;
        r->warm_items = r->items;
    }
    if (r->tty && !r->quiet &&
        (r->last_draw_s < 0 || p->elapsed_s - r->last_draw_s >= 0.2 ||
         p->step == p->steps_per_epoch)) {
        r->last_draw_s = p->elapsed_s;
        draw_bar(r, p);
    }
}

double train_report_items_per_s(const struct train_report *r, long *items, double *seconds)
{
    long n = r->items - (r->warm_t_s >= 0 ? r->warm_items : 0);
    double t = r->end_t_s - (r->warm_t_s >= 0 ? r->warm_t_s : 0);
    if (items)
        *items = n;
    if (seconds)
        *seconds = t;
    return t > 0 ? n / t : 0;
}
