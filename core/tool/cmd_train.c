/* `cnn train ARCH|MODEL --data PATH ...`: trains a fresh architecture (seeded random
 * weights) or fine-tunes a model file (optionally frozen up to a layer, with a new head for
 * a new label set) on an IDX or class-folder dataset through the training driver
 * (train_driver.h), printing progress, and writes the result with its lineage metadata
 * only at the end through cnn_model_save() (atomic), so
 * Ctrl-C / SIGTERM (stop at the next step boundary) or a kill never leave a partial file. */
#include "arch.h"
#include "gemm.h"
#include "opts.h"
#include "tool.h"
#include "tool_data.h"
#include "train_driver.h"
#include "train_log.h"
#include "train_report.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char USAGE[] =
    "usage: cnn train ARCH|MODEL --data PATH [--out FILE] [options]\n"
    "Trains architecture ARCH (a name from 'cnn init --list' or arch:NAME; random weights\n"
    "from --seed) or fine-tunes the model file MODEL on a dataset, then writes FILE\n"
    "atomically with the lineage (parent, dataset, hyperparameters, final metrics) in its\n"
    "metadata.  Ctrl-C or SIGTERM stops at the next step and writes nothing.\n"
    "data:\n"
    "  --data PATH        IDX files (a folder holding <split>-images-idx3-ubyte[.gz] and\n"
    "                     <split>-labels-idx1-ubyte[.gz], or an images file) or a folder with\n"
    "                     one subfolder of PNG/JPEG images per class\n"
    "  --format F         auto, idx or folder (default auto)\n"
    "  --split NAME       IDX file prefix in a folder (default train)\n"
    "  --classes LIST     keep only these dataset classes, e.g. 0,2,7 (renumbered 0,1,2)\n"
    "  --val-split F      stratified fraction held out for validation, 0..0.9 (default 0.1)\n"
    "  --augment LIST     none, crop, flip or crop,flip (default none; flip is wrong for digits)\n"
    "  --crop-pad P       random crop padding in pixels, 1..64 (default 2)\n"
    "model:\n"
    "  --labels LIST      class names a,b,c; for MODEL a new head for this label set\n"
    "                     (default: folder names, else class0..; MODEL keeps its labels)\n"
    "  --freeze LAYER     do not train LAYER and the layers before it\n"
    "optimiser:\n"
    "  --epochs N         1..10000 (default 10)\n"
    "  --batch N          1..4096 (default 64)\n"
    "  --lr X             base learning rate (default 0.05)\n"
    "  --momentum X       0..0.999 (default 0.9)\n"
    "  --nesterov         Nesterov momentum\n"
    "  --weight-decay X   L2 on conv/dense weights (default 5e-4)\n"
    "  --schedule S       const, step or cosine (default cosine)\n"
    "  --step-epochs N    step schedule: epochs per decay (default epochs/3)\n"
    "  --gamma X          step schedule: decay factor (default 0.1)\n"
    "  --warmup E         linear warm-up over E epochs, may be fractional (default 0)\n"
    "run:\n"
    "  --seed N           weights, shuffling, augmentation, dropout (default 1)\n"
    "  --threads T        threads a step's layers split over, 1..256 (default: one per\n"
    "                     online CPU; BLAS then runs one thread in each)\n"
    "  --steps N          stop after N steps overall and report images/s (benchmarks)\n"
    "  --out FILE         the trained model (default: nothing is written)\n"
    "  --quiet            no progress and no per-epoch lines\n"
    "  --log FILE.csv     every step and epoch as a CSV row: kind,epoch,step,loss,accuracy,\n"
    "                     lr,images_per_s,val_loss,val_accuracy (kind: step or epoch)\n"
    "  --plot FILE.png    loss and accuracy curves (steps, smoothed; validation per epoch)\n"
    "example: cnn train fashion_cnn --data /usr/share/datasets/fashion-mnist --epochs 15 \\\n"
    "           --augment crop,flip --out fashion.cnn\n";

enum {
    O_DATA,
    O_FORMAT,
    O_SPLIT,
    O_CLASSES,
    O_VAL,
    O_AUGMENT,
    O_CROP_PAD,
    O_LABELS,
    O_FREEZE,
    O_EPOCHS,
    O_BATCH,
    O_LR,
    O_MOMENTUM,
    O_NESTEROV,
    O_WD,
    O_SCHEDULE,
    O_STEP_EPOCHS,
    O_GAMMA,
    O_WARMUP,
    O_SEED,
    O_THREADS,
    O_STEPS,
    O_OUT,
    O_QUIET,
    O_LOG,
    O_PLOT,
    O_COUNT
};
static const struct opt_spec SPEC[O_COUNT] = {[O_DATA] = {"--data", 1},
                                              [O_FORMAT] = {"--format", 1},
                                              [O_SPLIT] = {"--split", 1},
                                              [O_CLASSES] = {"--classes", 1},
                                              [O_VAL] = {"--val-split", 1},
                                              [O_AUGMENT] = {"--augment", 1},
                                              [O_CROP_PAD] = {"--crop-pad", 1},
                                              [O_LABELS] = {"--labels", 1},
                                              [O_FREEZE] = {"--freeze", 1},
                                              [O_EPOCHS] = {"--epochs", 1},
                                              [O_BATCH] = {"--batch", 1},
                                              [O_LR] = {"--lr", 1},
                                              [O_MOMENTUM] = {"--momentum", 1},
                                              [O_NESTEROV] = {"--nesterov", 0},
                                              [O_WD] = {"--weight-decay", 1},
                                              [O_SCHEDULE] = {"--schedule", 1},
                                              [O_STEP_EPOCHS] = {"--step-epochs", 1},
                                              [O_GAMMA] = {"--gamma", 1},
                                              [O_WARMUP] = {"--warmup", 1},
                                              [O_SEED] = {"--seed", 1},
                                              [O_THREADS] = {"--threads", 1},
                                              [O_STEPS] = {"--steps", 1},
                                              [O_OUT] = {"--out", 1},
                                              [O_QUIET] = {"--quiet", 0},
                                              [O_LOG] = {"--log", 1},
                                              [O_PLOT] = {"--plot", 1}};

struct train_args {
    const char *spec, *out, *freeze, *labels, *log, *plot;
    struct tool_data_opts data;
    long long epochs, batch, step_epochs, threads, steps, crop_pad;
    double val_split, lr, momentum, wd, gamma, warmup;
    int nesterov, quiet, crop, flip;
    enum cnn_lr_schedule schedule;
    uint64_t seed;
};

static atomic_int g_stop; /* the signal that asked to stop, 0 while running */

static void on_signal(int sig)
{
    atomic_store(&g_stop, sig);
}

static int parse_augment(const char *s, struct train_args *a)
{
    if (!s || strcmp(s, "none") == 0)
        return TOOL_OK;
    char **items;
    int n;
    if (tool_split_list("train", "--augment", s, 2, &items, &n))
        return TOOL_USAGE;
    int rc = TOOL_OK;
    for (int i = 0; i < n && rc == TOOL_OK; i++) {
        if (strcmp(items[i], "crop") == 0)
            a->crop = 1;
        else if (strcmp(items[i], "flip") == 0)
            a->flip = 1;
        else
            rc = tool_usage("train", "--augment: '%s' is not none, crop or flip", items[i]);
    }
    free(items);
    return rc;
}

static int parse(int argc, char **argv, struct train_args *a)
{
    const char *v[O_COUNT];
    int n_pos;
    int rc = opts_parse("train", argc, argv, SPEC, O_COUNT, v, &n_pos);
    if (rc)
        return rc;
    if (n_pos != 1)
        return tool_usage("train", "expected one ARCH or MODEL, got %d arguments", n_pos);
    *a = (struct train_args){.spec = argv[1],
                             .out = v[O_OUT],
                             .freeze = v[O_FREEZE],
                             .labels = v[O_LABELS],
                             .data = {v[O_DATA], v[O_FORMAT], v[O_SPLIT], v[O_CLASSES]},
                             .epochs = 10,
                             .batch = 64,
                             .crop_pad = 2,
                             .val_split = 0.1,
                             .lr = 0.05,
                             .momentum = 0.9,
                             .wd = 5e-4,
                             .gamma = 0.1,
                             .nesterov = v[O_NESTEROV] != NULL,
                             .quiet = v[O_QUIET] != NULL,
                             .log = v[O_LOG],
                             .plot = v[O_PLOT],
                             .schedule = CNN_LR_COSINE,
                             .seed = 1};
    if ((v[O_EPOCHS] && opts_int("train", "--epochs", v[O_EPOCHS], 1, 10000, &a->epochs)) ||
        (v[O_BATCH] && opts_int("train", "--batch", v[O_BATCH], 1, 4096, &a->batch)) ||
        (v[O_CROP_PAD] && opts_int("train", "--crop-pad", v[O_CROP_PAD], 1, 64, &a->crop_pad)) ||
        (v[O_STEP_EPOCHS] &&
         opts_int("train", "--step-epochs", v[O_STEP_EPOCHS], 1, 10000, &a->step_epochs)) ||
        (v[O_THREADS] && opts_int("train", "--threads", v[O_THREADS], 1, 256, &a->threads)) ||
        (v[O_STEPS] && opts_int("train", "--steps", v[O_STEPS], 1, 1000000000, &a->steps)) ||
        (v[O_VAL] && opts_double("train", "--val-split", v[O_VAL], 0, 0.9, &a->val_split)) ||
        (v[O_LR] && opts_double("train", "--lr", v[O_LR], 1e-9, 100, &a->lr)) ||
        (v[O_MOMENTUM] &&
         opts_double("train", "--momentum", v[O_MOMENTUM], 0, 0.999, &a->momentum)) ||
        (v[O_WD] && opts_double("train", "--weight-decay", v[O_WD], 0, 1, &a->wd)) ||
        (v[O_GAMMA] && opts_double("train", "--gamma", v[O_GAMMA], 1e-6, 1, &a->gamma)) ||
        (v[O_WARMUP] && opts_double("train", "--warmup", v[O_WARMUP], 0, 10000, &a->warmup)) ||
        (v[O_SEED] && opts_u64("train", "--seed", v[O_SEED], &a->seed)))
        return OPTS_ERROR;
    if (v[O_SCHEDULE]) {
        if (strcmp(v[O_SCHEDULE], "const") == 0 || strcmp(v[O_SCHEDULE], "constant") == 0)
            a->schedule = CNN_LR_CONSTANT;
        else if (strcmp(v[O_SCHEDULE], "step") == 0)
            a->schedule = CNN_LR_STEP;
        else if (strcmp(v[O_SCHEDULE], "cosine") == 0)
            a->schedule = CNN_LR_COSINE;
        else
            return tool_usage("train", "--schedule: '%s' is not const, step or cosine",
                              v[O_SCHEDULE]);
    }
    if (!a->step_epochs)
        a->step_epochs = a->epochs >= 3 ? a->epochs / 3 : 1;
    if (a->nesterov && a->momentum == 0)
        return tool_usage("train", "--nesterov needs --momentum > 0");
    if (!a->data.path)
        return tool_usage("train", "--data PATH is required");
    return parse_augment(v[O_AUGMENT], a);
}

/* The model being trained and where it came from. */
struct source {
    struct cnn_model *m; /* compiled */
    char arch[64];       /* architecture name ("" when unknown) */
    int fresh;           /* built from an architecture here */
};

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ARCH spec: arch:NAME, or a NAME that is no file but an architecture. */
static const char *arch_name(const char *spec)
{
    if (strncmp(spec, "arch:", 5) == 0)
        return spec + 5;
    return !is_file(spec) && cnn_arch_describe(spec) ? spec : NULL;
}

/* Builds architecture `name` with `classes` outputs and labels, seeded, compiled. */
static int build_arch(const char *name, int classes, char **labels, uint64_t seed,
                      struct cnn_model **out)
{
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    int rc = cnn_arch_build(name, classes, &m, &err);
    if (rc == CNN_ENOENT)
        return tool_usage("train", "unknown architecture '%s' (see 'cnn init --list')", name);
    if (rc)
        return tool_fail(name, "%s", err.msg);
    cnn_model_init_random(m, seed);
    if (labels && cnn_model_set_labels(m, (const char *const *)labels, classes, &err) != 0) {
        cnn_model_destroy(m);
        return tool_fail("--labels", "%s", err.msg);
    }
    if (cnn_model_compile(m, &err) != 0) {
        cnn_model_destroy(m);
        return tool_fail(name, "%s", err.msg);
    }
    *out = m;
    return TOOL_OK;
}

/* Label set for the run: --labels, else the folder's class names, else NULL.  Checked
 * against the dataset's class count. */
static int pick_labels(const struct train_args *a, const struct cnn_dataset *d, char ***labels,
                       int *n)
{
    *labels = NULL;
    *n = 0;
    int classes = cnn_dataset_num_classes(d);
    if (a->labels) {
        if (tool_split_list("train", "--labels", a->labels, CNN_MAX_CLASSES, labels, n))
            return TOOL_USAGE;
        if (*n != classes) {
            free(*labels);
            *labels = NULL;
            return tool_usage("train", "--labels has %d names, the dataset %d classes", *n,
                              classes);
        }
        return TOOL_OK;
    }
    if (!cnn_dataset_class_name(d, 0))
        return TOOL_OK;
    char **v = malloc((size_t)classes * sizeof *v);
    if (!v)
        return tool_fail("train", "out of memory");
    for (int k = 0; k < classes; k++)
        v[k] = (char *)cnn_dataset_class_name(d, k);
    *labels = v;
    *n = classes;
    return TOOL_OK;
}

struct run_state {
    struct train_args *a;
    struct source src;
    struct cnn_dataset *d;
    char **labels; /* owned: a tool_split_list block, or an array of borrowed names */
    int n_labels;
    struct cnn_train_driver *drv;
};

/* Model + dataset: opens both so that the dataset uses the model's preprocessing. */
static int open_inputs(struct run_state *s)
{
    struct train_args *a = s->a;
    const char *arch = arch_name(a->spec);
    int rc;
    if (arch) {
        /* a first build only for the preprocessing; rebuilt below with the classes */
        rc = build_arch(arch, 0, NULL, a->seed, &s->src.m);
        snprintf(s->src.arch, sizeof s->src.arch, "%s", arch);
        s->src.fresh = 1;
    } else {
        rc = tool_open_model(a->spec, TOOL_ARCH_RANDOM, &s->src.m);
    }
    if (rc)
        return rc;
    rc = tool_open_dataset("train", &a->data, cnn_model_preproc(s->src.m), &s->d);
    if (rc)
        return rc;
    rc = pick_labels(a, s->d, &s->labels, &s->n_labels);
    if (rc)
        return rc;
    int classes = cnn_dataset_num_classes(s->d);
    if (s->src.fresh) {
        cnn_model_destroy(s->src.m);
        s->src.m = NULL;
        return build_arch(arch, classes, s->labels, a->seed, &s->src.m);
    }
    if (!s->labels && classes > cnn_model_num_classes(s->src.m))
        return tool_usage("train",
                          "the dataset has %d classes but %s only %d: give --labels "
                          "for a new head",
                          classes, a->spec, cnn_model_num_classes(s->src.m));
    return TOOL_OK;
}

/* The driver's options from the command line (strings borrowed from a and s). */
static void driver_opts(const struct run_state *s, struct cnn_train_driver_opts *o,
                        char *trained_by, size_t cap)
{
    const struct train_args *a = s->a;
    cnn_train_driver_opts_default(o);
    o->labels = (const char *const *)s->labels;
    o->n_labels = s->n_labels;
    o->train.lr = (float)a->lr;
    o->train.momentum = (float)a->momentum;
    o->train.nesterov = a->nesterov;
    o->train.weight_decay = (float)a->wd;
    o->train.schedule = a->schedule;
    o->train.step_epochs = (int)a->step_epochs;
    o->train.step_gamma = (float)a->gamma;
    o->train.freeze_upto = a->freeze;
    o->train.seed = a->seed;
    o->train.threads = (int)a->threads;
    o->train.cancel = &g_stop;
    o->val_split = a->val_split;
    o->epochs = (int)a->epochs;
    o->batch = (int)a->batch;
    o->warmup_epochs = a->warmup;
    o->max_steps = a->steps;
    o->aug = (struct cnn_augment){.crop_pad = a->crop ? (int)a->crop_pad : 0, .hflip = a->flip};
    o->parent = s->src.fresh ? NULL : a->spec;
    int idx = strncmp(cnn_dataset_source(s->d), "idx:", 4) == 0;
    o->dataset_split = idx ? a->data.split : NULL; /* when given; the source names the file */
    o->dataset_classes = a->data.classes;
    snprintf(trained_by, cap, "cnn train %s", CNN_TOOL_VERSION);
    o->trained_by = trained_by;
}

/* Split, plan and trainer (a new head for a model file with another label set). */
static int make_driver(struct run_state *s, struct cnn_train_driver_opts *o)
{
    struct cnn_err err = {0};
    if (cnn_train_driver_create(s->d, o, &s->drv, &err) != 0)
        return tool_fail(s->a->data.path, "%s", err.msg);
    struct cnn_train_driver_info in;
    cnn_train_driver_info(s->drv, &in);
    if (o->train.schedule == CNN_LR_COSINE && in.warmup_steps >= in.total_steps)
        return tool_usage("train", "--warmup covers all %ld steps", in.total_steps);
    int rc = cnn_train_driver_setup(s->drv, s->src.m, &err);
    if (rc == CNN_ENOENT)
        return tool_usage("train", "--freeze: %s", err.msg);
    return rc ? tool_fail("train", "%s", err.msg) : TOOL_OK;
}

static int save(struct run_state *s)
{
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    int rc = cnn_train_driver_export(s->drv, &m, &err);
    if (rc)
        return tool_fail("train", "export: %s", err.msg);
    rc = cnn_model_save(m, s->a->out, &err);
    if (rc == 0) {
        char params[48];
        tool_group_digits(cnn_model_param_count(m), params, sizeof params);
        printf("saved %s: %s params, %d classes\n", s->a->out, params, cnn_model_num_classes(m));
    }
    cnn_model_destroy(m);
    return rc ? tool_fail(s->a->out, "%s", err.msg) : TOOL_OK;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* The epochs, with the terminal report; TOOL_OK when they all ran. */
static int run(struct run_state *s, struct train_report *rep)
{
    struct train_args *a = s->a;
    struct cnn_train_driver_info in;
    cnn_train_driver_info(s->drv, &in);
    if (!a->quiet) {
        char params[48];
        tool_group_digits(cnn_model_param_count(s->src.m), params, sizeof params);
        printf("training %s (%s params, %d classes%s%s%s) on %s: %d train / %d val items, "
               "%ld steps/epoch, batch %lld, %lld threads\n",
               s->src.fresh ? s->src.arch : a->spec, params, in.classes,
               in.head == CNN_TRAIN_HEAD_REPLACED ? ", new head" : "",
               a->freeze ? ", frozen up to " : "", a->freeze ? a->freeze : "",
               cnn_dataset_source(s->d), in.n_train, in.n_val, in.steps_per_epoch, a->batch,
               a->threads);
        fflush(stdout);
    }
    install_signals();
    struct cnn_err err = {0};
    int rc = cnn_train_driver_run(s->drv, &err);
    train_report_clear(rep);
    if (rc == CNN_ECANCELED) {
        int sig = atomic_load(&g_stop);
        fprintf(stderr, "cnn: train: stopped by %s (%s); nothing written\n",
                sig == SIGTERM ? "SIGTERM" : "SIGINT", err.msg);
        return 128 + (sig ? sig : SIGINT);
    }
    if (rc)
        return tool_fail("train", "%s", err.msg);
    cnn_train_driver_info(s->drv, &in);
    char took[32];
    train_report_hms(in.seconds, took, sizeof took);
    if (a->steps > 0) {
        long items;
        double secs;
        double ips = train_report_items_per_s(rep, &items, &secs);
        printf("train throughput: %ld steps, batch %lld, %ld images in %.3f s after %ld warm-up "
               "steps: %.1f images/s\n",
               in.steps_done, a->batch, items, secs, rep->warm_steps, ips);
    }
    printf("trained in %s (%.1f s)\n", took, in.seconds);
    return TOOL_OK;
}


static int train(struct run_state *s)
{
    struct train_args *a = s->a;
    struct cnn_train_driver_opts o;
    char trained_by[64];
    driver_opts(s, &o, trained_by, sizeof trained_by);
    struct train_report rep;
    long warm = a->steps > 0 ? (a->steps >= 20 ? 5 : 0) : 0;
    train_report_init(&rep, stdout, a->quiet, warm);
    struct train_log log;
    int rc = train_log_open(&log, &rep, a->log, a->plot != NULL);
    if (rc)
        return rc;
    o.progress = train_log_progress;
    o.progress_arg = &log;
    if ((rc = make_driver(s, &o)) != 0 || (rc = run(s, &rep)) != 0) {
        train_log_close(&log, NULL);
        return rc;
    }
    if ((rc = train_log_close(&log, a->plot)) != 0)
        return rc;
    return a->out ? save(s) : TOOL_OK;
}

int cmd_train(int argc, char **argv)
{
    struct train_args a;
    int rc = parse(argc, argv, &a);
    if (rc == OPTS_HELP) {
        fputs(USAGE, stdout);
        return TOOL_OK;
    }
    if (rc)
        return TOOL_USAGE;
    if (a.threads <= 0) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        a.threads = ncpu < 1 ? 1 : ncpu > 256 ? 256 : ncpu;
    }
    cnn_gemm_set_threads(1); /* the trainer splits each layer over a.threads itself */
    struct run_state s = {.a = &a};
    rc = open_inputs(&s);
    if (rc == TOOL_OK)
        rc = train(&s);
    cnn_train_driver_destroy(s.drv);
    cnn_model_destroy(s.src.m);
    cnn_dataset_destroy(s.d);
    free(s.labels);
    return rc;
}
