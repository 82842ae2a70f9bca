/* Top-k selection, labels and classification strings (see predict.h). */
#include "predict.h"

#include "jsonw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a ranks before b: higher score, then lower index; NaN after every number. */
static int before(const struct prediction *a, const struct prediction *b)
{
    int a_nan = a->score != a->score, b_nan = b->score != b->score;
    if (a_nan != b_nan)
        return b_nan;
    if (!a_nan && a->score != b->score)
        return a->score > b->score;
    return a->index < b->index;
}

static int by_rank(const void *pa, const void *pb)
{
    const struct prediction *a = pa, *b = pb;
    return before(a, b) ? -1 : before(b, a) ? 1 : 0;
}

int predict_topk(const float *scores, int classes, int k, struct prediction *out,
                 struct cnn_err *err)
{
    if (k < 1 || k > classes)
        return cnn_err_set(err, CNN_EINVAL, "top k %d outside 1..%d", k, classes);
    if (k <= 16) { /* insertion into the k best so far: O(classes * k), no memory */
        int have = 0;
        for (int i = 0; i < classes; i++) {
            struct prediction p = {i, scores[i]};
            if (have == k && !before(&p, &out[k - 1]))
                continue;
            int j = have < k ? have++ : k - 1;
            while (j > 0 && before(&p, &out[j - 1])) {
                out[j] = out[j - 1];
                j--;
            }
            out[j] = p;
        }
        return 0;
    }
    struct prediction *all = malloc((size_t)classes * sizeof *all);
    if (!all)
        return cnn_err_set(err, CNN_ENOMEM, "out of memory for top %d", k);
    for (int i = 0; i < classes; i++)
        all[i] = (struct prediction){i, scores[i]};
    qsort(all, (size_t)classes, sizeof *all, by_rank);
    for (int i = 0; i < k; i++)
        out[i] = all[i];
    free(all);
    return 0;
}

const char *predict_label(const struct cnn_model *m, int i, char *buf, size_t cap)
{
    const char *label = cnn_model_label(m, i);
    if (label)
        return label;
    snprintf(buf, cap, "class%d", i);
    return buf;
}

int predict_format_class(char *buf, size_t cap, float score, int index, const char *label)
{
    int n = snprintf(buf, cap, "%f:%d:%s", (double)score, index, label);
    return (n < 0 || (size_t)n >= cap) ? -1 : n;
}

json_t *predict_json_string(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t n = strlen(s);
    char *copy = malloc(n + 1);
    if (!copy)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        copy[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    j = json_string(copy);
    free(copy);
    return j;
}

int predict_write_top(struct jsonw *w, const struct cnn_model *m, const float *scores, int k,
                      struct cnn_err *err)
{
    int classes = cnn_model_num_classes(m);
    struct prediction best[16], *top = k <= 16 ? best : malloc((size_t)k * sizeof *top);
    if (!top)
        return cnn_err_set(err, CNN_ENOMEM, "out of memory for the answer");
    int rc = predict_topk(scores, classes, k, top, err);
    for (int i = 0; rc == 0 && i < k; i++) {
        char buf[32];
        jw_raw(w, i ? ",{\"label\":" : "[{\"label\":");
        jw_str(w, predict_label(m, top[i].index, buf, sizeof buf));
        jw_raw(w, ",\"index\":");
        jw_int(w, top[i].index);
        jw_raw(w, ",\"score\":");
        jw_float(w, top[i].score);
        jw_raw(w, "}");
    }
    if (rc == 0)
        jw_raw(w, k ? "]" : "[]");
    if (top != best)
        free(top);
    return rc;
}
