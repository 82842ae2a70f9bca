/* cnnd configuration: one table of options (name, section, type, default, range, help).
 * Sources, later ones win: built-in defaults, the INI file given with --config, command-line
 * flags, CNND_* environment variables.  A bad value, unknown key or malformed line is
 * reported as "WHERE: option NAME: why" (WHERE = FILE:LINE, "command line" or the variable)
 * and main exits with status 2.  Loaded once by main before any thread starts; read-only
 * afterwards, so any thread may read it. */
#ifndef CONFIG_H
#define CONFIG_H

#include <stdio.h>

#define CONFIG_STR_MAX 1024 /* string values incl. NUL */
#define CONFIG_ERR_MAX 1400
#define CONFIG_MAX_OPTIONS 48
#define CONFIG_OFF "off" /* admin_listen = off: no admin listener, no token, no jobs */

enum config_log_format { CONFIG_LOG_TEXT = 0, CONFIG_LOG_JSON = 1 };

struct config {
    /* [server] */
    char listen[CONFIG_STR_MAX]; /* numeric IPv4 or IPv6 address */
    int port;                    /* 0 = ephemeral */
    int threads;                 /* HTTP threads; 0 = one per core (resolved by config_finish) */
    int connection_limit;
    int per_ip_limit;         /* 0 = unlimited */
    int connection_timeout_s; /* inactivity; 0 = none */
    int request_timeout_ms;   /* longest wait in a batch queue; 0 = none */
    int drain_timeout_ms;     /* SIGTERM: longest wait for requests in flight */
    /* [models] */
    char model_repository[CONFIG_STR_MAX];
    int poll_interval_s; /* 0 = rescan only on SIGHUP */
    int max_versions;    /* loaded versions kept per model */
    /* [batching] defaults; NAME/config.ini in the repository may override them */
    int max_batch_size;
    int max_queue_delay_us;
    int max_queue_size;
    int instances; /* 0 = cores / blas_threads (resolved by config_finish) */
    int blas_threads;
    int split;     /* 0 auto (a batch on every core when the queue is short), 1 off */
    int split_min_mflop; /* smaller batches (model MFLOP per image x images) stay on one core */
    /* [limits] */
    long long classify_max_body; /* bytes */
    long long infer_max_body;    /* bytes */
    long long max_image_pixels;
    int max_json_depth;
    long long max_json_values;
    int max_multipart_parts;
    long long max_tensor_elements;
    int max_batch_items; /* images / tensors in one request */
    int explain_max_concurrent; /* POST .../explain in flight; beyond it 429 */
    int explain_threads;        /* threads computing explanations (explain_pool.c) */
    /* [admin] the admin listener (handlers_admin.c, admin.c) */
    char admin_listen[CONFIG_STR_MAX]; /* numeric IPv4 or IPv6 address, or CONFIG_OFF */
    int admin_port;                    /* 0 = ephemeral */
    char admin_token_file[CONFIG_STR_MAX];
    /* [training] fine-tune jobs (jobs.c) and collected examples (examples.c) */
    char data_root[CONFIG_STR_MAX]; /* datasets and examples live only under it */
    int max_jobs;                   /* jobs running at once */
    int job_queue_size;             /* jobs waiting; beyond it 409 */
    int train_threads;      /* cores all running jobs may take; 0 = cores - 1 (config_finish) */
    int train_nice;         /* nice value of job threads */
    long long max_examples; /* collected examples per model */
    long long example_max_bytes; /* one uploaded example image */
    /* [log] */
    int log_level;  /* enum log_level */
    int log_format; /* enum config_log_format */

    /* Internal to config.c: where each option was last set, for cross-option messages. */
    char file_[CONFIG_STR_MAX];
    signed char origin_kind_[CONFIG_MAX_OPTIONS];
    int origin_line_[CONFIG_MAX_OPTIONS];
};

/* Result of config_load. */
enum config_result { CONFIG_OK = 0, CONFIG_HELP = 1, CONFIG_VERSION = 2, CONFIG_ERROR = -1 };

/* Fills c with every option's default (auto values stay 0 until config_finish). */
void config_defaults(struct config *c);

/* Sets option `name` from text, as if read at `where` (used in the error message).
 * 0, or -1 with "WHERE: option NAME: why" in errbuf. */
int config_set(struct config *c, const char *name, const char *value, const char *where,
               char *errbuf, size_t cap);

/* Reads an INI file: "[section]" lines and "name = value" lines, ';' or '#' comments.  An
 * option must sit in its own section (or before any section).  0, or -1 with
 * "FILE:LINE: ..." in errbuf for the first problem (unknown key or section, bad value,
 * malformed or overlong line) or "FILE: cannot open: ..." */
int config_load_file(struct config *c, const char *path, char *errbuf, size_t cap);

/* Applies CNND_<NAME> variables from envp (NULL-terminated "KEY=VALUE" strings).  Unknown
 * CNND_* names are not errors (other tools share the prefix); each is reported through
 * warn(name) when warn is non-NULL.  0, or -1 with "environment CNND_X: option x: why". */
int config_apply_env(struct config *c, char *const *envp, void (*warn)(const char *name),
                     char *errbuf, size_t cap);

/* Resolves auto values for `cores` CPUs and checks options against each other
 * (instances x blas_threads <= cores; max_jobs x blas_threads <= train_threads).  0, or -1
 * with the message. */
int config_finish(struct config *c, int cores, char *errbuf, size_t cap);
/* Threads one fine-tune job's trainer splits each layer over (each calling BLAS with
 * blas_threads): train_threads / max_jobs / blas_threads, at least 1.  After finish. */
int config_threads_per_job(const struct config *c);

/* The whole sequence: defaults; argv is scanned for --config FILE / --help / --version;
 * the file; the other flags (--name value, --name=value; '-' and '_' alike); the
 * environment; config_finish.  CONFIG_HELP / CONFIG_VERSION: the caller prints and exits 0. */
int config_load(struct config *c, int argc, char **argv, char *const *envp, int cores,
                void (*warn)(const char *name), char *errbuf, size_t cap);

/* --help text: usage and every option with its section, default, range and help. */
void config_print_help(FILE *f);

/* Writes "name = value" lines of the effective configuration (for the startup log). */
void config_describe(const struct config *c, char *buf, size_t cap);

/* 1 unless admin_listen is "off" (then cnnd starts no admin listener and no job threads and
 * reads no admin token). */
int config_admin_enabled(const struct config *c);

/* "0.1.0" */
const char *config_version(void);

#endif
